"""One trial's training state on one worker: model, optimizer, precision, distillation.

:class:`TrialRun` is what :class:`~trainers.ImageClassifier` drives epoch by epoch, in
the trial's own process or, for data parallelism, on each of the trial's workers
(:mod:`trainers.distributed`). It holds everything a checkpoint needs and nothing
about where metrics go.

- **Precision** (Micikevicius et al. 2018, "Mixed Precision Training"): ``fp32``;
  ``bf16`` autocast (no loss scaling needed); ``fp16`` autocast with dynamic loss
  scaling by :class:`torch.amp.GradScaler`, whose skipped steps (overflowing gradients)
  are counted and reported. Losses and logits are taken in fp32; norms stay fp32 under
  autocast. TF32 matmuls and ``channels_last`` apply on CUDA only.
- **Distillation** (Hinton et al. 2015): with ``distill_alpha > 0`` the loss is
  :func:`trainers.distill.distillation_loss` against a teacher's logits, looked up per
  example when the data is not augmented (cached once per study), else computed by the
  teacher on the augmented batch.
- **Pruning** (Fang et al. 2023, DepGraph): with ``prune_ratio > 0`` the network is
  pruned structurally after ``prune_after`` epochs and fine-tuned for the rest; the
  learning-rate schedule runs on over both phases.
- **Data parallel** (Li et al. 2020, PyTorch DDP): with ``world_size > 1`` the model is
  wrapped in ``DistributedDataParallel``, every rank draws the same global batch order
  and trains on its share, and epoch sums are all-reduced.

The learning rate is set from the schedule at every step (no scheduler object), so the
only schedule state is the global step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from spaces import SearchSpace, TrainingSpace
from spaces.family import config_of
from trainers.checkpoint import check_version, model_state, unwrap
from trainers.hardware import EpochMeter


class TrialRun:
    """The training state of one trial on one worker.

    Args:
        space: The study's search space (``"model"`` builds the network).
        config: The trial's configuration.
        data: A dataset from :mod:`trainers.data`, already on ``device``.
        device: Where the model trains.
        epochs: Epochs of the full run (pruning and fine-tuning included).
        seed: Seed of initialisation and batch order (the same on every rank).
        prune_after: Epochs trained before pruning (only when ``prune_ratio > 0``).
        teacher: A callable ``(idx, x) -> logits`` giving teacher logits for a batch,
            needed when the configuration distils (``distill_alpha > 0``).
        rank, world_size: This worker's place in a data-parallel group.
        compile: Compile the network with ``torch.compile`` (once per run).
        channels_last: Use the ``channels_last`` memory format.
        tf32: Allow TF32 matmuls and convolutions (CUDA, fp32 precision).
    """

    def __init__(
        self,
        space: SearchSpace,
        config: Mapping[str, Any],
        data: Any,
        device: torch.device,
        *,
        epochs: int,
        seed: int,
        prune_after: int,
        teacher: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        rank: int = 0,
        world_size: int = 1,
        compile: bool = False,
        channels_last: bool = False,
        tf32: bool = True,
    ) -> None:
        self.space, self.config, self.data, self.device = space, dict(config), data, device
        self.hp = config_of(TrainingSpace, config.get("train", {}))
        self.epochs, self.prune_after = epochs, prune_after
        self.teacher = teacher
        self.rank, self.world_size = rank, world_size
        self.compile, self.channels_last = compile, channels_last
        if tf32 and device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(seed)
        self.net = (
            space["model"]  # type: ignore[union-attr]
            .build(config["model"], input_shape=data.input_shape, num_classes=data.num_classes)
            .to(device)
        )
        self.pruned: dict[str, Any] | None = None
        self.dense_stats: dict[str, float] | None = None
        self.steps_per_epoch = max(1, data.num_train // self.hp["batch_size"])
        self.step = 0
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)  # batch order: same on all ranks
        fp16 = self.hp["precision"] == "fp16"
        self.scaler = torch.amp.GradScaler(device.type) if fp16 else None
        self.meter = EpochMeter(device)  # this worker's memory and CPU/GPU use per epoch
        self._prepare()

    def _prepare(self) -> None:
        """(Re)create the training wrappers and optimizer around ``self.net``."""
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        model: nn.Module = self.net
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.model = torch.compile(model) if self.compile else model
        self.optimizer = make_optimizer(self.net, self.hp)

    def steps(self) -> int:
        """Optimizer steps per epoch (the schedule's unit)."""
        return self.steps_per_epoch

    @property
    def distils(self) -> bool:
        return self.hp["distill_alpha"] > 0

    @property
    def prunes(self) -> bool:
        return self.hp["prune_ratio"] > 0

    def meter_start(self) -> None:
        """An epoch starts: measure this worker's hardware use from now
        (:class:`trainers.hardware.EpochMeter`)."""
        self.meter.start()

    def meter_stop(self) -> dict[str, float]:
        """The epoch's peak memory and CPU/GPU utilisation on this worker."""
        return self.meter.stop()

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch; returns this rank's sums (``loss``, ``correct``, ``seen``,
        ``skipped``), to be added over ranks by the caller.

        Raises:
            FloatingPointError: when the loss is NaN or infinite (for fp16: when every
                step of the epoch overflowed).
        """
        self.model.train()
        hp, dev = self.hp, self.device
        schedule = lr_schedule(hp["schedule"], self.steps_per_epoch * self.epochs)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen, steps, skipped = 0, 0, 0
        # Augmentation draws from its own stream, per rank and epoch, so the batch order
        # stays the same on every rank and a resumed run augments as the original did.
        aug = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 131 + self.rank)
        for idx, x, y in self.data.train_batches(hp["batch_size"], self.generator):
            if self.world_size > 1:  # every rank drew the same global batch
                idx, x, y = (t[self.rank :: self.world_size] for t in (idx, x, y))
            x = augment_batch(x, hp["augment"], aug)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            for group in self.optimizer.param_groups:
                group["lr"] = hp["lr"] * schedule(self.step)
            with autocast(hp["precision"], dev):
                logits = self.model(x).float()
            loss = self._loss(logits, idx, x, y)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is None:
                loss.backward()
                self.optimizer.step()
            else:
                scale = self.scaler.get_scale()
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.scaler.get_scale() < scale:  # overflow: the step was skipped
                    skipped += 1
                    loss = torch.where(torch.isfinite(loss), loss, 0.0)
            self.step += 1
            steps += 1
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
        total = loss_sum.item()
        if not math.isfinite(total) or (steps and skipped == steps):
            what = f"became {total}" if not math.isfinite(total) else "overflowed at every step"
            raise FloatingPointError(
                f"Training loss {what} in epoch {epoch}; lower the learning rate (or its "
                "upper bound in the space), or train in fp32 or bf16."
            )
        return {"loss": total, "correct": float(correct.item()), "seen": seen, "skipped": skipped}

    def _loss(
        self, logits: torch.Tensor, idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        if not self.distils:
            return nn.functional.cross_entropy(logits, y)
        from trainers.distill import distillation_loss

        if self.teacher is None:
            raise ValueError(
                "This configuration distils (distill_alpha > 0) but the trainer has no "
                "teacher; pass ImageClassifier(teacher=...)."
            )
        with torch.no_grad():
            teacher = self.teacher(idx, x).float()
        return distillation_loss(
            logits, teacher, y, self.hp["distill_alpha"], self.hp["distill_temperature"]
        )

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> tuple[float, float]:
        """Loss and accuracy of the network on the ``"val"`` or ``"test"`` split."""
        self.net.eval()
        loss, correct, count = 0.0, 0, 0
        for x, y in self.data.eval_batches(split, 1024):
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.hp["precision"], self.device):
                logits = self.net(x).float()
            loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum().item())
            count += len(y)
        return loss / max(1, count), correct / max(1, count)

    def prune(self) -> None:
        """Prune the network to the configuration's ``prune_ratio`` (once), measuring the
        dense network first; training then fine-tunes the pruned one."""
        from trainers.pruning import measure, prune_model, pruned_structure

        example = torch.zeros(1, *self.data.input_shape, device=self.device)
        self.dense_stats = measure(self.net, example)
        self.net = prune_model(self.net, self.hp["prune_ratio"], example)
        self.pruned = pruned_structure(self.net)
        self._prepare()

    def final_metrics(self, quantize: bool = False) -> dict[str, float]:
        """What a finished trial adds to its last report.

        The final network's ``params``, ``flops`` and ``activation_bytes`` (as
        :func:`spaces.model_stats` counts them, for one input), ``latency_ms`` (one input)
        and ``latency_batch_ms`` (one batch of the trial's batch size): the median of 5
        forward passes after 2 warm-ups, in eval mode without gradients, in fp32, on the
        training device (CUDA synchronised around each pass); ``test_acc`` when the data
        has a test split; after pruning the
        dense network's figures as ``dense_params``, ``dense_flops`` and
        ``dense_latency_ms``; with ``quantize``, post-training int8 figures on the CPU
        (``int8_acc``, ``int8_latency_ms``, ``fp32_latency_ms``) where the layers allow.
        Only rank 0 measures (the replicas are identical); other ranks return ``{}``.
        """
        from spaces import model_stats
        from spaces.stats import forward_latency_ms

        if self.rank:
            return {}

        stats = model_stats(self.net, input_shape=self.data.input_shape, device=self.device)
        batch = torch.zeros(self.hp["batch_size"], *self.data.input_shape, device=self.device)
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                batch_ms = forward_latency_ms(self.net, batch)
        finally:
            self.net.train(was_training)
        out: dict[str, float] = {
            "params": float(stats.params),
            "flops": float(stats.flops),
            "activation_bytes": float(stats.activation_bytes),
            "latency_ms": float(stats.latency_ms or 0.0),
            "latency_batch_ms": float(batch_ms),
        }
        if self.data.has_test:
            out["test_loss"], out["test_acc"] = self.evaluate("test")
        if self.dense_stats is not None:
            out.update({f"dense_{k}": float(v) for k, v in self.dense_stats.items()})
        if quantize:
            out.update(self._int8_metrics())
        return out

    def _int8_metrics(self) -> dict[str, float]:
        from trainers.quantize import QuantizationError, int8_report

        calib = [x.cpu() for _, x, _ in self.data.train_batches(64, self.generator)][:8]
        pairs = [(x.cpu(), y.cpu()) for x, y in self.data.eval_batches("val", 1024)]
        x_eval, y_eval = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        net = unwrap(self.net)
        try:
            return int8_report(net, torch.cat(calib), x_eval, y_eval)
        except QuantizationError:
            return {}  # the layers do not allow it: no int8 figures for this network
        finally:
            net.to(self.device)

    def state_dict(self, epoch: int) -> dict[str, Any] | None:
        """A checkpoint (see :mod:`trainers.checkpoint`) of the run after ``epoch``; None
        on ranks other than 0 (the replicas are identical)."""
        if self.rank:
            return None
        state = model_state(
            self.net,
            self.space,
            self.config,
            input_shape=self.data.input_shape,
            num_classes=self.data.num_classes,
            pruned=self.pruned,
        )
        state.update(
            epoch=epoch,
            step=self.step,
            dense_stats=self.dense_stats,
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            generator=self.generator.get_state(),
        )
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> int:
        """Resume from a checkpoint of this configuration; returns its epoch."""
        check_version(state)
        if state["config"] != self.config:
            raise ValueError("The checkpoint belongs to another configuration.")
        if state.get("pruned"):
            from trainers.pruning import restore_pruned

            self.net = restore_pruned(self.net, state["pruned"])
            self.pruned, self.dense_stats = state["pruned"], state.get("dense_stats")
            self._prepare()
        unwrap(self.net).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        self.step = state["step"]
        return int(state["epoch"])


def lr_schedule(name: str, total: int) -> Callable[[int], float]:
    """The learning-rate multiplier at step ``s`` of ``total`` (cosine, linear, constant)."""
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


def make_optimizer(model: nn.Module, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD (Nesterov when momentum > 0) or AdamW, from the training knobs."""
    if hp["optimizer"] == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=hp["lr"],
            momentum=hp["momentum"],
            weight_decay=hp["weight_decay"],
            nesterov=hp["momentum"] > 0,
        )
    return torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])


def autocast(precision: str, device: torch.device) -> Any:
    """The autocast context of a precision (``nullcontext`` for fp32)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return nullcontext()
