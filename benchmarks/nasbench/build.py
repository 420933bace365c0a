"""Build a tabular NAS benchmark: train every ResNet of a small space on scikit-learn digits.

The table is built the way NAS-Bench-201 was (Dong & Yang, 2020, "NAS-Bench-201:
Extending the Scope of Reproducible Neural Architecture Search", ICLR): every
architecture of a closed space is trained once with one fixed recipe, and per epoch the
validation and test accuracy and the training seconds are recorded, with the network's
parameters and FLOPs. Searches are then replayed on the table (``replay.py``) with
simulated time instead of training.

- Space: :data:`SPACE`, an archtune :class:`~spaces.ResNetSpace` of 288 networks:
  stages {1, 2, 3} x blocks per stage {1, 2} x stem width {4, 8, 16} (doubling per
  stage) x block {basic, bottleneck} x squeeze-and-excitation {no, yes} x activation
  {relu, hardswish} x norm {batch, layer}, 3x3 kernels. (Sized to the machine: 5x5
  kernels cost about 2.5x as much and width 32 about 3x as much as width 16.) Every
  decision is categorical or integer and unconditional, so the grid is a product.
- Data: the digits loader of ``trainers.data`` (1,797 8x8 images). Its held-out 25% is
  the **test** split; its training part is split again, stratified and seeded, into
  train and **validation** (899 / 448 images; 450 test images).
- Recipe (:data:`RECIPE`): AdamW, lr 3e-3, weight decay 5e-4, batch 64, cosine decay
  per step over 12 epochs (``--epochs``; the second shipped table,
  ``digits_resnet_e27.json.gz``, has 27, so that ASHA with reduction factor 3 has rungs at
  1, 3 and 9 epochs), no augmentation, the same seed (``seed``) for every
  architecture's initialisation and batch order, one thread. Training seconds per epoch
  are the CPU seconds of that thread (the wall clock, noisier, is kept too).

The build is resumable: each finished architecture is appended as one JSON line to
``OUT.partial.jsonl`` (``OUT.partial-I.jsonl`` for shard ``I``); a rerun skips the ids
already there or in ``OUT`` when ``OUT`` was built with the same recipe (delete ``OUT`` to
retrain everything). ``--shard I/N`` trains every N-th architecture, so N processes
share the work; whichever finds every architecture in at its end writes the table to
``OUT`` (gzip JSON, see :func:`write_table`).

Example (from the repository root)::

    nice -n 10 .venv/bin/python benchmarks/nasbench/build.py --limit 3 --out /tmp/t.json.gz

Rerun the full build (12 epochs: about 25 minutes of an idle core; 27 epochs: about 16
minutes of two cores in two shards)::

    nohup nice -n 10 .venv/bin/python benchmarks/nasbench/build.py > /tmp/build.log 2>&1 &
    for i in 0 1; do nohup nice -n 10 .venv/bin/python benchmarks/nasbench/build.py \\
        --epochs 27 --shard $i/2 > /tmp/build27_$i.log 2>&1 & done
"""

from __future__ import annotations

import argparse
import datetime
import glob
import gzip
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import machine_info  # noqa: E402
from spaces import Categorical, Int, ResNetSpace, SearchSpace, model_stats  # noqa: E402
from spaces.params import Fixed  # noqa: E402
from trainers.data import TensorData, batches, load_dataset  # noqa: E402

FORMAT = "archtune-nasbench/1"
HERE = os.path.join(ROOT, "benchmarks", "nasbench")


def default_out(epochs: int) -> str:
    """Where the table of an ``epochs`` recipe is shipped (12 epochs: the main table)."""
    name = "digits_resnet.json.gz" if epochs == 12 else f"digits_resnet_e{epochs}.json.gz"
    return os.path.join(HERE, name)


SPACE = ResNetSpace(
    stages=Int(1, 3),
    depth=Int(1, 2),
    width=Categorical([4, 8, 16]),
    block=Categorical(["basic", "bottleneck"]),
    kernel_size=3,
    se=Categorical([False, True]),
    act=Categorical(["relu", "hardswish"]),
    norm=Categorical(["batch", "layer"]),
)
RECIPE: dict[str, Any] = {
    "optimizer": "AdamW",
    "lr": 3e-3,
    "weight_decay": 5e-4,
    "batch_size": 64,
    "epochs": 12,
    "schedule": "cosine per step to 0",
    "seed": 0,
    "split_seed": 0,
    "test_fraction": 0.25,
    "val_size": 450,
}


def grid(space: SearchSpace) -> Iterator[dict[str, Any]]:
    """Every configuration of an unconditional space of categorical and integer decisions.

    Yields flat ``{path: value}`` configurations (constants included) in a fixed order.

    Raises:
        ValueError: for a conditional space or a continuous (``Float``) decision.

    Example:
        >>> from spaces import Categorical, SearchSpace
        >>> len(list(grid(SearchSpace({"a": Categorical([1, 2]), "b": Int(0, 2)}))))
        6
    """
    if space.conditions():
        raise ValueError("grid() needs an unconditional space; drop the conditional knobs.")
    names, choices, fixed = [], [], {}
    for path, param in space.flatten().items():
        if isinstance(param, Fixed):
            fixed[path] = param.value
        elif isinstance(param, Categorical):
            names.append(path)
            choices.append(list(param.choices))
        elif isinstance(param, Int) and not param.log:
            names.append(path)
            choices.append(list(range(param.low, param.high + 1, param.step or 1)))
        else:
            raise ValueError(f"grid() cannot enumerate {path}={param!r}; use Int or Categorical.")
    for values in itertools.product(*choices):
        yield {**fixed, **dict(zip(names, values, strict=True))}


def three_way_split(seed: int, test_fraction: float, val_size: int) -> dict[str, torch.Tensor]:
    """Train, validation and test tensors of digits.

    The loader's held-out part (``test_fraction``) is the test split; its training part
    is split again, stratified by class with a seeded generator, into train and
    ``val_size`` validation images.
    """
    data: TensorData = load_dataset("digits", val_fraction=test_fraction, seed=seed)
    rng = np.random.default_rng(seed)
    y = data.y_train.numpy()
    share = val_size / len(y)
    val_idx: list[int] = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        val_idx.extend(idx[: round(share * len(idx))].tolist())
    mask = np.zeros(len(y), dtype=bool)
    mask[val_idx] = True
    keep = torch.from_numpy(~mask)
    held = torch.from_numpy(mask)
    return {
        "x_train": data.x_train[keep],
        "y_train": data.y_train[keep],
        "x_val": data.x_train[held],
        "y_val": data.y_train[held],
        "x_test": data.x_val,
        "y_test": data.y_val,
    }


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return float(acc)


def train_one(
    config: Mapping[str, Any], data: Mapping[str, torch.Tensor], recipe: Mapping[str, Any]
) -> dict[str, list[float]]:
    """Train one architecture with the fixed recipe; per-epoch accuracies and seconds.

    ``train_seconds`` is the CPU time of the (single) training thread, which on a machine
    shared with other jobs measures the work far more steadily than the wall clock
    (``wall_seconds``, kept for reference). Initialisation uses ``recipe["seed"]`` (the
    global torch state is restored after), batch order a ``torch.Generator`` with the
    same seed.
    """
    x, y = data["x_train"], data["y_train"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe["seed"])
        model = SPACE.build(config, input_shape=(1, 8, 8), num_classes=10)
    opt = torch.optim.AdamW(
        model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"]
    )
    bs, epochs = recipe["batch_size"], recipe["epochs"]
    steps = epochs * (len(y) // bs)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    gen = torch.Generator().manual_seed(recipe["seed"])
    loss_fn = nn.CrossEntropyLoss()
    out: dict[str, list[float]] = {
        "val_acc": [],
        "test_acc": [],
        "train_seconds": [],
        "wall_seconds": [],
    }
    model.train()
    for _ in range(epochs):
        c0, t0 = time.thread_time(), time.perf_counter()
        for idx in batches(len(y), bs, gen):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
        out["train_seconds"].append(round(time.thread_time() - c0, 4))
        out["wall_seconds"].append(round(time.perf_counter() - t0, 4))
        out["val_acc"].append(round(_accuracy(model, data["x_val"], data["y_val"]), 6))
        out["test_acc"].append(round(_accuracy(model, data["x_test"], data["y_test"]), 6))
    return out


def build_row(
    config: Mapping[str, Any], data: Mapping[str, torch.Tensor], recipe: Mapping[str, Any]
) -> dict[str, Any]:
    """One row of the table: id, flat configuration, cost and the training curves."""
    stats = model_stats(
        SPACE, SPACE.unflatten(config), input_shape=(1, 8, 8), num_classes=10, latency=False
    )
    return {
        "arch_id": SPACE.arch_id(config),
        "config": dict(config),
        "params": stats.params,
        "flops": stats.flops,
        **train_one(config, data, recipe),
    }


def read_partial(out: str) -> list[dict[str, Any]]:
    """The rows already in the partial files of ``out``, every shard's.

    A torn last line (from a kill) is dropped.
    """
    rows = []
    for path in sorted(glob.glob(glob.escape(out) + ".partial*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    return rows


def read_table(path: str, recipe: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of a table already written at ``path`` with ``recipe`` (else none)."""
    if not os.path.exists(path):
        return []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        table = json.load(f)
    return list(table["rows"]) if table.get("recipe") == dict(recipe) else []


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)``, with ``0 <= I < N``.

    Example:
        >>> parse_shard("1/2")
        (1, 2)
    """
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(
            f"--shard takes I/N with 0 <= I < N, e.g. 0/2; got {text!r}."
        )
    return i, n


def write_table(path: str, rows: list[dict[str, Any]], meta: Mapping[str, Any]) -> None:
    """Write the table as gzip JSON: ``meta`` keys plus ``"rows"``, atomically."""
    tmp = path + ".tmp"
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        json.dump({**meta, "rows": rows}, f, separators=(",", ":"))
    os.replace(tmp, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="table to write (gzip JSON; default: by --epochs)")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"], help="epochs per network")
    p.add_argument("--limit", type=int, help="train at most N new architectures (quick run)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    p.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        help="train every N-th architecture from the I-th (I/N)",
    )
    p.add_argument(
        "--order-seed", type=int, default=0, help="seed of the (shuffled) training order"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.epochs < 1:
        raise SystemExit(f"--epochs must be at least 1, got {args.epochs}.")
    recipe = {**RECIPE, "epochs": args.epochs}
    args.out = args.out or default_out(args.epochs)
    torch.set_num_threads(args.threads)
    configs = list(grid(SPACE))
    # Shuffled, so a partial table is a uniform sample of the space.
    order = np.random.default_rng(args.order_seed).permutation(len(configs))
    shard, shards = args.shard
    partial = args.out + (f".partial-{shard}.jsonl" if shards > 1 else ".partial.jsonl")
    ids = {SPACE.arch_id(c) for c in configs}

    def known() -> list[dict[str, Any]]:
        rows = read_table(args.out, recipe) + read_partial(args.out)
        return list({r["arch_id"]: r for r in rows if r["arch_id"] in ids}.values())

    rows = known()
    done = {r["arch_id"] for r in rows}
    data = three_way_split(RECIPE["split_seed"], RECIPE["test_fraction"], RECIPE["val_size"])
    print(f"{len(configs)} architectures, {len(done)} already built", flush=True)
    new = 0
    with open(partial, "a", encoding="utf-8") as f:
        for i in order[shard::shards]:
            config = configs[int(i)]
            if SPACE.arch_id(config) in done:
                continue
            if args.limit is not None and new >= args.limit:
                break
            row = build_row(config, data, recipe)
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
            f.flush()
            rows.append(row)
            new += 1
            print(
                f"[{len(rows)}/{len(configs)}] val {row['val_acc'][-1]:.4f} "
                f"{sum(row['train_seconds']):.1f}s {row['config']}",
                flush=True,
            )
    rows = known()  # with the other shards' rows written meanwhile
    complete = len(rows) == len(configs)
    meta = {
        "format": FORMAT,
        "complete": complete,
        "space": SPACE.to_json(),
        "recipe": recipe,
        "dataset": "digits",
        "splits": {k: int(v.shape[0]) for k, v in data.items() if k.startswith("y_")},
        "epochs": recipe["epochs"],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info.machine(ROOT, ["torch", "numpy"]),
        "threads": args.threads,
    }
    if complete or args.limit is not None:
        write_table(args.out, rows, meta)
        print(f"wrote {args.out} ({len(rows)} rows, complete={complete})", flush=True)
    if complete:
        for path in glob.glob(glob.escape(args.out) + ".partial*.jsonl"):
            os.remove(path)  # every row is in the table now
    return 0


if __name__ == "__main__":
    sys.exit(main())
