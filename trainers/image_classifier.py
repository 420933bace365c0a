"""Image classification: the trainer most studies use.

Example:
    >>> from spaces import SearchSpace, ResNetSpace, TrainingSpace
    >>> from trainers import ImageClassifier
    >>> space = SearchSpace({"model": ResNetSpace(stages=1, depth=1, width=8),
    ...                      "train": TrainingSpace()})
    >>> config = space.unflatten({})
    >>> metrics = ImageClassifier(dataset="digits", epochs=1).fit(config, space)
    >>> 0.0 <= metrics["val_acc"] <= 1.0
    True
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from spaces import Family, SearchSpace, TrainingSpace, model_stats
from spaces.family import config_of
from trainers.base import Trainer, TrialSession
from trainers.data import DATASETS, TensorData, batches, load_dataset

CHECKPOINT_VERSION = 1
# TrainingSpace knobs this trainer does not apply yet: a space may not search or set them.
UNSUPPORTED_KNOBS = ("prune_ratio", "distill_alpha", "distill_temperature")
UNSUPPORTED_PRECISIONS = ("fp16",)


class ImageClassifier(Trainer):
    """Train a sampled network to classify images, reporting every epoch.

    The space must have a ``"model"`` entry that is an architecture family (it builds the
    network) and may have a ``"train"`` entry that is a
    :class:`~spaces.TrainingSpace` (defaults are used for knobs it leaves out).

    Each report holds ``epoch``, ``val_acc``, ``val_loss``, ``train_loss``,
    ``train_acc``, ``lr`` (at the end of the epoch), ``seconds`` (training time of the
    epoch) and ``samples_per_s``; the final metrics add ``params``.

    Args:
        dataset: One of ``trainers.data.DATASETS``.
        epochs: Training epochs of a full trial (a scheduler may stop a trial earlier).
        val_fraction: Share of the data held out for validation.
        seed: Seed of the data split and of each trial's initialisation and batch order.
        device: ``"cpu"``, ``"cuda"``, or ``None`` for CUDA when available.
    """

    name = "image_classifier"
    metrics = (
        "epoch",
        "val_acc",
        "val_loss",
        "train_loss",
        "train_acc",
        "lr",
        "seconds",
        "samples_per_s",
    )

    def __init__(
        self,
        dataset: str = "digits",
        epochs: int = 10,
        val_fraction: float = 0.2,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        if dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {dataset!r}; available: {list(DATASETS)}.")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {epochs!r}.")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}.")
        if device not in (None, "cpu", "cuda"):
            raise ValueError(f"device must be 'cpu', 'cuda' or None, got {device!r}.")
        self.dataset = dataset
        self.max_epochs = epochs
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device

    def spec(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "epochs": self.max_epochs,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "device": self.device,
        }

    def check_space(self, space: SearchSpace) -> None:
        model = space.get("model")
        if not isinstance(model, Family) or not hasattr(model, "build"):
            raise ValueError(
                "ImageClassifier needs space['model'] to be an architecture family such as "
                f"ResNetSpace(...); got {model!r}."
            )
        train = space.get("train")
        if train is not None and not isinstance(train, TrainingSpace):
            raise ValueError(
                f"ImageClassifier needs space['train'] to be a TrainingSpace(...); got {train!r}."
            )
        if train is not None:
            self._check_training(train)
        extra = sorted(set(space) - {"model", "train"})
        if extra:
            raise ValueError(
                f"ImageClassifier reads only 'model' and 'train' from the space; "
                f"remove or rename {extra}."
            )

    def _check_training(self, train: TrainingSpace) -> None:
        ignored = [k for k in train.searched_or_changed() if k in UNSUPPORTED_KNOBS]
        if ignored:
            raise ValueError(
                f"ImageClassifier does not apply {ignored} yet; leave them at their defaults "
                "in TrainingSpace."
            )
        bad = [p for p in train.knob_values("precision") or [] if p in UNSUPPORTED_PRECISIONS]
        if bad:
            raise ValueError(f"ImageClassifier does not train in {bad} yet; use fp32 or bf16.")
        epochs = train["epochs"]
        top = getattr(epochs, "high", None) or max(
            (v for v in train.knob_values("epochs") or [] if v is not None), default=0
        )
        if top > self.max_epochs:
            raise ValueError(
                f"TrainingSpace epochs reach {top}, beyond the trainer's budget of "
                f"{self.max_epochs}; raise ImageClassifier(epochs=...) to at least {top}."
            )

    def model_stats(
        self, config: Mapping[str, Any], space: SearchSpace, metrics: set[str]
    ) -> dict[str, float]:
        """Parameters, FLOPs, activation bytes (and latency when asked) on this data's shape."""
        data = load_dataset(self.dataset, self.val_fraction, self.seed)
        stats = model_stats(
            space["model"],  # type: ignore[arg-type]
            config["model"],
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            latency="latency_ms" in metrics,
        )
        return {k: v for k, v in dataclasses.asdict(stats).items() if v is not None}

    def epochs_for(self, config: Mapping[str, Any]) -> int:
        return config.get("train", {}).get("epochs") or self.max_epochs

    def _device(self) -> torch.device:
        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def run(
        self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession
    ) -> dict[str, float]:
        device = self._device()
        data = load_dataset(self.dataset, self.val_fraction, self.seed).to(device)
        hp = config_of(TrainingSpace, config.get("train", {}))
        torch.manual_seed(self.seed)
        model = (
            space["model"]
            .build(  # type: ignore[union-attr]
                config["model"], input_shape=data.input_shape, num_classes=data.num_classes
            )
            .to(device)
        )
        epochs = self.epochs_for(config)
        steps_per_epoch = max(1, len(data.y_train) // hp["batch_size"])
        optimizer = _make_optimizer(model, hp)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _schedule(hp["schedule"], steps_per_epoch * epochs)
        )
        gen = torch.Generator().manual_seed(self.seed)
        start = 0
        state = session.restore()
        if state is not None:
            if state.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"Checkpoint version {state.get('version')} is not supported.")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            start = state["epoch"]
        metrics: dict[str, float] = {}
        for epoch in range(start + 1, epochs + 1):
            t0 = time.perf_counter()
            train_loss, train_acc, seen = _train_epoch(
                model, data, optimizer, scheduler, hp, gen, epoch
            )
            seconds = time.perf_counter() - t0
            val_loss, val_acc = evaluate(model, data, hp["precision"])
            metrics = {
                "epoch": epoch,
                "val_acc": val_acc,
                "val_loss": val_loss,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "lr": scheduler.get_last_lr()[0],
                "seconds": seconds,
                "samples_per_s": seen / seconds if seconds > 0 else 0.0,
            }
            checkpoint = {
                "version": CHECKPOINT_VERSION,
                "epoch": epoch,
                "config": dict(config),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": gen.get_state(),
            }
            session.report(metrics, checkpoint)
        metrics["params"] = float(sum(p.numel() for p in model.parameters()))
        return metrics


def _schedule(name: str, total: int) -> Callable[[int], float]:
    """The learning-rate multiplier at step ``s`` of ``total``."""
    if name == "constant":
        return lambda s: 1.0
    if name == "linear":
        return lambda s: max(0.0, 1.0 - s / total)
    return lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total))


def augment_batch(x: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Randomly translate each image by up to ``strength`` x 25% of its size (batched).

    Pixels shifted in from outside are zero (the normalised mean background).
    """
    if strength <= 0:
        return x
    n = x.shape[0]
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 0.5 * strength  # 0.5 = 25% of 2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    grid = nn.functional.affine_grid(
        theta.to(x.device, x.dtype), list(x.shape), align_corners=False
    )
    return nn.functional.grid_sample(
        x, grid, mode="nearest", padding_mode="zeros", align_corners=False
    )


def _make_optimizer(model: nn.Module, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    if hp["optimizer"] == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=hp["lr"],
            momentum=hp["momentum"],
            weight_decay=hp["weight_decay"],
            nesterov=hp["momentum"] > 0,
        )
    return torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])


def _autocast(precision: str, device: torch.device) -> Any:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _train_epoch(
    model: nn.Module,
    data: TensorData,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    hp: Mapping[str, Any],
    gen: torch.Generator,
    epoch: int,
) -> tuple[float, float, int]:
    model.train()
    loss_sum = torch.zeros((), device=data.x_train.device)
    correct = torch.zeros((), device=data.x_train.device, dtype=torch.long)
    seen = 0
    for step, idx in enumerate(batches(len(data.y_train), hp["batch_size"], gen)):
        idx = idx.to(data.x_train.device)
        x, y = augment_batch(data.x_train[idx], hp["augment"], gen), data.y_train[idx]
        with _autocast(hp["precision"], x.device):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits.float(), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"Training loss became {loss.item()} at epoch {epoch}, step {step}; "
                "lower the learning rate or its upper bound in the space."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    return loss_sum.item() / seen, correct.item() / seen, seen


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorData, precision: str = "fp32") -> tuple[float, float]:
    """Validation loss and accuracy of ``model`` on ``data``'s held-out split."""
    model.eval()
    with _autocast(precision, data.x_val.device):
        logits = model(data.x_val).float()
    loss = nn.functional.cross_entropy(logits, data.y_val).item()
    acc = (logits.argmax(1) == data.y_val).float().mean().item()
    return loss, acc
