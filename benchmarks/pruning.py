"""Channel pruning and int8 quantization of a small ResNet on digits: size, speed, accuracy.

A ResNet (``--width``, two stages of one basic block) is trained on scikit-learn's 8x8
digits by :class:`trainers.ImageClassifier` for ``--epochs`` epochs (the unpruned
baseline; ``Trainer.run`` with a :class:`trainers.LocalSession`, which is what ``fit``
does, so that the trained weights can be read back from the session's checkpoint). Then,
for each ``--ratios`` value, a copy is pruned with :func:`trainers.pruning.prune_model`
(DepGraph, Fang et al., 2023; magnitude importance) and fine-tuned for ``--finetune``
epochs (AdamW, cosine schedule, the trainer's default hyperparameters). Each row gives
parameters, FLOPs and CPU latency (batch 1, median of ``--repeats`` after warm-up), the
validation accuracy after pruning and after fine-tuning, and the int8 accuracy and
latency of :func:`trainers.quantize.int8_report` (PT2E static quantization through
torchao, x86; the FX path before 2026-12-07).
Everything runs on the CPU with ``--threads`` torch threads.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/pruning.py --json benchmarks/results/pruning.json
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from typing import Any

import machine_info
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spaces import ResNetSpace, SearchSpace, TrainingSpace
from trainers import ImageClassifier, LocalSession, load_dataset
from trainers.data import TensorData, batches
from trainers.pruning import measure, prune_model
from trainers.quantize import int8_report


def train_baseline(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any], float]:
    """The trained unpruned network, its final metrics and the training seconds."""
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=1, width=args.width),
            "train": TrainingSpace(),
        }
    )
    config = space.unflatten({})
    trainer = ImageClassifier(dataset="digits", epochs=args.epochs, seed=args.seed)
    trainer.check_space(space)
    session = LocalSession()
    t0 = time.perf_counter()
    metrics = trainer.run(config, space, session)
    seconds = time.perf_counter() - t0
    data = load_dataset("digits", 0.2, args.seed)
    net = space["model"].build(config["model"], data.input_shape, data.num_classes)
    if session.checkpoint is None:
        raise RuntimeError("ImageClassifier reported no checkpoint to read the weights from.")
    net.load_state_dict(session.checkpoint["model"])
    return net.eval(), metrics, seconds


@torch.no_grad()
def evaluate(net: nn.Module, data: TensorData) -> float:
    """Validation accuracy."""
    net.eval()
    return (net(data.x_val).argmax(1) == data.y_val).float().mean().item()


def fine_tune(net: nn.Module, data: TensorData, epochs: int, seed: int) -> None:
    """AdamW at the trainer's default lr 3e-3 and weight decay 1e-4, cosine to zero."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    total = epochs * (len(data.y_train) // 64)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for idx in batches(len(data.y_train), 64, gen):
            loss = nn.functional.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    net.eval()


def row(
    net: nn.Module, data: TensorData, ratio: float, acc_before: float, args: argparse.Namespace
) -> dict[str, Any]:
    stats = measure(net, data.x_val[:1], repeats=args.repeats)
    acc_after = evaluate(net, data)
    q = int8_report(net, data.x_train[:512], data.x_val, data.y_val, repeats=args.repeats)
    return {
        "ratio": ratio,
        "params": stats["params"],
        "flops": stats["flops"],
        "latency_ms": stats["latency_ms"],
        "val_acc_pruned": acc_before,
        "val_acc": acc_after,
        "int8_acc": q["int8_acc"],
        "int8_latency_ms": q["int8_latency_ms"],
        "fp32_latency_ms_int8_run": q["fp32_latency_ms"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    data = load_dataset("digits", 0.2, args.seed)
    base, metrics, seconds = train_baseline(args)
    print(f"baseline: {args.epochs} epochs in {seconds:.1f} s, val_acc {metrics['val_acc']:.4f}")
    rows = [row(base, data, 0.0, evaluate(base, data), args)]
    for ratio in args.ratios:
        net = copy.deepcopy(base)
        prune_model(net, ratio, data.x_train[:8])
        acc_pruned = evaluate(net, data)
        fine_tune(net, data, args.finetune, args.seed)
        rows.append(row(net, data, ratio, acc_pruned, args))
    return {"args": vars(args), "baseline_train_seconds": seconds, "rows": rows}


def print_table(rows: list[dict[str, Any]]) -> None:
    base = rows[0]
    head = (
        f"{'ratio':>5} {'params':>7} {'%':>5} {'FLOPs':>9} {'%':>5} {'lat ms':>7} "
        f"{'acc pruned':>10} {'acc tuned':>9} {'int8 acc':>8} {'int8 ms':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['ratio']:>5.1f} {r['params']:>7d} {100 * r['params'] / base['params']:>5.1f} "
            f"{r['flops']:>9d} {100 * r['flops'] / base['flops']:>5.1f} "
            f"{r['latency_ms']:>7.3f} {r['val_acc_pruned']:>10.4f} {r['val_acc']:>9.4f} "
            f"{r['int8_acc']:>8.4f} {r['int8_latency_ms']:>7.3f}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--width", type=int, default=32, help="stem and first-stage width (32)")
    p.add_argument("--epochs", type=int, default=10, help="baseline training epochs (10)")
    p.add_argument("--finetune", type=int, default=3, help="fine-tuning epochs (3)")
    p.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    p.add_argument("--repeats", type=int, default=50, help="timed passes per latency (50)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = run(args)
    print_table(result["rows"])
    machine_info.attach_and_save(result, args.json, ["torch", "torch_pruning", "sklearn"])
    return result


if __name__ == "__main__":
    main()
