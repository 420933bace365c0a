"""Training throughput of :class:`trainers.ImageClassifier` against a plain PyTorch loop.

Issue 5's target: the trainer's samples/s at least 0.95x a hand-written loop on the same
model and data, measured in the same run. For each model (``small``: a ResNet of two
stages of one block, width 8, where fixed per-step costs show; ``medium``: two stages of
two blocks, width 32, where the convolutions dominate) these variants train on
scikit-learn's 8x8 digits (1,437 training images, batch 64, 22 steps an epoch), AdamW at
the default lr 3e-3 and weight decay 1e-4 with a cosine schedule, no augmentation:

- ``plain``: the reference, a minimal loop written here (the data as tensors, batches
  indexed from a seeded ``randperm``, the learning rate set every step as the cosine
  schedule needs, forward, cross-entropy, ``zero_grad``, backward, step);
- ``trainer``: :meth:`trainers.loop.TrialRun.train_epoch` of
  ``ImageClassifier(...).trial_run(config, space)`` on the in-memory tensor path, fp32;
- ``loader``: the same trainer on the DataLoader path (``in_memory_limit=0``) with the
  default number of workers (up to 4, one fewer than the cores), and ``loader-w0`` with
  the batches read in the training process;
- ``bf16``: the tensor path with bf16 autocast (emulated on a CPU without bf16 units: a
  CPU figure, not a GPU one); it alternates with ``trainer`` on its own, for
  ``--bf16-repeats`` rounds, since its epochs are long.

Each variant trains one warm-up epoch, then the variants take turns, one epoch each, for
``--repeats`` rounds (the order rotates every round). An epoch is timed with
``time.perf_counter`` and ``time.process_time`` around the call (CPU time is less
disturbed by other loads on a shared machine, but leaves out DataLoader worker
processes: read ``loader`` by wall time). Reported: the median samples/s of each
variant and the median over rounds of the per-round ratio to ``plain`` and to
``trainer``. Torch runs on
``--threads`` CPU threads (1).

``--breakdown`` also times, per step, what :meth:`TrialRun.train_epoch` does beyond the
plain loop (the loss and accuracy sums, the no-op augmentation call and autocast
context, the per-step learning-rate set), each on its own in a tight loop.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/trainer_speed.py --repeats 7 --breakdown \\
        --json benchmarks/results/trainer_speed.json
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import machine_info
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spaces import ResNetSpace, SearchSpace, TrainingSpace
from trainers import ImageClassifier
from trainers.data import TensorData, load_data
from trainers.loop import augment_batch, autocast, lr_schedule

MODELS: dict[str, dict[str, int]] = {
    "small": {"stages": 2, "depth": 1, "width": 8},
    "medium": {"stages": 2, "depth": 2, "width": 32},
}
VARIANTS = ("plain", "trainer", "loader", "loader-w0", "bf16")
Epoch = Callable[[], int]  # trains one epoch, returns the examples it trained on


def make_space(model: Mapping[str, int], precision: str = "fp32") -> SearchSpace:
    """A space with one configuration: the ResNet ``model`` and the default training."""
    return SearchSpace(
        {"model": ResNetSpace(**model), "train": TrainingSpace(precision=precision)}
    )


def trainer_epoch(
    model: Mapping[str, int],
    epochs: int,
    seed: int,
    *,
    precision: str = "fp32",
    in_memory_limit: int | None = None,
    num_workers: int | None = None,
) -> Epoch:
    """An epoch of ``TrialRun.train_epoch`` for the trainer variants."""
    space = make_space(model, precision)
    extra: dict[str, Any] = {}
    if in_memory_limit is not None:
        extra["in_memory_limit"] = in_memory_limit
    trainer = ImageClassifier(
        "digits", epochs=epochs, seed=seed, device="cpu", num_workers=num_workers, **extra
    )
    run = trainer.trial_run(space.unflatten({}), space)
    counter = iter(range(1, 1_000_000))
    return lambda: int(run.train_epoch(next(counter))["seen"])


class PlainLoop:
    """The reference: a minimal training loop on the same network, data and optimizer.

    Args:
        model: ResNet configuration (as in :data:`MODELS`).
        epochs: Epochs the cosine schedule spans.
        seed: Seed of the initialisation and the batch order (the trainer's).
        batch_size: Examples per step.
        lr: Peak learning rate.
        weight_decay: AdamW's decoupled weight decay.
    """

    def __init__(
        self,
        model: Mapping[str, int],
        epochs: int,
        seed: int,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        data = load_data("digits", val_fraction=0.2, seed=seed)
        if not isinstance(data, TensorData):
            raise TypeError("digits should load as TensorData; check in_memory_limit.")
        self.x, self.y = data.x_train, data.y_train
        space = make_space(model)
        torch.manual_seed(seed)
        self.net: nn.Module = space["model"].build(  # type: ignore[union-attr]
            space.unflatten({})["model"],
            input_shape=data.input_shape,
            num_classes=data.num_classes,
        )
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        self.gen = torch.Generator().manual_seed(seed)
        self.batch_size, self.lr = batch_size, lr
        self.steps_per_epoch = len(self.y) // batch_size
        self.total = self.steps_per_epoch * epochs
        self.step = 0

    def epoch(self) -> int:
        """Train one epoch; returns the examples trained on."""
        self.net.train()
        order = torch.randperm(len(self.y), generator=self.gen)
        bs = self.batch_size
        loss = torch.zeros(())
        for i in range(self.steps_per_epoch):
            idx = order[i * bs : (i + 1) * bs]
            lr = self.lr * 0.5 * (1 + math.cos(math.pi * min(self.step, self.total) / self.total))
            for group in self.opt.param_groups:
                group["lr"] = lr
            loss = nn.functional.cross_entropy(self.net(self.x[idx]), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
        loss.item()
        return self.steps_per_epoch * bs


def alternate(
    epochs: Mapping[str, Epoch], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Samples/s of each variant: one warm-up epoch each, then ``repeats`` rounds of one
    timed epoch per variant, the order rotated by one every round.

    Returns the rates by wall-clock time and by this process's CPU time (which the other
    loads of a shared machine disturb less; it leaves out DataLoader worker processes).
    """
    for fn in epochs.values():
        fn()
    names = list(epochs)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            seen = epochs[name]()
            c1, t1 = time.process_time(), time.perf_counter()
            wall[name].append(seen / (t1 - t0))
            cpu[name].append(seen / (c1 - c0))
    return wall, cpu


def summarise(rates: Mapping[str, Sequence[float]], reference: str) -> dict[str, Any]:
    """Median samples/s per variant and the median of per-round ratios to ``reference``."""
    out: dict[str, Any] = {}
    for name, values in rates.items():
        ratios = [a / b for a, b in zip(values, rates[reference], strict=True)]
        out[name] = {
            "samples_per_s": statistics.median(values),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "all_samples_per_s": list(values),
        }
    return out


def measure_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every selected variant on one model, alternated; ``bf16`` (slow on a CPU without
    bf16 units) alternates with ``trainer`` on its own, for ``--bf16-repeats`` rounds."""
    model, epochs = MODELS[name], args.repeats + args.bf16_repeats + 4
    makers: dict[str, Callable[[], Epoch]] = {
        "plain": lambda: PlainLoop(model, epochs, args.seed).epoch,
        "trainer": lambda: trainer_epoch(model, epochs, args.seed),
        "loader": lambda: trainer_epoch(model, epochs, args.seed, in_memory_limit=0),
        "loader-w0": lambda: trainer_epoch(
            model, epochs, args.seed, in_memory_limit=0, num_workers=0
        ),
        "bf16": lambda: trainer_epoch(model, epochs, args.seed, precision="bf16"),
    }
    main_variants = [v for v in args.variants if v != "bf16"]
    fns = {v: makers[v]() for v in main_variants}
    wall, cpu = alternate(fns, args.repeats)
    result: dict[str, Any] = {"model": model, "wall": {}, "cpu": {}}
    for clock, rates in (("wall", wall), ("cpu", cpu)):
        result[clock] = {
            f"vs_{ref}": summarise(rates, ref) for ref in ("plain", "trainer") if ref in rates
        }
    if "bf16" in args.variants:
        pair = {"trainer": fns.get("trainer") or makers["trainer"](), "bf16": makers["bf16"]()}
        bf_wall, bf_cpu = alternate(pair, args.bf16_repeats)
        result["bf16_wall"] = summarise(bf_wall, "trainer")
        result["bf16_cpu"] = summarise(bf_cpu, "trainer")
    return result


def _per_call_us(fn: Callable[[], Any], calls: int) -> float:
    """Median over 5 runs of microseconds per call of ``fn`` in a tight loop."""
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(runs)


def breakdown(calls: int = 2000) -> dict[str, float]:
    """Microseconds per step of what ``TrialRun.train_epoch`` does beyond the plain loop,
    each piece on its own (batch 64, 10 classes)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    logits, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    loss = nn.functional.cross_entropy(logits, y)
    loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
    opt = torch.optim.AdamW(nn.Linear(4, 4).parameters(), lr=1e-3)
    schedule = lr_schedule("cosine", 1000)
    hp = {"lr": 3e-3, "augment": 0.0, "precision": "fp32"}
    cpu = torch.device("cpu")

    def set_lr() -> None:
        for group in opt.param_groups:
            group["lr"] = hp["lr"] * schedule(7)

    def loss_accumulate() -> None:
        loss_sum.add_(loss.detach() * len(y))

    def count_correct() -> None:
        correct.add_((logits.argmax(1) == y).sum())

    def no_augment() -> None:
        augment_batch(x, hp["augment"], gen)

    def fp32_context() -> None:
        with autocast(hp["precision"], cpu):
            logits.float()

    pieces = {
        "loss_sum += loss.detach() * len(y)": loss_accumulate,
        "correct += (logits.argmax(1) == y).sum()": count_correct,
        "augment_batch(x, 0, gen)": no_augment,
        "autocast('fp32') + logits.float()": fp32_context,
        "lr set from lr_schedule": set_lr,
    }
    return {label: _per_call_us(fn, calls) for label, fn in pieces.items()}


def print_model(name: str, result: Mapping[str, Any]) -> None:
    """A table of one model's variants: samples/s and ratios by wall and CPU time."""
    print(f"\n{name}: ResNet {result['model']}")
    head = (
        f"{'variant':<10} {'wall s/s':>9} {'/plain':>7} {'(min-max)':>11} {'/trainer':>8} "
        f"{'cpu s/s':>9} {'/plain':>7} {'/trainer':>8}"
    )
    print(head)
    print("-" * len(head))
    rows = {**result["wall"].get("vs_trainer", {}), **result["wall"].get("vs_plain", {})}
    nan = {"ratio": float("nan"), "ratio_min": float("nan"), "ratio_max": float("nan")}
    for variant, s in rows.items():
        wp = result["wall"].get("vs_plain", {}).get(variant, nan)
        wt = result["wall"].get("vs_trainer", {}).get(variant, nan)
        cp = result["cpu"].get("vs_plain", {}).get(variant, nan)
        ct = result["cpu"].get("vs_trainer", {}).get(variant, nan)
        cs = result["cpu"].get("vs_trainer", result["cpu"].get("vs_plain"))[variant]
        print(
            f"{variant:<10} {s['samples_per_s']:>9.1f} {wp['ratio']:>7.3f} "
            f"{wp['ratio_min']:>5.2f}-{wp['ratio_max']:<5.2f} {wt['ratio']:>8.3f} "
            f"{cs['samples_per_s']:>9.1f} {cp['ratio']:>7.3f} {ct['ratio']:>8.3f}"
        )
    if "bf16_wall" in result:
        w, c = result["bf16_wall"]["bf16"], result["bf16_cpu"]["bf16"]
        print(
            f"{'bf16':<10} {w['samples_per_s']:>9.1f} {'':>7} "
            f"{w['ratio_min']:>5.2f}-{w['ratio_max']:<5.2f} {w['ratio']:>8.3f} "
            f"{c['samples_per_s']:>9.1f} {'':>7} {c['ratio']:>8.3f}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed epochs per variant (7)")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument(
        "--bf16-repeats", type=int, default=3, help="timed epochs of bf16 and its fp32 pair (3)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    p.add_argument("--breakdown", action="store_true", help="time the per-step extras")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write results here")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if "plain" not in args.variants and "trainer" not in args.variants:
        p.error("--variants needs 'plain' or 'trainer' as the reference")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"args": vars(args), "models": {}}
    for name in args.models:
        result["models"][name] = measure_model(name, args)
        print_model(name, result["models"][name])
    if args.breakdown:
        result["breakdown_us_per_step"] = breakdown()
        print("\nper-step extras of TrialRun.train_epoch (microseconds per call):")
        for label, us in result["breakdown_us_per_step"].items():
            print(f"  {label:<42} {us:>8.1f}")
    machine_info.attach_and_save(
        result, args.json, ["torch", "numpy"], torch_threads=torch.get_num_threads()
    )
    return result


if __name__ == "__main__":
    main()
