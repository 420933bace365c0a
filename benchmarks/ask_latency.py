"""Time per ask of every controller, at 100 / 1,000 / 5,000 finished trials.

One "ask" is what a study does before a trial can start: ``study.ask()`` plus
:func:`spaces.optuna_adapter.suggest` of every active decision of a mixed space
(categorical, int, log-int, log-float, float, and a float that exists only when
``optimizer == "sgd"``), on Optuna's in-memory storage. The history is filled with
finished trials of random configurations (``optuna.trial.create_trial`` and
``study.add_trials``, so filling is cheap); each controller then gets one untimed
warm-up ask and up to ``--asks`` timed asks (each told a value afterwards, untimed),
stopping early once a cell has spent ``--max-seconds`` (with at least 5 asks). The p50
and p95 per method x history size are reported, in wall time and in this process's CPU
time (on a shared machine, wall time includes the other jobs' share). The issue's
target: p95 under 10 ms at 1,000 finished trials for ``rl`` and ``evolution``.

Every controller from :func:`search.list_controllers` is measured (NNI ones only where
registered), with Optuna's ``CmaEsSampler`` as a peer. ``gp`` is skipped at 5,000
trials (``--skip gp:5000``): its ask grows about cubically with the history.

Rerun (from the repository root)::

    nice .venv/bin/python benchmarks/ask_latency.py --asks 50 \\
        --json benchmarks/results/ask_latency.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import machine_info
import numpy as np
import optuna
from synthetic import MODULES

from search import list_controllers, make_controller
from spaces import Categorical, Float, Int, SearchSpace
from spaces.optuna_adapter import suggest, to_optuna

SIZES = (100, 1000, 5000)

SPACE = SearchSpace(
    {
        "optimizer": Categorical(["sgd", "adam", "adamw"]),
        "lr": Float(1e-5, 1e-1, log=True),
        "momentum": Float(0.0, 0.99, when={"optimizer": "sgd"}),
        "depth": Int(2, 20),
        "width": Int(16, 1024, log=True),
        "activation": Categorical(["relu", "gelu", "silu"]),
        "dropout": Float(0.0, 0.5),
    }
)


def methods() -> list[str]:
    """Every registered controller, then Optuna's CMA-ES as a peer."""
    return [*sorted(list_controllers()), "optuna-cmaes"]


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "optuna-cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    return make_controller(name, seed=seed)


def objective(params: dict[str, Any]) -> float:
    """A cheap deterministic loss of a configuration."""
    lr = float(np.log10(params["lr"]))
    return (lr + 3) ** 2 + (params["depth"] - 8) ** 2 / 50 + params["dropout"]


def history(n: int, seed: int) -> list[optuna.trial.FrozenTrial]:
    """``n`` finished trials of random configurations, with the right distributions."""
    rng = np.random.default_rng(seed)
    dists = to_optuna(SPACE)
    trials = []
    for _ in range(n):
        params = SPACE.assign(lambda _path, param: param.sample(rng))
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: dists[k] for k in params},
                value=objective(params),
            )
        )
    return trials


def measure(method: str, n: int, asks: int, max_seconds: float, seed: int = 0) -> dict[str, Any]:
    """Latency of ``asks`` asks (ms) after ``n`` finished trials."""
    study = optuna.create_study(direction="minimize", sampler=make_sampler(method, seed))
    study.add_trials(history(n, seed))
    times: list[float] = []
    cpu_times: list[float] = []
    spent = 0.0
    for i in range(asks + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        trial = study.ask()
        params = suggest(trial, SPACE)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        study.tell(trial, objective(params))
        if i == 0:  # untimed warm-up
            continue
        times.append(elapsed * 1e3)
        cpu_times.append(cpu * 1e3)
        spent += elapsed
        if spent > max_seconds and len(times) >= 5:
            break
    return {
        "asks": len(times),
        "p50_ms": statistics.median(times),
        "p95_ms": _p95(times),
        "mean_ms": statistics.mean(times),
        "max_ms": max(times),
        # CPU time of this process: what the ask costs without the other jobs' share.
        "cpu_p50_ms": statistics.median(cpu_times),
        "cpu_p95_ms": _p95(cpu_times),
    }


def _p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[18]


def print_table(results: dict[str, Any], sizes: list[int]) -> None:
    head = " | ".join(f"{n:,}: p50 / p95 wall [CPU] (asks)" for n in sizes)
    print(f"| method | {head} |")
    print("|---|" + "---:|" * len(sizes))
    for method, row in results.items():
        cells = []
        for n in sizes:
            r = row.get(str(n))
            cells.append(
                "skipped"
                if r is None
                else f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} [{r['cpu_p50_ms']:.1f} / "
                f"{r['cpu_p95_ms']:.1f}] ms ({r['asks']})"
            )
        print(f"| {method} | " + " | ".join(cells) + " |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--asks", type=int, default=50, help="timed asks per cell (50)")
    p.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    p.add_argument("--methods", nargs="*", help="subset of methods (default: all)")
    p.add_argument(
        "--max-seconds", type=float, default=60.0, help="stop a cell after this much asking (60)"
    )
    p.add_argument(
        "--skip", nargs="*", default=["gp:5000"], help="METHOD:SIZE cells to skip (gp:5000)"
    )
    p.add_argument("--json", help="write results here (after every cell)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chosen = machine_info.chosen_methods(args.methods, methods())
    out: dict[str, Any] = {
        **machine_info.header(
            "ask_latency", argv, MODULES, "nice .venv/bin/python benchmarks/ask_latency.py"
        ),
        "space": SPACE.to_json() if hasattr(SPACE, "to_json") else repr(SPACE),
        "skipped": args.skip,
        "results": {},
    }
    for method in chosen:
        for n in args.sizes:
            if f"{method}:{n}" in args.skip:
                continue
            r = measure(method, n, args.asks, args.max_seconds)
            out["results"].setdefault(method, {})[str(n)] = r
            print(f"{method} n={n}: {r}", file=sys.stderr, flush=True)
            if args.json:
                machine_info.write_json(args.json, out, indent=1)
    print_table(out["results"], args.sizes)
    return out


if __name__ == "__main__":
    main()
