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
from typing import Any

import torch

from spaces import DenseNetSpace, Family, ResNetSpace, SearchSpace, TrainingSpace, model_stats
from spaces.family import config_of
from trainers.base import Trainer, TrialSession
from trainers.data import DEFAULT_IN_MEMORY_LIMIT, describe_source, load_data
from trainers.hardware import merge_ranks
from trainers.loop import TrialRun, lr_schedule


class ImageClassifier(Trainer):
    """Train a sampled network to classify images, reporting every epoch.

    The space must have a ``"model"`` entry that is an architecture family (it builds the
    network) and may have a ``"train"`` entry that is a
    :class:`~spaces.TrainingSpace` (defaults are used for knobs it leaves out). Every
    knob of the training space is applied: see :mod:`trainers.loop` for precision,
    distillation, pruning and data parallelism.

    Each report holds ``epoch``, ``val_acc``, ``val_loss``, ``train_loss``,
    ``train_acc``, ``lr`` (at the end of the epoch), ``seconds`` (training time of the
    epoch), ``samples_per_s``, ``skipped_steps`` (fp16 steps skipped by the loss
    scaler), and the epoch's hardware use (:mod:`trainers.hardware`): ``peak_rss_mb``
    and ``cpu_util``, and on CUDA ``peak_gpu_mem_mb`` and (with ``pynvml``)
    ``gpu_util``. The last report adds the final figures of
    :meth:`trainers.loop.TrialRun.final_metrics` (``params``, ``flops``,
    ``latency_ms``, ``test_acc``, the dense figures after pruning, int8 figures).

    A configuration with ``prune_ratio > 0`` trains ``epochs - F`` epochs, is pruned,
    then fine-tuned for the last ``F = max(1, ceil(epochs * finetune_fraction))``
    epochs (with one epoch, it is pruned at initialisation and trained once).

    Args:
        dataset: A source :func:`trainers.data.load_data` reads: ``"digits"``,
            ``"cifar10"``, ``"folder"``, a callable or an ``"module:function"`` path.
        epochs: Training epochs of a full trial (a scheduler may stop a trial earlier).
        val_fraction: Share of the training data held out for validation (``None``: 0.2,
            or the source's own split).
        seed: Seed of the data split and of each trial's initialisation and batch order.
        device: ``"cpu"``, ``"cuda"``, or ``None`` for CUDA when available.
        data_dir: Where ``"cifar10"`` and ``"folder"`` data live.
        image_size: Size images of a folder are resized to.
        in_memory_limit: Bytes up to which the data lives on the device as tensors (the
            fast path); larger data goes through a DataLoader.
        num_workers: DataLoader workers for large data (``None``: up to 4).
        teacher: The teacher of configurations that distil (``distill_alpha > 0``): a
            checkpoint path, or a trial of an earlier study, ``{"study": NAME, "trial":
            N}`` or ``{"study": NAME, "trial": "best"}`` (add ``"storage": URL`` when that
            study is in another database); see :class:`trainers.distill.TeacherSource`. A
            study run resolves a trial to its checkpoint before it starts
            (:mod:`studies.teacher`), and stores the trial's number.
        finetune_fraction: Share of the epochs spent fine-tuning after pruning.
        quantize: Report post-training int8 accuracy and CPU latency of the final model.
        compile: Compile each trial's network with ``torch.compile``.
        channels_last: Use ``channels_last``; ``None`` means on CUDA only.
        tf32: Allow TF32 on CUDA GPUs that have it.
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
        "skipped_steps",
        "peak_rss_mb",
        "cpu_util",
    )
    # Added to the last epoch's report (trainers.loop.TrialRun.final_metrics); the
    # final network's cost, after pruning, measured on the trial's device.
    final_metrics = ("params", "flops", "activation_bytes", "latency_ms", "latency_batch_ms")

    def __init__(
        self,
        dataset: Any = "digits",
        epochs: int = 10,
        val_fraction: float | None = None,
        seed: int = 0,
        device: str | None = None,
        *,
        data_dir: str | None = None,
        image_size: int | tuple[int, int] | None = None,
        in_memory_limit: int = DEFAULT_IN_MEMORY_LIMIT,
        num_workers: int | None = None,
        teacher: Any = None,
        finetune_fraction: float = 0.25,
        quantize: bool = False,
        compile: bool = False,
        channels_last: bool | None = None,
        tf32: bool = True,
    ) -> None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {epochs!r}.")
        if device not in (None, "cpu", "cuda"):
            raise ValueError(f"device must be 'cpu', 'cuda' or None, got {device!r}.")
        if not 0.0 < finetune_fraction < 1.0:
            raise ValueError(f"finetune_fraction must lie in (0, 1), got {finetune_fraction}.")
        self.source = describe_source(
            dataset,
            data_dir,
            val_fraction=val_fraction,
            seed=seed,
            image_size=image_size,
            in_memory_limit=in_memory_limit,
            num_workers=num_workers,
        )
        self.max_epochs = epochs
        self.seed = seed
        self.device = device
        self.teacher = None
        if teacher is not None:
            from trainers.distill import TeacherSource

            self.teacher = TeacherSource.parse(teacher)
        self.finetune_fraction = finetune_fraction
        self.quantize, self.compile = bool(quantize), bool(compile)
        self.channels_last, self.tf32 = channels_last, bool(tf32)
        # Set in the driver by use_teacher() or prepare(): the teacher's checkpoint path
        # (a study trial is looked up there, so workers never open the database) and its
        # shared logits.
        self._teacher_path: str | None = None
        self._shared_logits: Any = None

    def spec(self) -> dict[str, Any]:
        src = self.source
        own_split = src["source"] not in ("digits", "cifar10")  # a function or a folder
        return {
            "dataset": src["source"],
            "epochs": self.max_epochs,
            "val_fraction": None if own_split else src["val_fraction"],
            "seed": self.seed,
            "device": self.device,
            "data_dir": src["data_dir"],
            "image_size": src["image_size"],
            "in_memory_limit": src["in_memory_limit"],
            "num_workers": src["num_workers"],
            "teacher": self.teacher.to_json() if self.teacher is not None else None,
            "finetune_fraction": self.finetune_fraction,
            "quantize": self.quantize,
            "compile": self.compile,
            "channels_last": self.channels_last,
            "tf32": self.tf32,
        }

    def reported_metrics(self) -> tuple[str, ...]:
        """The per-epoch metrics, the final network's cost, ``test_acc``/``test_loss``
        when the data has a test split, and the int8 figures with ``quantize=True``
        (reported where the network's layers allow int8). The dense figures of pruned
        configurations (``dense_params``, ...) are left out: only pruned trials report them.
        """
        extra: list[str] = []
        if self.load_data().has_test:
            extra += ["test_acc", "test_loss"]
        if self.quantize:
            extra += ["int8_acc", "int8_latency_ms", "fp32_latency_ms"]
        return (*super().reported_metrics(), *extra)

    def load_data(self) -> Any:
        """The trainer's dataset, split by its seed (cached per process)."""
        return load_data(**self.source)

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
        alpha = train["distill_alpha"]
        distils = (getattr(alpha, "high", 0) or 0) > 0 or any(
            (v or 0) > 0 for v in train.knob_values("distill_alpha") or []
        )
        if distils and self.teacher is None:
            raise ValueError(
                "The space distils (distill_alpha > 0) but the trainer has no teacher; "
                "pass ImageClassifier(teacher='path/to/checkpoint.pt') or "
                "teacher={'study': NAME, 'trial': 'best'} (or 'trial': N)."
            )
        epochs = train["epochs"]
        top = getattr(epochs, "high", None) or max(
            (v for v in train.knob_values("epochs") or [] if v is not None), default=0
        )
        if top > self.max_epochs:
            raise ValueError(
                f"TrainingSpace epochs reach {top}, beyond the trainer's budget of "
                f"{self.max_epochs}; raise ImageClassifier(epochs=...) to at least {top}."
            )

    def use_teacher(
        self, source: Any, checkpoint: str, state: Mapping[str, Any] | None = None
    ) -> None:
        """Distil from ``checkpoint``, found in the driver for ``source`` (which
        :meth:`spec` stores from now on); :func:`studies.teacher.resolve_teacher` calls it.

        Args:
            source: The teacher as the study stores it (a ``TeacherSource`` or its dict).
            checkpoint: The checkpoint file or Ray checkpoint directory it resolved to.
            state: That checkpoint, when already read: checked against the data at once.

        Raises:
            ValueError: when ``state`` does not fit the data (input shape, classes).

        Example:
            >>> trainer = ImageClassifier(epochs=1)
            >>> trainer.use_teacher({"study": "big", "trial": 3}, "/runs/t3/checkpoint_000009")
            >>> trainer.spec()["teacher"]
            {'study': 'big', 'trial': 3}
        """
        from trainers.distill import TeacherSource, check_teacher

        if state is not None:
            data = self.load_data()
            check_teacher(state, data.input_shape, data.num_classes)
        source = TeacherSource.parse(source)
        if (source, checkpoint) != (self.teacher, self._teacher_path):
            self._shared_logits = None  # another teacher: its logits are computed again
        self.teacher, self._teacher_path = source, checkpoint

    def prepare(self) -> None:
        """In the driver, once Ray is up: check the teacher against the data and share
        its logits on the training examples with every trial through Ray's object store
        (used by trials that distil without augmentation)."""
        if self.teacher is None or self._shared_logits is not None:
            return
        from trainers.distill import SharedLogits, load_teacher, teacher_logits

        data = self.load_data()
        if self._teacher_path is None:  # else found by the study run (use_teacher)
            self._teacher_path = self.teacher.resolve()
        teacher = load_teacher(
            self._teacher_path, "cpu", input_shape=data.input_shape, num_classes=data.num_classes
        )
        self._shared_logits = SharedLogits.put(teacher_logits(teacher, data))

    def model_stats(
        self, config: Mapping[str, Any], space: SearchSpace, metrics: set[str]
    ) -> dict[str, float]:
        """Parameters, FLOPs, activation bytes (and latency when asked) on this data's shape."""
        data = self.load_data()
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

    def prune_after(self, config: Mapping[str, Any]) -> int:
        """Epochs a configuration trains before it is pruned (its budget if it is not)."""
        epochs = self.epochs_for(config)
        if not config_of(TrainingSpace, config.get("train", {}))["prune_ratio"]:
            return epochs
        return epochs - max(1, math.ceil(epochs * self.finetune_fraction))

    def fit(self, config: Mapping[str, Any], space: SearchSpace | None = None) -> dict[str, float]:
        """Train one configuration in this process, without Ray; return the final metrics.

        Args:
            config: ``{"model": {...}, "train": {...}}``. Without a ``space``,
                ``config["model"]["family"]`` names the architecture family (``"resnet"``
                by default) and the other keys are its configuration.
            space: The space the configuration came from.
        """
        if space is None:
            config, space = _space_of(config)
        return super().fit(config, space)

    def _device(self) -> torch.device:
        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def trial_run(
        self, config: Mapping[str, Any], space: SearchSpace, rank: int = 0, world_size: int = 1
    ) -> TrialRun:
        """The training state of ``config`` on this worker (rank ``rank``)."""
        device = self._device()
        if device.type == "cuda" and world_size > 1:
            device = torch.device("cuda", torch.cuda.current_device())
        data = self.load_data().to(device)
        channels_last = device.type == "cuda" if self.channels_last is None else self.channels_last
        return TrialRun(
            space,
            config,
            data,
            device,
            epochs=self.epochs_for(config),
            seed=self.seed,
            prune_after=self.prune_after(config),
            teacher=self._teacher_fn(config, data, device),
            rank=rank,
            world_size=world_size,
            compile=self.compile,
            channels_last=channels_last,
            tf32=self.tf32,
        )

    def _teacher_fn(
        self, config: Mapping[str, Any], data: Any, device: torch.device
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        hp = config_of(TrainingSpace, config.get("train", {}))
        if hp["distill_alpha"] <= 0 or self.teacher is None:
            return None
        from trainers.distill import load_teacher, teacher_logits

        source = self._teacher_path or self.teacher

        if hp["augment"] <= 0:  # the same images every epoch: look the logits up
            if self._shared_logits is not None:
                logits = self._shared_logits.get(device)
            else:
                logits = teacher_logits(load_teacher(source, device), data).to(device)
            return lambda idx, x: logits[idx]
        teacher = load_teacher(source, device)
        return lambda idx, x: teacher(x)

    def run(
        self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession
    ) -> dict[str, float]:
        workers = int(getattr(session, "workers", 1) or 1)
        try:
            if workers > 1:
                from trainers.distributed import WorkerGroup

                with WorkerGroup(workers) as group:
                    group.setup(_worker_run, self, dict(config), space)
                    return self._drive(config, group.call, session)
            run = self.trial_run(config, space)
            return self._drive(config, lambda method, *a: [getattr(run, method)(*a)], session)
        except torch.OutOfMemoryError as e:
            raise torch.OutOfMemoryError(
                f"{e} -- this configuration does not fit the device; lower the batch size "
                "(or its upper bound), narrow the network, or train in bf16."
            ) from e

    def _drive(
        self, config: Mapping[str, Any], call: Callable[..., list[Any]], session: TrialSession
    ) -> dict[str, float]:
        """The epoch loop, on one worker or a group (``call`` runs a method on each)."""
        hp = config_of(TrainingSpace, config.get("train", {}))
        epochs, prune_after = self.epochs_for(config), self.prune_after(config)
        state = session.restore()
        start = call("load_state_dict", state)[0] if state is not None else 0
        steps_per_epoch = call("steps")[0]
        schedule = lr_schedule(hp["schedule"], steps_per_epoch * epochs)
        metrics: dict[str, Any] = {}
        for epoch in range(start + 1, epochs + 1):
            if epoch == prune_after + 1 and hp["prune_ratio"] > 0:
                call("prune")
            call("meter_start")
            t0 = time.perf_counter()
            sums = call("train_epoch", epoch)
            seconds = time.perf_counter() - t0
            seen = sum(s["seen"] for s in sums)
            val_loss, val_acc = call("evaluate", "val")[0]
            hardware = merge_ranks(call("meter_stop"))
            metrics = {
                "epoch": epoch,
                "val_acc": val_acc,
                "val_loss": val_loss,
                "train_loss": sum(s["loss"] for s in sums) / seen,
                "train_acc": sum(s["correct"] for s in sums) / seen,
                "lr": hp["lr"] * schedule(epoch * steps_per_epoch),
                "seconds": seconds,
                "samples_per_s": seen / seconds if seconds > 0 else 0.0,
                "skipped_steps": max(s["skipped"] for s in sums),
                **hardware,
            }
            if epoch == epochs:
                metrics.update(call("final_metrics", self.quantize)[0])
            session.report(metrics, call("state_dict", epoch)[0])
        return metrics


def _worker_run(
    rank: int, world_size: int, trainer: ImageClassifier, config: dict, space: SearchSpace
) -> TrialRun:
    """The training state on one data-parallel worker (a ``WorkerGroup`` factory)."""
    return trainer.trial_run(config, space, rank=rank, world_size=world_size)


_FAMILIES = {"resnet": ResNetSpace, "densenet": DenseNetSpace}


def _space_of(config: Mapping[str, Any]) -> tuple[dict[str, Any], SearchSpace]:
    """A space for a bare configuration whose model names its family (``"resnet"``)."""
    model = dict(config.get("model", {}))
    kind = model.pop("family", "resnet")
    if kind not in _FAMILIES:
        raise ValueError(
            f"Unknown model family {kind!r}; set config['model']['family'] to one of "
            f"{sorted(_FAMILIES)}, or pass the space: fit(config, space)."
        )
    space = SearchSpace({"model": _FAMILIES[kind](), "train": TrainingSpace()})
    return {**config, "model": model}, space
