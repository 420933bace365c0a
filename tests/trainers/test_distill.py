"""Knowledge distillation: the loss, teacher sources, teacher loading and shared logits."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from torch import nn

from spaces import ResNetSpace, SearchSpace, TrainingSpace
from trainers import ImageClassifier, LocalSession
from trainers.base import ATTR_CHECKPOINT
from trainers.checkpoint import CHECKPOINT_FILE, model_state, save_checkpoint
from trainers.data import load_data
from trainers.distill import (
    SharedLogits,
    TeacherSource,
    check_teacher,
    distillation_loss,
    load_teacher,
    teacher_logits,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _logits(seed: int, n: int = 6, k: int = 5, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * scale


# ---------------------------------------------------------------- the loss


def test_alpha_zero_is_cross_entropy() -> None:
    s, t = _logits(0), _logits(1)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    loss = distillation_loss(s, t, y, alpha=0.0, temperature=4.0)
    assert torch.equal(loss, nn.functional.cross_entropy(s, y))


def test_hand_computed_value() -> None:
    # T = 2: teacher [2 ln 3, 0] / 2 -> p = (3/4, 1/4); student [0, 0] -> q = (1/2, 1/2).
    s = torch.zeros(1, 2)
    t = torch.tensor([[2 * math.log(3.0), 0.0]])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    expected = 0.5 * 2.0**2 * kl + 0.5 * math.log(2.0)  # CE of a uniform guess is ln 2
    loss = distillation_loss(s, t, torch.tensor([0]), alpha=0.5, temperature=2.0)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_kl_is_averaged_over_the_batch() -> None:
    s, t = _logits(2, n=1), _logits(3, n=1)
    one = distillation_loss(s, t, torch.tensor([0]), alpha=1.0, temperature=3.0)
    four = distillation_loss(s.repeat(4, 1), t.repeat(4, 1), torch.zeros(4).long(), 1.0, 3.0)
    assert float(four) == pytest.approx(float(one), rel=1e-6)


def test_student_equal_to_teacher_gives_zero_kl() -> None:
    s = _logits(4)
    loss = distillation_loss(s, s.clone(), torch.zeros(6).long(), alpha=1.0, temperature=5.0)
    assert float(loss) == pytest.approx(0.0, abs=1e-7)


def _soft_grad(s: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    s = s.clone().requires_grad_(True)
    distillation_loss(s, t, torch.zeros(len(s)).long(), 1.0, temperature).backward()
    return s.grad


def test_t_squared_keeps_soft_gradients_comparable_across_temperatures() -> None:
    s, t = _logits(5, scale=1.0), _logits(6, scale=1.0)
    norms = {temp: float(_soft_grad(s, t, temp).norm()) for temp in (2.0, 5.0, 10.0, 50.0)}
    assert max(norms.values()) / min(norms.values()) < 1.5, norms
    # Without the T**2 factor the gradient would shrink 625x from T=2 to T=50.
    # In the high-temperature limit the gradient is (z - v) / (N * batch) for
    # zero-meaned logits (the paper's eq. 3-4): matching logits, scaled by 1/N.
    z, v = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    limit = (z - v) / (s.shape[1] * s.shape[0])
    # The gap shrinks as 1/T (about 6e-5 at T=1000 here, against entries up to 0.1).
    assert torch.allclose(_soft_grad(s, t, 1000.0), limit, atol=2e-4)


def test_no_gradient_reaches_the_teacher_logits() -> None:
    s, t = _logits(7).requires_grad_(True), _logits(8).requires_grad_(True)
    distillation_loss(s, t, torch.zeros(6).long(), 0.7, 4.0).backward()
    assert s.grad is not None and t.grad is None


def test_loss_is_fp32_under_bf16_autocast() -> None:
    s, t = _logits(9).bfloat16(), _logits(10).bfloat16()
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = distillation_loss(s, t, y, 0.6, 3.0)
    reference = distillation_loss(s.float(), t.float(), y, 0.6, 3.0)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(reference), rel=1e-6)


@pytest.mark.parametrize(
    ("alpha", "temperature", "match"),
    [
        (-0.1, 4.0, "alpha must be a number in"),
        (1.5, 4.0, "alpha must be a number in"),
        (math.nan, 4.0, "alpha must be a number in"),
        (True, 4.0, "alpha must be a number in"),
        (0.5, 0.0, "temperature must be a finite number > 0"),
        (0.5, -2.0, "temperature must be a finite number > 0"),
        (0.5, math.inf, "temperature must be a finite number > 0"),
    ],
)
def test_bad_knobs_raise(alpha: float, temperature: float, match: str) -> None:
    s = _logits(0)
    with pytest.raises(ValueError, match=match):
        distillation_loss(s, s, torch.zeros(6).long(), alpha, temperature)


def test_mismatched_logits_raise() -> None:
    with pytest.raises(ValueError, match=r"\(6, 5\) and teacher logits \(6, 4\)"):
        distillation_loss(_logits(0), _logits(1, k=4), torch.zeros(6).long(), 0.5, 4.0)


# ---------------------------------------------------------------- a real teacher


def _space() -> SearchSpace:
    return SearchSpace(
        {"model": ResNetSpace(stages=2, depth=1, width=8), "train": TrainingSpace()}
    )


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ResNet trained 2 epochs on digits by the real trainer, saved as a v2 checkpoint."""
    space = _space()
    config = space.unflatten({})
    session = LocalSession()
    ImageClassifier(dataset="digits", epochs=2).run(config, space, session)
    data = load_data("digits", val_fraction=0.2, seed=0)
    state = session.checkpoint
    assert state is not None
    model = space["model"].build(config["model"], data.input_shape, data.num_classes)
    model.load_state_dict(state["model"])
    model.eval()
    if state.get("version") != 2:  # the trainer's own checkpoint is not version 2 yet
        state = model_state(
            model, space, config, input_shape=data.input_shape, num_classes=data.num_classes
        )
    run_dir = tmp_path_factory.mktemp("run") / "checkpoint_000001"
    run_dir.mkdir()
    save_checkpoint(state, run_dir / CHECKPOINT_FILE)
    with torch.no_grad():
        logits = model(data.x_train)
    return {
        "dir": run_dir,
        "file": run_dir / CHECKPOINT_FILE,
        "model": model,
        "data": data,
        "logits": logits,
    }


def test_teacher_from_checkpoint_reproduces_the_trained_model(teacher: dict[str, Any]) -> None:
    data = teacher["data"]
    loaded = load_teacher(TeacherSource(checkpoint=str(teacher["file"])), "cpu")
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    cached = teacher_logits(loaded, data, batch_size=100)  # 1437 = 14 full batches + 37
    assert cached.dtype == torch.float32 and cached.device.type == "cpu"
    assert cached.shape == (len(data.y_train), data.num_classes)
    assert torch.allclose(cached, teacher["logits"], atol=1e-5)
    assert (cached.argmax(1) == data.y_train).float().mean() > 0.7, "the teacher learned"


def test_teacher_from_a_ray_checkpoint_directory(teacher: dict[str, Any]) -> None:
    data = teacher["data"]
    loaded = load_teacher(
        str(teacher["dir"]), input_shape=data.input_shape, num_classes=data.num_classes
    )
    assert torch.allclose(teacher_logits(loaded, data, 300), teacher["logits"], atol=1e-5)


def test_teacher_logits_of_loader_data_match_tensor_data() -> None:
    from trainers.data import LoaderData, TensorData
    from trainers.datasets import TensorSplit

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(11, 1, 2, 2, generator=gen), torch.arange(11) % 3
    tensors = TensorData(x, y, x[:2], y[:2], 3)
    loader = LoaderData(TensorSplit(x, y), TensorSplit(x[:2], y[:2]), None, 3, (1, 2, 2))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    expected = net(x).detach()
    assert torch.allclose(teacher_logits(net, tensors, 4), expected, atol=1e-6)
    assert torch.allclose(teacher_logits(net, loader, 4), expected, atol=1e-6)


def test_teacher_logits_restores_the_training_mode(teacher: dict[str, Any]) -> None:
    model = teacher["model"]
    model.train()
    try:
        teacher_logits(model, teacher["data"])
        assert model.training
    finally:
        model.eval()


def test_check_teacher_says_what_differs(teacher: dict[str, Any]) -> None:
    state = torch.load(teacher["file"], weights_only=False)
    check_teacher(state, (1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"10 classes vs the data's 3"):
        check_teacher(state, (1, 8, 8), 3)
    with pytest.raises(ValueError, match=r"input shape \(1, 8, 8\) vs the data's \(3, 8, 8\)"):
        check_teacher(state, (3, 8, 8), 10)
    with pytest.raises(ValueError, match="10 classes vs the data's 100"):
        check_teacher(teacher["model"], (1, 8, 8), 100)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(ValueError, match=r"fails on inputs of shape \(3, 8, 8\)"):
        check_teacher(flat, (3, 8, 8), 10)
    with pytest.raises(ValueError, match="10 classes vs the data's 5"):
        load_teacher(teacher["file"], input_shape=(1, 8, 8), num_classes=5)


def test_distilling_toward_the_teacher_reduces_the_kl_term(teacher: dict[str, Any]) -> None:
    data, temperature = teacher["data"], 4.0
    soft = teacher["logits"]
    torch.manual_seed(0)
    student = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)

    def kl() -> float:
        with torch.no_grad():
            loss = distillation_loss(student(data.x_train), soft, data.y_train, 1.0, temperature)
        return float(loss) / temperature**2

    before = kl()
    for _ in range(40):
        idx = torch.randint(len(data.y_train), (128,), generator=gen)
        loss = distillation_loss(
            student(data.x_train[idx]), soft[idx], data.y_train[idx], 0.9, temperature
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert kl() < 0.5 * before


# ---------------------------------------------------------------- teacher sources


def test_parse_and_json_round_trip(tmp_path: Path) -> None:
    by_path = TeacherSource.parse(tmp_path / "c.pt")
    assert by_path == TeacherSource(checkpoint=str(tmp_path / "c.pt"))
    by_trial = {"study": "s", "trial": 2, "storage": "sqlite:///x.db"}
    shortcut = {"study": "s", "trial": "best"}  # the study's own database
    assert TeacherSource.parse(shortcut).to_json() == shortcut
    for source in (by_path, TeacherSource.parse(by_trial), TeacherSource.parse(shortcut)):
        assert TeacherSource.parse(json.loads(json.dumps(source.to_json()))) == source
        assert TeacherSource.parse(source) is source
    assert TeacherSource.parse({"checkpoint": "a.pt"}).checkpoint == "a.pt"


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ({"checkpoint": "a.pt", "study": "s"}, ValueError, r"got keys \['checkpoint', 'study'\]"),
        ({"study": "s", "storage": "u"}, ValueError, "got keys"),
        ({"study": "s", "trial": 1, "stroage": "u"}, ValueError, "got keys"),
        ({}, ValueError, "got keys"),
        ({"study": "s", "trial": True, "storage": "u"}, TypeError, "trial number"),
        ({"study": "s", "trial": -1, "storage": "u"}, TypeError, "trial number"),
        ({"study": "s", "trial": "last"}, TypeError, "or 'best'"),
        ({"study": "s", "trial": 1, "storage": 3}, TypeError, "database URL string"),
        ({"study": "", "trial": 1}, TypeError, "a study name"),
        ({"checkpoint": ""}, TypeError, "non-empty path"),
        (3, TypeError, "got int"),
    ],
)
def test_parse_rejects(value: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        TeacherSource.parse(value)


def test_source_takes_one_form() -> None:
    with pytest.raises(ValueError, match="not both"):
        TeacherSource(checkpoint="a.pt", study="s")
    with pytest.raises(ValueError, match=r"missing \['trial'\]"):
        TeacherSource(study="s")


@pytest.mark.parametrize(
    "source",
    [{"study": "s", "trial": "best", "storage": "sqlite:///x.db"}, {"study": "s", "trial": 0}],
)
def test_the_shortcut_is_left_to_a_study_run(source: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="a study run resolves it"):
        TeacherSource.parse(source).resolve()


def test_resolve_checkpoint_paths(teacher: dict[str, Any], tmp_path: Path) -> None:
    assert TeacherSource(checkpoint=str(teacher["dir"])).resolve() == str(teacher["dir"])
    rel = os.path.relpath(teacher["file"])
    assert TeacherSource(checkpoint=rel).resolve() == str(teacher["file"])
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        TeacherSource(checkpoint=str(tmp_path / "missing.pt")).resolve()
    with pytest.raises(FileNotFoundError, match=re.escape(CHECKPOINT_FILE)):
        TeacherSource(checkpoint=str(tmp_path)).resolve()  # a directory without one


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory, teacher: dict[str, Any]) -> str:
    """A SQLite study: trial 0 COMPLETE with a checkpoint, 1 COMPLETE without, 2 FAIL,
    3 COMPLETE pointing at a deleted directory, 4 RUNNING."""
    tmp_path = tmp_path_factory.mktemp("studies")
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="other", storage=url)
    study = optuna.create_study(study_name="teachers", storage=url, direction="maximize")
    attrs = [str(teacher["dir"]), None, str(teacher["dir"]), str(tmp_path / "gone"), None]
    for number, attr in enumerate(attrs):
        trial = study.ask()
        if attr is not None:
            trial.set_user_attr(ATTR_CHECKPOINT, attr)
        if number in (0, 1, 3):
            study.tell(trial, 0.9)
        elif number == 2:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return url


def _digest(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()


def test_resolve_a_study_trial_reads_only(study_db: str, teacher: dict[str, Any]) -> None:
    before = _digest(study_db)
    source = TeacherSource(study="teachers", trial=0, storage=study_db)
    assert source.resolve() == str(teacher["dir"])
    assert isinstance(load_teacher(source.to_json()), nn.Module)
    assert _digest(study_db) == before, "resolving must not write the database"


@pytest.mark.parametrize(
    ("study", "trial", "error", "match"),
    [
        ("nope", 0, ValueError, r"No study 'nope'.*known studies: \['other', 'teachers'\]"),
        ("teachers", 9, ValueError, "has no trial 9; its trials are numbered 0 to 4"),
        ("other", 0, ValueError, "'other' has no trials"),
        ("teachers", 1, ValueError, "has no recorded checkpoint .*'archtune:checkpoint'"),
        ("teachers", 2, ValueError, "is FAIL, not COMPLETE"),
        ("teachers", 4, ValueError, "is RUNNING, not COMPLETE"),
        ("teachers", 3, FileNotFoundError, "recorded for trial 3 .*gone"),
    ],
)
def test_resolve_a_study_trial_errors(
    study_db: str, study: str, trial: int, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        TeacherSource(study=study, trial=trial, storage=study_db).resolve()


def test_resolve_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(FileNotFoundError, match="No study database"):
        TeacherSource(study="s", trial=0, storage=f"sqlite:///{path}").resolve()
    assert not path.exists()


def test_resolve_a_database_that_is_not_optunas(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(RuntimeError, match="Cannot read the study database"):
        TeacherSource(study="s", trial=0, storage=f"sqlite:///{path}").resolve()


# ---------------------------------------------------------------- shared logits


def test_shared_logits_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    logits = _logits(11)
    shared = SharedLogits.put(logits.double())
    assert not shared.in_object_store and shared.shape == (6, 5)
    got = shared.get("cpu")
    assert got.dtype == torch.float32 and torch.equal(got, logits)
    assert shared.get(torch.device("cpu")) is got
    again = pickle.loads(pickle.dumps(shared))
    assert torch.equal(again.get(), logits)
    with pytest.raises(TypeError, match=r"\(examples, classes\) tensor"):
        SharedLogits.put(torch.zeros(3))


@pytest.mark.usefixtures("ray_session")
def test_shared_logits_through_the_object_store() -> None:
    import ray

    logits = _logits(12, n=300, k=10)
    shared = SharedLogits.put(logits)
    assert shared.in_object_store
    assert torch.equal(pickle.loads(pickle.dumps(shared)).get(), logits)

    @ray.remote(num_cpus=1)
    class Worker:
        def fetch(self, s: SharedLogits) -> torch.Tensor:
            self.first = s.get("cpu")
            return self.first

        def fetch_again(self, s: SharedLogits) -> bool:
            return s.get("cpu") is self.first

    worker = Worker.remote()
    assert torch.equal(ray.get(worker.fetch.remote(shared)), logits), "the driver's logits"
    # A fresh unpickled copy with the same ref: the reused actor does not fetch again.
    assert ray.get(worker.fetch_again.remote(shared))
    ray.kill(worker)
