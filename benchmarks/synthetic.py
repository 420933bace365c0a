"""Simple regret of every controller on Branin and Hartmann-6, against Optuna's CMA-ES.

Each method (every controller from :func:`search.list_controllers`, plus Optuna's
``CmaEsSampler`` as a peer, and NNI's TPE/evolution only where they are registered)
minimises each function for ``--budget`` evaluations, once per seed, driven through
``optuna.create_study(sampler=...)`` and :func:`spaces.optuna_adapter.suggest` on an
archtune :class:`~spaces.SearchSpace` of ``Float`` parameters. The simple regret
(best value so far minus the known optimum) is recorded at each checkpoint (50, 100,
200 evaluations) and summarised over seeds by its mean and median.

- Branin (Dixon & Szegö, 1978): 2-d, x1 in [-5, 10], x2 in [0, 15], minimum 0.397887.
- Hartmann-6 (Hartmann, 1973): 6-d in [0, 1]^6, minimum -3.32237.

Results are written after every run (so an interrupted run keeps what it finished),
with the machine (CPU model, cores, RAM), library versions, date and the command.

Rerun (from the repository root)::

    nice .venv/bin/python benchmarks/synthetic.py --seeds 30 --gp-seeds 5 \\
        --json benchmarks/results/synthetic.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import machine_info
import numpy as np
import optuna

from search import list_controllers, make_controller
from spaces import Float, SearchSpace
from spaces.optuna_adapter import suggest

CHECKPOINTS = (50, 100, 200)


# Functions ------------------------------------------------------------------------------
def branin(x: Sequence[float]) -> float:
    """Branin-Hoo function; three global minima of 0.397887."""
    x1, x2 = x
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(x: Sequence[float]) -> float:
    """Hartmann 6-d function; global minimum -3.32237."""
    xa = np.asarray(x, dtype=float)
    inner = np.sum(_H6_A * (xa - _H6_P) ** 2, axis=1)
    return float(-np.sum(_H6_ALPHA * np.exp(-inner)))


FUNCTIONS: dict[str, tuple[Callable[[Sequence[float]], float], SearchSpace, float]] = {
    "branin": (
        branin,
        SearchSpace({"x0": Float(-5.0, 10.0), "x1": Float(0.0, 15.0)}),
        0.397887,
    ),
    "hartmann6": (
        hartmann6,
        SearchSpace({f"x{i}": Float(0.0, 1.0) for i in range(6)}),
        -3.32237,
    ),
}


# Methods --------------------------------------------------------------------------------
def methods() -> list[str]:
    """Every registered controller (NNI's only where registered), then Optuna's CMA-ES."""
    return [*sorted(list_controllers()), "optuna-cmaes"]


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "optuna-cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    return make_controller(name, seed=seed)


def run_one(method: str, function: str, seed: int, budget: int) -> dict[str, Any]:
    """One optimisation run; the regret at each checkpoint and the time it took."""
    fn, space, optimum = FUNCTIONS[function]
    study = optuna.create_study(direction="minimize", sampler=make_sampler(method, seed))
    best, regrets = math.inf, {}
    start = time.perf_counter()
    for n in range(1, budget + 1):
        trial = study.ask()
        params = suggest(trial, space)
        value = fn([params[k] for k in space])
        study.tell(trial, value)
        best = min(best, value)
        if n in CHECKPOINTS:
            regrets[str(n)] = best - optimum
    return {"regret": regrets, "seconds": time.perf_counter() - start}


# Reporting ------------------------------------------------------------------------------
MODULES = ("optuna", "numpy", "cmaes", "scipy", "torch")  # versions kept with the results


def summarise(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Mean and median regret per method x function x checkpoint, over seeds."""
    out: dict[str, Any] = {}
    for function, by_method in runs.items():
        for method, rs in by_method.items():
            row: dict[str, Any] = {"seeds": len(rs)}
            row["seconds_per_run"] = statistics.mean(r["seconds"] for r in rs) if rs else None
            for c in CHECKPOINTS:
                vals = [r["regret"][str(c)] for r in rs if str(c) in r["regret"]]
                row[str(c)] = {
                    "mean": statistics.mean(vals) if vals else None,
                    "median": statistics.median(vals) if vals else None,
                }
            out.setdefault(function, {})[method] = row
    return out


def print_table(summary: dict[str, Any]) -> None:
    cols = " | ".join(f"{c}: mean / median" for c in CHECKPOINTS)
    for function, rows in summary.items():
        print(f"\n{function}: simple regret (lower is better)")
        print(f"| method | seeds | {cols} | s / run |")
        print("|---|---:|" + "---:|" * len(CHECKPOINTS) + "---:|")
        for method, row in rows.items():
            cells = " | ".join(
                f"{row[str(c)]['mean']:.3g} / {row[str(c)]['median']:.3g}"
                if row[str(c)]["mean"] is not None
                else "-"
                for c in CHECKPOINTS
            )
            secs = row["seconds_per_run"]
            secs_cell = "-" if secs is None else f"{secs:.1f}"
            print(f"| {method} | {row['seeds']} | {cells} | {secs_cell} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=30, help="seeds per method (30)")
    p.add_argument("--gp-seeds", type=int, default=5, help="seeds for gp, which is slow (5)")
    p.add_argument("--budget", type=int, default=max(CHECKPOINTS), help="evaluations (200)")
    p.add_argument("--methods", nargs="*", help="subset of methods (default: all)")
    p.add_argument("--functions", nargs="*", default=list(FUNCTIONS), choices=list(FUNCTIONS))
    p.add_argument("--json", help="write results here (after every run)")
    p.add_argument(
        "--append",
        action="store_true",
        help="keep the runs of the other methods already in --json (to run methods apart)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chosen = machine_info.chosen_methods(args.methods, methods())
    result: dict[str, Any] = {
        **machine_info.header(
            "synthetic", argv, MODULES, "nice .venv/bin/python benchmarks/synthetic.py"
        ),
        "budget": args.budget,
        "checkpoints": list(CHECKPOINTS),
        "optima": {f: FUNCTIONS[f][2] for f in args.functions},
        "seeds": {m: (args.gp_seeds if m == "gp" else args.seeds) for m in chosen},
    }
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {f: {} for f in args.functions}
    if args.append and args.json and os.path.exists(args.json):
        with open(args.json, encoding="utf-8") as f:
            old = json.load(f)
        keep = [m for m in old["seeds"] if m not in chosen]
        result["command"] = old["command"] + " && " + result["command"]
        result["seeds"] = {**{m: old["seeds"][m] for m in keep}, **result["seeds"]}
        for function in args.functions:
            runs[function] = {m: old["runs"][function][m] for m in keep}
    for method in chosen:
        for function in args.functions:
            runs[function].setdefault(method, [])
        # Seeds outermost, so an interrupted run has every function at some seeds.
        for seed in range(result["seeds"][method]):
            for function in args.functions:
                r = run_one(method, function, seed, args.budget)
                runs[function].setdefault(method, []).append({"seed": seed, **r})
                print(f"{method} {function} seed={seed}: {r}", file=sys.stderr, flush=True)
                result["runs"], result["summary"] = runs, summarise(runs)
                if args.json:
                    machine_info.write_json(args.json, result, indent=1)
    result["runs"], result["summary"] = runs, summarise(runs)
    print_table(result["summary"])
    return result


if __name__ == "__main__":
    main()
