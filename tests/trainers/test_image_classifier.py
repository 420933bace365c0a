"""ImageClassifier in-process: metrics, learning, resume from a checkpoint, bad input."""

from __future__ import annotations

import pytest

from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from tests.trainers.sessions import Stop, StopAfter
from trainers import ImageClassifier, LocalSession, load_dataset, trainer_from_json


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=Int(1, 2), width=Categorical([8, 16])),
            "train": TrainingSpace(lr=Float(1e-3, 1e-1, log=True)),
        }
    )


def _config():
    return _space().unflatten({"model/depth": 1, "model/width": 8, "train/lr": 3e-3})


def test_digits_split_is_stratified_and_normalised() -> None:
    data = load_dataset("digits", val_fraction=0.2, seed=0)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert len(data.y_train) + len(data.y_val) == 1797
    assert set(data.y_val.tolist()) == set(range(10))
    assert abs(float(data.x_train.mean())) < 1e-4


def test_fit_reports_every_epoch_and_learns() -> None:
    trainer = ImageClassifier(dataset="digits", epochs=3)
    session = LocalSession()
    final = trainer.run(_config(), _space(), session)
    assert [h["epoch"] for h in session.history] == [1, 2, 3]
    assert set(ImageClassifier.metrics) <= set(session.history[0])
    assert final["val_acc"] > 0.8, "a small ResNet learns digits to >80% in 3 epochs"
    assert session.history[-1]["train_loss"] < session.history[0]["train_loss"]
    assert final["params"] > 0


def test_resume_from_checkpoint_continues_where_it_stopped() -> None:
    full = LocalSession()
    ImageClassifier(dataset="digits", epochs=3).run(_config(), _space(), full)

    stopped = LocalSession()
    with pytest.raises(Stop):  # as if the trial's worker died after epoch 1
        ImageClassifier(dataset="digits", epochs=3).run(_config(), _space(), StopAfter(stopped, 1))
    resumed = LocalSession()
    resumed.checkpoint = stopped.checkpoint
    ImageClassifier(dataset="digits", epochs=3).run(_config(), _space(), resumed)
    assert [h["epoch"] for h in resumed.history] == [2, 3]
    assert resumed.history[-1]["val_acc"] == pytest.approx(full.history[-1]["val_acc"], abs=1e-6)


def test_stop_helper_really_stops() -> None:
    session = LocalSession()
    with pytest.raises(Stop):
        ImageClassifier(epochs=3).run(_config(), _space(), StopAfter(session, 1))
    assert len(session.history) == 1 and session.checkpoint["epoch"] == 1


def test_bf16_precision_trains() -> None:
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=1, depth=1, width=8),
            "train": TrainingSpace(precision="bf16"),
        }
    )
    metrics = ImageClassifier(epochs=1).fit(space.unflatten({}), space)
    assert 0.0 <= metrics["val_acc"] <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "imagenet"}, "Unknown dataset"),
        ({"epochs": 0}, "positive int"),
        ({"val_fraction": 1.5}, r"\(0, 1\)"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_bad_trainer_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        ImageClassifier(**kwargs)


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (SearchSpace({"net": ResNetSpace()}), r"space\['model'\]"),
        (SearchSpace({"model": ResNetSpace(), "train": {"lr": Float(0.1, 1.0)}}), "TrainingSpace"),
        (SearchSpace({"model": ResNetSpace(), "extra": Int(1, 2)}), "remove or rename"),
    ],
)
def test_check_space_says_what_is_wrong(space, match) -> None:
    with pytest.raises(ValueError, match=match):
        ImageClassifier().check_space(space)


def test_spec_round_trip() -> None:
    trainer = ImageClassifier(dataset="digits", epochs=7, seed=3)
    again = trainer_from_json(trainer.to_json())
    assert isinstance(again, ImageClassifier) and again.spec() == trainer.spec()
    with pytest.raises(ValueError, match="known trainers"):
        trainer_from_json({"trainer": "nope"})


@pytest.mark.parametrize(
    ("train", "match"),
    [
        (TrainingSpace(distill_alpha=Float(0.0, 0.9)), "has no teacher"),
        (TrainingSpace(distill_alpha=0.5), "has no teacher"),
        (TrainingSpace(epochs=Int(2, 12)), r"beyond the trainer's budget of 5"),
    ],
)
def test_knobs_the_trainer_cannot_honour_are_refused(train, match) -> None:
    space = SearchSpace({"model": ResNetSpace(), "train": train})
    with pytest.raises(ValueError, match=match):
        ImageClassifier(epochs=5).check_space(space)


def test_epochs_knob_sets_the_trial_length_and_budget() -> None:
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=1, depth=1, width=8),
            "train": TrainingSpace(epochs=Int(1, 3)),
        }
    )
    trainer = ImageClassifier(epochs=3)
    trainer.check_space(space)
    config = space.unflatten({"train/epochs": 2})
    assert trainer.epochs_for(config) == 2
    session = LocalSession()
    trainer.run(config, space, session)
    assert [h["epoch"] for h in session.history] == [1, 2]


@pytest.mark.parametrize(
    ("schedule", "last_lr"), [("cosine", 0.0), ("linear", 0.0), ("constant", 0.01)]
)
def test_schedules_end_where_they_should(schedule: str, last_lr: float) -> None:
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=1, depth=1, width=4),
            "train": TrainingSpace(lr=0.01, schedule=schedule, batch_size=256),
        }
    )
    session = LocalSession()
    ImageClassifier(epochs=2).run(space.unflatten({}), space, session)
    assert session.history[-1]["lr"] == pytest.approx(last_lr, abs=1e-9)
    assert session.history[0]["lr"] == pytest.approx(0.01 if schedule == "constant" else 0.005)


def test_augmentation_translates_images_but_keeps_shape() -> None:
    import torch

    from trainers.loop import augment_batch

    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment_batch(x, 0.0, gen), x)
    moved = augment_batch(x, 1.0, gen)
    assert moved.shape == x.shape
    assert not torch.equal(moved, x), "strength 1 moves at least some images"
    assert float(moved.sum()) <= float(x.sum()), "translation only loses pixels at the border"


def test_model_stats_describe_the_network_a_config_builds() -> None:
    space = _space()
    config = _config()
    trainer = ImageClassifier()
    stats = trainer.model_stats(config, space, {"params"})
    net = space["model"].build(config["model"], input_shape=(1, 8, 8), num_classes=10)
    assert stats["params"] == sum(p.numel() for p in net.parameters())
    assert stats["flops"] > 0 and stats["activation_bytes"] > 0
    assert "latency_ms" not in stats, "latency is measured only when a constraint needs it"
    assert trainer.model_stats(config, space, {"latency_ms"})["latency_ms"] > 0
