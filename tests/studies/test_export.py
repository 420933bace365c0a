"""Export of a study's winners: the best trial, one trial, the Pareto front with its index,
and the bad requests (one line each, exit status 2); one end-to-end run on Ray.

The studies are real (SQLite, Optuna trials recorded as the driver records them, with
real checkpoints trained on digits); only the end-to-end test trains them through Ray.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from search.optuna_access import trial_id
from spaces import Categorical, ResNetSpace, SearchSpace, TrainingSpace
from studies import Study
from studies.cli import main
from studies.export import index_entry
from studies.records import ATTR_TRAINER, TrialRecord
from trainers import ImageClassifier, load_model
from trainers.base import ATTR_CHECKPOINT
from trainers.checkpoint import CHECKPOINT_FILE, save_checkpoint
from trainers.data import load_data
from trainers.export import ATOL, RTOL
from trainers.model_card import calibration_images
from trainers.quantize import quantize_int8

from ..trainers.test_export import needs_onnx, trained

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = SearchSpace(
    {
        "model": ResNetSpace(stages=2, depth=1, width=Categorical([16, 32])),
        "train": TrainingSpace(),
    }
)
WIDTH = {"model/width": CategoricalDistribution([16, 32])}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two real trial checkpoints (a plain and a pruned network) in Ray-like directories."""
    root = tmp_path_factory.mktemp("ray_run")
    out: dict[str, Any] = {}
    for name, result in (("plain", trained(epochs=1)), ("pruned", trained(2, prune_ratio=0.5))):
        folder = root / f"trial_{name}" / "checkpoint_000001"
        folder.mkdir(parents=True)
        save_checkpoint(result["state"], folder / CHECKPOINT_FILE)
        out[name] = {"dir": folder, **result}
    return out


def _study(
    url: str, name: str, objectives: list[str], directions: list[str], quantize: bool = False
) -> Study:
    study = Study.create(
        name, space=SPACE, objective=objectives, direction=directions, storage=url
    )
    trainer = ImageClassifier(dataset="digits", epochs=2, quantize=quantize)
    study.optuna.set_user_attr(ATTR_TRAINER, json.dumps(trainer.to_json()))
    return study


def _add(study: Study, state: TrialState, values: list[float] | None, run: Any = None) -> None:
    """A finished trial as the driver records it: values, checkpoint, last metrics."""
    attrs = {ATTR_CHECKPOINT: str(run["dir"])} if run is not None else {}
    study.optuna.add_trial(
        create_trial(
            state=state,
            values=values,
            params={"model/width": 16},
            distributions=WIDTH,
            user_attrs=attrs,
            intermediate_values={1: 0.5} if state == TrialState.PRUNED else None,
        )
    )
    if run is not None and "metrics" in run:
        frozen = study.optuna.get_trials(deepcopy=False)[-1]
        metrics = {k: v for k, v in run["metrics"].items() if isinstance(v, (int, float))}
        study.storage.add_metrics(trial_id(frozen), int(metrics["epoch"]), metrics)


@pytest.fixture
def single(db_url: str, runs: dict[str, Any]) -> Study:
    study = _study(db_url, "one", ["val_acc"], ["maximize"])
    _add(study, TrialState.COMPLETE, [0.8], runs["plain"])
    _add(study, TrialState.COMPLETE, [0.9], runs["pruned"])  # the best
    return study


@pytest.fixture
def multi(db_url: str, runs: dict[str, Any], tmp_path: Path) -> Study:
    study = _study(db_url, "mo", ["val_acc", "params"], ["maximize", "minimize"])
    gone = tmp_path / "deleted_run" / "checkpoint_000003"
    _add(study, TrialState.COMPLETE, [0.9, 5000.0], runs["plain"])  # 0: on the front
    _add(study, TrialState.COMPLETE, [0.8, 1500.0], runs["pruned"])  # 1: on the front
    _add(study, TrialState.COMPLETE, [0.7, 6000.0], runs["plain"])  # 2: dominated
    _add(study, TrialState.PRUNED, None)  # 3
    _add(study, TrialState.FAIL, None)  # 4
    _add(study, TrialState.COMPLETE, [0.6, 8000.0], {"dir": gone})  # 5: checkpoint gone
    return study


def _digits() -> torch.Tensor:
    return load_data("digits", val_fraction=0.2, seed=0).x_val


def test_best_trial_exports_with_its_study_on_the_card(single: Study, runs, tmp_path) -> None:
    (out,) = single.export(str(tmp_path / "best"), "torchscript")
    assert out.directory == tmp_path / "best"
    card = json.loads(out.card.read_text())
    assert (card["study"], card["trial"], card["state"]) == ("one", 1, "COMPLETE")
    assert card["objectives"] == [{"name": "val_acc", "direction": "maximize", "value": 0.9}]
    assert card["metrics"]["params"] == runs["pruned"]["metrics"]["params"]
    assert card["model"]["pruned"] and card["preprocessing"]["channel_order"] == "gray"
    x = _digits()
    with torch.no_grad():
        got = torch.jit.load(str(out.model_file))(x)
        expected = load_model(runs["pruned"]["dir"])(x)
    assert torch.allclose(got, expected, rtol=RTOL, atol=ATOL)
    (other,) = single.export(str(tmp_path / "t0"), "checkpoint", trial=0)
    assert json.loads(other.card.read_text())["trial"] == 0


def test_front_exports_every_trial_on_it_with_an_index(multi: Study, tmp_path, capsys) -> None:
    out = tmp_path / "front"
    argv = ["export", "mo", "--front", "--format", "checkpoint", "-o", str(out)]
    assert main([*argv, "--storage", multi.storage.url]) == 0
    printed = capsys.readouterr().out
    assert "Trial #0 ->" in printed and "Trial #1 ->" in printed and "index.json" in printed
    index = json.loads((out / "index.json").read_text())
    assert [t["trial"] for t in index["trials"]] == [0, 1]
    first, second = index["trials"]
    assert first["directory"] == "trial-0" and first["values"] == {
        "val_acc": 0.9,
        "params": 5000.0,
    }
    assert second["params"] < first["params"] and second["latency_ms"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "trial-0", "trial-1"]
    card = json.loads((out / "trial-1" / "model_card.json").read_text())
    assert card["on_front"] and card["model"]["pruned"]


def test_front_of_a_single_objective_study_is_its_best_trial(single: Study, tmp_path) -> None:
    exported = single.export(str(tmp_path / "f"), "checkpoint", front=True)
    assert [e.directory.name for e in exported] == ["trial-1"]
    assert [
        t["trial"] for t in json.loads((tmp_path / "f" / "index.json").read_text())["trials"]
    ] == [1]


def test_a_study_that_quantizes_exports_its_trials_int8_model(db_url, runs, tmp_path) -> None:
    study = _study(db_url, "q", ["val_acc"], ["maximize"], quantize=True)
    _add(study, TrialState.COMPLETE, [0.9], runs["pruned"])
    out = tmp_path / "int8"
    argv = ["export", "q", "--format", "checkpoint", "-o", str(out), "--storage", db_url]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        CHECKPOINT_FILE,
        "model.int8.pt2",
        "model_card.json",
    ]
    card = json.loads((out / "model_card.json").read_text())
    assert card["trial"] == 0 and card["model"]["pruned"]
    assert card["files"]["int8_model"] == "model.int8.pt2" and card["int8"]["exported"]
    assert card["int8"]["weights"].startswith("int8") and card["int8"]["verification"]["verified"]
    data = load_data("digits", val_fraction=0.2, seed=0)
    graph = quantize_int8(load_model(out), calibration_images(data).split(64))
    with torch.no_grad():
        got, expected = load_model(out / "model.int8.pt2")(data.x_val), graph(data.x_val)
    assert torch.allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_the_index_names_the_int8_model_and_its_figures() -> None:
    metrics = {"params": [(2, 1e4)], "int8_acc": [(2, 0.93)], "int8_latency_ms": [(2, 0.5)]}
    t = TrialRecord(0, "COMPLETE", {}, value=0.9, metrics=metrics)
    entry = index_entry(t, ["val_acc"], "trial-0", "model.onnx", "model.int8.onnx")
    assert entry["int8_model"] == "model.int8.onnx" and entry["int8_acc"] == 0.93
    assert entry["int8_latency_ms"] == 0.5 and entry["fp32_latency_ms"] is None
    assert "int8_model" not in index_entry(t, ["val_acc"], "trial-0", "model.onnx")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (
            ["--trial", "3"],
            r"Trial 3 of study 'mo' is PRUNED; only COMPLETE trials can be "
            r"exported \(COMPLETE trials: 0, 1, 2, 5\)",
        ),
        (["--trial", "4"], "Trial 4 of study 'mo' is FAIL; only COMPLETE"),
        (
            ["--trial", "5"],
            r"checkpoint of trial 5 of study 'mo' is gone: expected "
            r"\S+deleted_run/checkpoint_000003/checkpoint\.pt",
        ),
        (["--trial", "9"], r"no trial 9 \(trials: 0 to 5\)"),
        ([], r"2 objectives, so no single best trial; export --front \(trials 0, 1\)"),
        (["--format", "tflite"], "Unknown export format 'tflite'; use one of torchscript, onnx"),
        (["--trial", "0", "-o", "{tmp}/full"], "full exists and is not empty; pass --force"),
    ],
)
def test_bad_requests_are_one_line_with_exit_status_2(
    multi: Study, tmp_path: Path, capsys, extra: list[str], match: str
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    argv = ["export", "mo", "--format", "checkpoint", "-o", str(tmp_path / "out")]
    argv += ["--storage", multi.storage.url, *(a.format(tmp=tmp_path) for a in extra)]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archtune: error:"), lines
    assert re.search(match, lines[0]), lines[0]
    assert not (tmp_path / "out").exists(), "nothing is written before every check passed"


def test_force_writes_into_a_non_empty_directory(multi: Study, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    argv = ["export", "mo", "--trial", "0", "--format", "checkpoint", "-o", str(tmp_path / "full")]
    assert main([*argv, "--force", "--storage", multi.storage.url]) == 0
    assert (tmp_path / "full" / CHECKPOINT_FILE).is_file()
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"


STUDY_FILE = """
from spaces import Categorical, ResNetSpace, SearchSpace, TrainingSpace
from studies import Experiment
from trainers import ImageClassifier

experiment = Experiment(
    name="export-e2e",
    space=SearchSpace({
        "model": ResNetSpace(stages=1, depth=1, width=Categorical([8, 16])),
        "train": TrainingSpace(),
    }),
    objective="val_acc",
    trainer=ImageClassifier(dataset="digits", epochs=1),
    controller="random",
    seed=0,
    num_trials=2,
    storage="sqlite:///@DB@",
)
"""


@pytest.mark.slow
@needs_onnx
@pytest.mark.usefixtures("ray_session")
def test_run_on_ray_then_export_the_winner_to_onnx(tmp_path: Path) -> None:
    import onnxruntime

    db = tmp_path / "e2e.db"
    (tmp_path / "study.py").write_text(STUDY_FILE.replace("@DB@", str(db)))
    assert main(["run", str(tmp_path / "study.py")]) == 0
    out = tmp_path / "winner"
    argv = ["export", "export-e2e", "--best", "--format", "onnx", "-o", str(out)]
    assert main([*argv, "--storage", f"sqlite:///{db}"]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["trial"] == Study.load("export-e2e", f"sqlite:///{db}").best_trial.number
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    x = _digits()
    got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    with torch.no_grad():
        expected = load_model(out)(x)
    assert torch.allclose(got, expected, rtol=RTOL, atol=ATOL)
    shutil.rmtree(out)
