"""ImageClassifier honours every training knob: precision, pruning, final figures, failures."""

from __future__ import annotations

import pytest
import torch

from spaces import Categorical, DenseNetSpace, ResNetSpace, SearchSpace, TrainingSpace
from tests.trainers.sessions import Stop, StopAfter
from trainers import ImageClassifier, LocalSession, load_dataset
from trainers.checkpoint import model_from_checkpoint


def _space(**train) -> SearchSpace:
    return SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=1, width=Categorical([8, 16])),
            "train": TrainingSpace(**train),
        }
    )


def _run(trainer: ImageClassifier, space: SearchSpace, **params) -> LocalSession:
    session = LocalSession()
    trainer.run(space.unflatten(params), space, session)
    return session


def test_fp16_trains_with_dynamic_loss_scaling() -> None:
    # fp16 and bf16 autocast are emulated (slowly) on CPUs without native support: keep
    # these runs to one epoch of the smallest network.
    space = _space(precision="fp16")
    session = _run(ImageClassifier(epochs=1), space, **{"model/width": 8})
    fp32 = _run(ImageClassifier(epochs=1), _space(), **{"model/width": 8}).history[-1]
    assert session.history[-1]["val_acc"] > 0.3, "fp16 with loss scaling learns"
    assert session.history[-1]["val_acc"] == pytest.approx(fp32["val_acc"], abs=0.1)
    assert all(isinstance(h["skipped_steps"], int) for h in session.history)
    assert session.checkpoint["scaler"] is not None, "the scaler's state is checkpointed"


def test_skipped_fp16_steps_are_counted() -> None:
    space = _space(precision="fp16")
    config = space.unflatten({"model/width": 8})
    trainer = ImageClassifier(epochs=1)
    run = trainer.trial_run(config, space)
    # A scale no fp16 gradient survives: the first steps overflow and are skipped until
    # the scaler has halved its way down.
    run.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)
    sums = run.train_epoch(1)
    assert sums["skipped"] >= 1
    assert run.scaler.get_scale() < 2.0**24


def test_bf16_and_fp32_report_no_skipped_steps() -> None:
    for precision in ("fp32", "bf16"):
        session = _run(
            ImageClassifier(epochs=1), _space(precision=precision), **{"model/width": 8}
        )
        assert session.history[-1]["skipped_steps"] == 0


def nan_digits():
    """Digits with one corrupt training image, finite but so large that the network's
    activations overflow: a data function for the test below."""
    data = load_dataset("digits")
    x_train = data.x_train.clone()
    x_train[0] = 3e38
    return x_train, data.y_train, data.x_val, data.y_val


def test_a_nan_loss_fails_the_trial_with_a_hint() -> None:
    trainer = ImageClassifier(dataset="tests.trainers.test_training_knobs:nan_digits", epochs=2)
    with pytest.raises(
        FloatingPointError, match=r"Training loss became (nan|inf) in epoch 1; lower"
    ):
        _run(trainer, _space(), **{"model/width": 8})


def test_final_report_carries_the_network_figures() -> None:
    session = _run(ImageClassifier(epochs=2), _space(), **{"model/width": 8})
    first, last = session.history
    for key in ("params", "flops", "latency_ms"):
        assert key not in first and last[key] > 0, key
    net = model_from_checkpoint(session.checkpoint)
    assert sum(p.numel() for p in net.parameters()) == last["params"]


def test_pruning_shrinks_the_network_then_fine_tunes_it() -> None:
    space = _space(prune_ratio=0.5)
    trainer = ImageClassifier(epochs=4, finetune_fraction=0.5)
    config = space.unflatten({"model/width": 16})
    assert trainer.prune_after(config) == 2
    session = LocalSession()
    trainer.run(config, space, session)
    last = session.history[-1]
    assert last["params"] < 0.6 * last["dense_params"]
    assert last["flops"] < 0.6 * last["dense_flops"]
    assert last["dense_latency_ms"] > 0 and last["latency_ms"] > 0
    assert last["val_acc"] > 0.7, "fine-tuning recovers the pruned network"
    # The pruned network's checkpoint loads into a network of the pruned shape and runs.
    net = model_from_checkpoint(session.checkpoint)
    assert sum(p.numel() for p in net.parameters()) == last["params"]
    data = trainer.load_data()
    with torch.no_grad():
        acc = (net(data.x_val).argmax(1) == data.y_val).float().mean().item()
    assert acc == pytest.approx(last["val_acc"], abs=1e-6)


def test_a_pruned_trial_resumes_after_the_pruning() -> None:
    space = _space(prune_ratio=0.5)
    config = space.unflatten({"model/width": 8})
    full = LocalSession()
    ImageClassifier(epochs=3, finetune_fraction=0.5).run(config, space, full)

    first = LocalSession()
    with pytest.raises(Stop):  # the worker dies after epoch 2, the first pruned one
        ImageClassifier(epochs=3, finetune_fraction=0.5).run(config, space, StopAfter(first, 2))
    resumed = LocalSession()
    resumed.checkpoint = first.checkpoint
    ImageClassifier(epochs=3, finetune_fraction=0.5).run(config, space, resumed)
    assert [h["epoch"] for h in resumed.history] == [3]
    assert resumed.history[-1]["val_acc"] == pytest.approx(full.history[-1]["val_acc"], abs=1e-6)
    assert resumed.history[-1]["params"] == full.history[-1]["params"]


def test_pruning_a_densenet() -> None:
    space = SearchSpace(
        {
            "model": DenseNetSpace(blocks=2, layers=2, growth=8),
            "train": TrainingSpace(prune_ratio=0.3),
        }
    )
    last = _run(ImageClassifier(epochs=2), space).history[-1]
    assert last["params"] < last["dense_params"]


def test_fit_without_a_space_takes_the_family_from_the_config() -> None:
    metrics = ImageClassifier(dataset="digits", epochs=1).fit(
        {"model": {"stages": 1, "depth": 1, "width": 8}, "train": {"lr": 3e-3}}
    )
    assert {"val_acc", "params", "flops", "latency_ms"} <= set(metrics)
    dense = ImageClassifier(epochs=1).fit({"model": {"family": "densenet", "blocks": 1}})
    assert 0.0 <= dense["val_acc"] <= 1.0
    with pytest.raises(ValueError, match="family"):
        ImageClassifier(epochs=1).fit({"model": {"family": "vit"}})


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory) -> str:
    """A width-16 ResNet trained for 3 epochs on digits, saved as a checkpoint file."""
    from trainers.checkpoint import save_checkpoint

    space = _space()
    session = _run(ImageClassifier(epochs=3), space, **{"model/width": 16})
    assert session.history[-1]["val_acc"] > 0.9
    path = str(tmp_path_factory.mktemp("teacher") / "teacher.pt")
    save_checkpoint(session.checkpoint, path)
    return path


@pytest.mark.parametrize("augment", [0.0, 0.5])
def test_a_student_learns_from_the_teacher_alone(teacher_path: str, augment: float) -> None:
    # alpha = 1: no cross-entropy on the labels, so all a student learns comes from the
    # teacher (its logits cached per example without augmentation, run per batch with).
    space = _space(distill_alpha=1.0, distill_temperature=4.0, augment=augment)
    trainer = ImageClassifier(epochs=3, teacher=teacher_path)
    metrics = trainer.fit(space.unflatten({"model/width": 8}), space)
    assert metrics["val_acc"] > 0.5, "a label-free student learns the digits (chance: 0.1)"
    # The driver ran the teacher once over the training split.
    assert trainer._shared_logits.get().shape == (trainer.load_data().num_train, 10)


def test_quantize_reports_int8_figures_of_the_final_network() -> None:
    space = _space()
    metrics = ImageClassifier(epochs=2, quantize=True).fit(
        space.unflatten({"model/width": 16}), space
    )
    assert metrics["int8_acc"] == pytest.approx(metrics["val_acc"], abs=0.05)
    assert metrics["int8_latency_ms"] > 0 and metrics["fp32_latency_ms"] > 0


@pytest.mark.slow
def test_torch_compile_trains_like_eager_and_checkpoints_plain_weights() -> None:
    space = SearchSpace(
        {"model": ResNetSpace(stages=1, depth=1, width=8), "train": TrainingSpace()}
    )
    compiled, eager = LocalSession(), LocalSession()
    ImageClassifier(epochs=2, compile=True).run(space.unflatten({}), space, compiled)
    ImageClassifier(epochs=2).run(space.unflatten({}), space, eager)
    assert compiled.history[-1]["val_acc"] == pytest.approx(eager.history[-1]["val_acc"], abs=0.03)
    assert not any("_orig_mod" in k for k in compiled.checkpoint["model"])
    model_from_checkpoint(compiled.checkpoint)  # loads into a plain network


def test_trials_use_the_teacher_the_driver_resolved(
    teacher_path: str, tmp_path, monkeypatch
) -> None:
    # A teacher named by study and trial is looked up in the database once, by the
    # driver's prepare(); trials (on workers without database access) never look it up.
    import optuna

    from trainers.base import ATTR_CHECKPOINT
    from trainers.distill import TeacherSource

    storage = f"sqlite:///{tmp_path / 'teachers.db'}"
    study = optuna.create_study(study_name="teachers", storage=storage)
    trial = study.ask()
    trial.set_user_attr(ATTR_CHECKPOINT, teacher_path)
    study.tell(trial, 0.9)

    space = _space(distill_alpha=0.5, augment=0.5)
    trainer = ImageClassifier(
        epochs=1, teacher={"study": "teachers", "trial": 0, "storage": storage}
    )
    trainer.prepare()
    lookup = TeacherSource.resolve

    def no_database(self: TeacherSource) -> str:
        if self.study is not None:
            raise AssertionError("a trial looked the teacher up in the database")
        return lookup(self)

    monkeypatch.setattr(TeacherSource, "resolve", no_database)
    session = _run(trainer, space, **{"model/width": 8})
    assert session.history[-1]["val_acc"] > 0.2
