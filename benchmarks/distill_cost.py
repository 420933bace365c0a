"""The cost of distillation: an epoch with cached teacher logits against a plain epoch.

Issue 5's target: distillation with cached teacher logits costs at most 1.15x a plain
trial. A teacher (a ResNet of two stages of two blocks, width ``--teacher-width``) is
trained once on scikit-learn's 8x8 digits for ``--teacher-epochs`` epochs through
``ImageClassifier.run`` with a :class:`trainers.LocalSession`, and its last checkpoint is
saved to a temporary file. One ``ImageClassifier(teacher=path)`` then calls
:meth:`~trainers.ImageClassifier.prepare` (the one-off teacher pass over the training
split; Ray is not initialised, so the logits stay in this process) and builds a
:meth:`~trainers.ImageClassifier.trial_run` for each variant of a student (two stages of
one block, width ``--student-width``, the default training knobs, batch 64, fp32):

- ``plain``: ``distill_alpha=0``, no augmentation (the reference);
- ``cached``: ``distill_alpha=0.5``, no augmentation: the teacher's logits are looked up
  per batch by example index (what the target is about);
- ``plain-aug``: ``distill_alpha=0``, ``augment=0.5`` (random translations);
- ``uncached``: ``distill_alpha=0.5``, ``augment=0.5``: the teacher runs on every
  augmented batch, for contrast (compare it with ``plain-aug``, which has the same
  augmentation).

Each variant trains one warm-up epoch, then the variants take turns, one
:meth:`~trainers.loop.TrialRun.train_epoch` each, for ``--repeats`` rounds (the order
rotates every round). Reported: median seconds per epoch and the median over rounds of
the per-round cost ratio (epoch time over the reference's), by wall-clock time and by
this process's CPU time (less disturbed by other loads on a shared machine).
``prepare()`` is timed on fresh trainers (median of 3), with ``ray`` imported beforehand
so that its import is not counted. Torch runs on ``--threads`` CPU threads (1).

Rerun (from the repository root)::

    .venv/bin/python benchmarks/distill_cost.py --repeats 7 \\
        --json benchmarks/results/distill_cost.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import machine_info
import torch
from trainer_speed import alternate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spaces import ResNetSpace, SearchSpace, TrainingSpace
from trainers import ImageClassifier, LocalSession
from trainers.checkpoint import save_checkpoint
from trainers.data import load_data

# variant -> (distill_alpha, augment, reference it is compared with)
VARIANTS: dict[str, tuple[float, float, str]] = {
    "plain": (0.0, 0.0, "plain"),
    "cached": (0.5, 0.0, "plain"),
    "plain-aug": (0.0, 0.5, "plain"),
    "uncached": (0.5, 0.5, "plain-aug"),
}


def train_teacher(path: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train the teacher, save its last checkpoint to ``path``; its final metrics."""
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=2, width=args.teacher_width),
            "train": TrainingSpace(),
        }
    )
    trainer = ImageClassifier("digits", epochs=args.teacher_epochs, seed=args.seed, device="cpu")
    session = LocalSession()
    t0 = time.perf_counter()
    metrics = trainer.run(space.unflatten({}), space, session)
    seconds = time.perf_counter() - t0
    if session.checkpoint is None:
        raise RuntimeError("ImageClassifier reported no checkpoint to save the teacher from.")
    save_checkpoint(session.checkpoint, path)
    return {
        "val_acc": metrics["val_acc"],
        "params": metrics["params"],
        "train_seconds": seconds,
    }


def student_space(alpha: float, augment: float, width: int) -> SearchSpace:
    """The student's space with one configuration."""
    return SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=1, width=width),
            "train": TrainingSpace(distill_alpha=alpha, augment=augment),
        }
    )


def time_prepare(path: str, epochs: int, seed: int, times: int = 3) -> list[float]:
    """Seconds of ``prepare()`` (load, check, teacher pass, share) on fresh trainers."""
    with contextlib.suppress(ImportError):  # prepare() imports ray: keep it out of the timing
        import ray  # noqa: F401
    out = []
    for _ in range(times):
        trainer = ImageClassifier("digits", epochs=epochs, seed=seed, device="cpu", teacher=path)
        trainer.load_data()
        t0 = time.perf_counter()
        trainer.prepare()
        out.append(time.perf_counter() - t0)
    return out


def summarise(rates: Mapping[str, Sequence[float]], seen: int) -> dict[str, Any]:
    """Median seconds per epoch and per-round cost ratios to each variant's reference."""
    out: dict[str, Any] = {}
    for name, values in rates.items():
        ref = VARIANTS[name][2]
        costs = [r / v for v, r in zip(values, rates[ref], strict=True)]
        out[name] = {
            "reference": ref,
            "seconds_per_epoch": statistics.median(seen / v for v in values),
            "samples_per_s": statistics.median(values),
            "cost_ratio": statistics.median(costs),
            "cost_ratio_min": min(costs),
            "cost_ratio_max": max(costs),
            "cost_vs_plain": statistics.median(
                r / v for v, r in zip(values, rates["plain"], strict=True)
            ),
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train the teacher, time ``prepare()``, then alternate the student variants."""
    epochs = args.repeats + 2
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "teacher.pt")
        teacher = train_teacher(path, args)
        print(
            f"teacher: width {args.teacher_width}, {args.teacher_epochs} epochs in "
            f"{teacher['train_seconds']:.1f} s, val_acc {teacher['val_acc']:.4f}"
        )
        prepare = time_prepare(path, epochs, args.seed)
        trainer = ImageClassifier(
            "digits", epochs=epochs, seed=args.seed, device="cpu", teacher=path
        )
        trainer.prepare()
        runs = {}
        for name, (alpha, augment, _) in VARIANTS.items():
            space = student_space(alpha, augment, args.student_width)
            trainer.check_space(space)
            runs[name] = trainer.trial_run(space.unflatten({}), space)
        epoch_fns = {name: (lambda r=r: int(r.train_epoch(1)["seen"])) for name, r in runs.items()}
        rates, cpu_rates = alternate(epoch_fns, args.repeats)
    seen = runs["plain"].steps() * 64
    variants = summarise(rates, seen)
    variants_cpu = summarise(cpu_rates, seen)
    plain_epoch = variants["plain"]["seconds_per_epoch"]
    return {
        "args": vars(args),
        "teacher": teacher,
        "train_examples": load_data("digits", val_fraction=0.2, seed=args.seed).num_train,
        "prepare_seconds": statistics.median(prepare),
        "prepare_seconds_all": prepare,
        "prepare_in_plain_epochs": statistics.median(prepare) / plain_epoch,
        "variants": variants,
        "variants_cpu_time": variants_cpu,
        "rates": rates,
        "cpu_rates": cpu_rates,
    }


def print_table(result: Mapping[str, Any]) -> None:
    """The variants' table and the one-off cost of ``prepare()``."""
    head = (
        f"{'variant':<10} {'s/epoch':>8} {'samples/s':>10} {'cost':>6} {'(min-max)':>13} "
        f"{'vs':<10} {'vs plain':>8} {'cpu cost':>8}"
    )
    print(head)
    print("-" * len(head))
    for name, v in result["variants"].items():
        print(
            f"{name:<10} {v['seconds_per_epoch']:>8.3f} {v['samples_per_s']:>10.1f} "
            f"{v['cost_ratio']:>6.3f} {v['cost_ratio_min']:>6.3f}-{v['cost_ratio_max']:<6.3f} "
            f"{v['reference']:<10} {v['cost_vs_plain']:>8.3f} "
            f"{result['variants_cpu_time'][name]['cost_ratio']:>8.3f}"
        )
    print(
        f"prepare() (teacher pass over {result['train_examples']} examples): "
        f"{result['prepare_seconds']:.3f} s = {result['prepare_in_plain_epochs']:.2f} "
        "plain student epochs"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed epochs per variant (7)")
    p.add_argument("--teacher-width", type=int, default=32, help="teacher width (32)")
    p.add_argument("--teacher-epochs", type=int, default=5, help="teacher epochs (5)")
    p.add_argument("--student-width", type=int, default=16, help="student width (16)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write results here")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(args)
    print_table(result)
    machine_info.attach_and_save(
        result, args.json, ["torch", "numpy"], torch_threads=torch.get_num_threads()
    )
    return result


if __name__ == "__main__":
    main()
