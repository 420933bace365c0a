"""Multi-objective NAS on the digits ResNet table: accuracy against parameters (or FLOPs).

Every method searches the main table (``digits_resnet.json.gz``, 288 networks) for
``--budget`` evaluations per seed through ``optuna.create_study(directions=["maximize",
"minimize"], sampler=...)`` and :func:`spaces.optuna_adapter.suggest`, with full training
only (no ASHA): a proposal is told the network's final-epoch validation accuracy (as
:func:`benchmarks.nasbench.simulate.run_full` takes it) and its parameter count (``--cost
params``, the default) or FLOPs (``--cost flops``), the raw numbers a user's study would
record. As in the single-objective replay, every proposal counts as an evaluation, repeats
included (a repeat adds nothing to the front but costs its evaluation).

**Hypervolume regret.** ``1 - HV(found) / HV(true front)``, where the true front is the
non-dominated set of the whole table and HV is the hypervolume (Zitzler & Thiele, 1998)
computed by ``moocore`` (López-Ibáñez et al.; Optuna 5 has no public hypervolume
function). Both objectives are first normalised to ``[0, 1]`` as losses over the table's
range: accuracy as ``(best - acc) / (best - worst)``; the cost as ``(f(c) - f(min)) /
(f(max) - f(min))`` with ``f = log10`` (``--scale log``, the reported one: parameters span
three orders of magnitude, 398 to 242,546, and on a linear scale the whole front lies in
the cheapest 8% of the range, so the cost would hardly count) or ``f`` the identity
(``--scale linear``, reported beside it). The reference point is ``(1, 1)`` in that
space: the table's worst accuracy and its largest cost. Because runs keep the rows they
proposed, both scales are computed from the same runs.

Methods: archtune's controllers that search several objectives, through
:func:`search.make_controller` (``evolution``, ``rl``, ``tpe``, ``nsga2``, ``random``,
``gp``; ``random`` is Optuna's ``RandomSampler``, so it is the random-search peer too, and
``gp`` is Optuna's ``GPSampler``), and Optuna's samplers with their defaults:
``TPESampler()`` (``optuna-motpe``: multi-objective TPE, Ozaki et al., 2020/2022) and
``NSGAIISampler()`` (``optuna-nsga2``, population 50). Results (per run: the rows proposed,
in order) go to ``benchmarks/results/nasbench_mo.json`` (``nasbench_mo_flops.json`` for
FLOPs) after every :data:`SAVE_EVERY_S` seconds and each method; a rerun resumes.
``--write-docs`` also writes ``docs/figures/nasbench_mo.html`` and the section of
``docs/benchmarks.md`` between ``<!-- nasbench_mo:start -->`` and ``<!-- nasbench_mo:end
-->``.

Example (from the repository root)::

    nice -n 10 .venv/bin/python benchmarks/nasbench/mo.py --jobs 2 --write-docs
    .venv/bin/python benchmarks/nasbench/mo.py --docs-only   # docs from the JSON only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import moocore  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402

from benchmarks import machine_info  # noqa: E402
from benchmarks.nasbench.table import (  # noqa: E402
    DEFAULT_TABLE,
    Table,
    init_worker,
    use_table,
    worker_table,
)
from search import make_controller, pareto  # noqa: E402
from spaces.optuna_adapter import suggest  # noqa: E402

COSTS = ("params", "flops")
SCALES = ("log", "linear")  # the first is the one the targets are judged on
REFERENCE = (1.0, 1.0)  # in the normalised loss space: worst accuracy, largest cost
CHECKPOINTS = (50, 100, 200)
EVAL_GRID = [*range(1, 20), *range(20, 201, 5)]
OWN = ("evolution", "rl", "tpe", "nsga2")  # archtune's controllers with settings of their own
ARCHTUNE = (*OWN, "random", "gp")  # random and gp are Optuna's samplers under our names
PEERS = ("optuna-motpe", "optuna-nsga2")
SLOW = ("gp",)  # seconds per ask at 200 trials: fewer seeds (``--gp-seeds``)
SAVE_EVERY_S = 30.0
DIRECTIONS = ("maximize", "minimize")


def methods() -> list[str]:
    """Every method of the benchmark, archtune's controllers first."""
    return [*ARCHTUNE, *PEERS]


def default_json(cost: str) -> str:
    """The results file of a cost objective: ``nasbench_mo.json`` for parameters.

    Example:
        >>> os.path.basename(default_json("flops"))
        'nasbench_mo_flops.json'
    """
    suffix = "" if cost == "params" else f"_{cost}"
    return os.path.join(ROOT, "benchmarks", "results", f"nasbench_mo{suffix}.json")


def make_sampler(name: str, seed: int, **options: Any) -> optuna.samplers.BaseSampler:
    """A fresh sampler of method ``name``: a peer with Optuna's defaults, else a controller.

    ``options`` go to :func:`search.make_controller` (tuning runs only).

    Raises:
        ValueError: for options given to a peer (they run with Optuna's defaults).
    """
    if options and name in PEERS:
        raise ValueError(f"{name} runs with Optuna's defaults; drop the options {options}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "optuna-motpe":
            return optuna.samplers.TPESampler(seed=seed)
        if name == "optuna-nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        return make_controller(name, seed=seed, **options)


# Objectives, fronts and hypervolume ---------------------------------------------------
def objectives(table: Table, cost: str = "params") -> np.ndarray:
    """Per row of ``table`` (file order): final validation accuracy and the cost.

    Raises:
        ValueError: for a cost other than :data:`COSTS`.
    """
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}.")
    return np.array([(r["val_acc"][-1], float(r[cost])) for r in table.rows])


def normalise(points: np.ndarray, bounds: np.ndarray, scale: str = "log") -> np.ndarray:
    """``(accuracy, cost)`` points as losses in ``[0, 1]`` over the range of ``bounds``.

    Accuracy becomes ``(best - acc) / (best - worst)``; the cost ``(f(c) - f(min)) /
    (f(max) - f(min))``, ``f = log10`` for ``scale="log"``, the identity for ``"linear"``.

    Example:
        >>> table = np.array([[0.5, 10.0], [1.0, 1000.0]])
        >>> normalise(np.array([[0.75, 100.0]]), table).tolist()
        [[0.5, 0.5]]
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}.")
    f = np.log10 if scale == "log" else np.asarray
    acc, cost = bounds[:, 0], f(bounds[:, 1])
    lo, hi = float(cost.min()), float(cost.max())
    a = (acc.max() - points[:, 0]) / (acc.max() - acc.min())
    c = (f(points[:, 1]) - lo) / (hi - lo)
    return np.column_stack([a, c])


def hypervolume(losses: np.ndarray, ref: Sequence[float] = REFERENCE) -> float:
    """The hypervolume that ``losses`` (minimised) dominate up to ``ref``
    (:func:`search.pareto.hypervolume`, by ``moocore``).

    Points not strictly better than ``ref`` in every objective add nothing.

    Example:
        >>> hypervolume(np.array([[0.25, 0.5], [0.5, 0.25]]))
        0.5
    """
    losses = np.asarray(losses, dtype=float).reshape(-1, len(ref))
    return pareto.hypervolume(losses, np.asarray(ref, dtype=float))


def true_front(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated ``(accuracy, cost)`` rows (one of equal duplicates).

    Example:
        >>> true_front(np.array([[0.9, 5.0], [0.8, 6.0], [0.7, 1.0]])).tolist()
        [0, 2]
    """
    return np.flatnonzero(moocore.is_nondominated(points, maximise=[True, False]))


class Scorer:
    """Hypervolume regret of sets of table rows, on one normalisation of one cost.

    Example:
        >>> pts = np.array([[1.0, 10.0], [0.5, 1.0], [0.75, 5.5], [0.5, 10.0]])
        >>> s = Scorer(pts, "linear")  # losses (0, 1), (1, 0), (0.5, 0.5), (1, 1)
        >>> s.front.tolist(), s.best_hv, s.regret([3]), s.regret([2, 0])
        ([0, 1, 2], 0.25, 1.0, 0.0)

    Raises:
        ValueError: when the true front dominates no volume (every point on a bound).
    """

    def __init__(self, points: np.ndarray, scale: str = "log") -> None:
        self.points = points
        self.scale = scale
        self.losses = normalise(points, points, scale)
        self.front = true_front(points)
        self.best_hv = hypervolume(self.losses[self.front])
        if self.best_hv <= 0.0:
            raise ValueError(
                "The table's front has no hypervolume: no network lies strictly "
                "inside both objectives' ranges."
            )

    def regret(self, rows: Sequence[int]) -> float:
        """``1 - HV(rows) / HV(true front)``."""
        hv = hypervolume(self.losses[np.unique(np.asarray(rows, dtype=int))])
        return 1.0 - hv / self.best_hv

    def curve(self, rows: Sequence[int], grid: Sequence[int]) -> list[float | None]:
        """The regret after the first ``g`` proposals, for each ``g`` of ``grid``."""
        return [self.regret(rows[:g]) if g <= len(rows) else None for g in grid]


# The replay --------------------------------------------------------------------------
def run_mo(
    table: Table, sampler: optuna.samplers.BaseSampler, budget: int, cost: str = "params"
) -> dict[str, Any]:
    """``budget`` fully trained evaluations of a two-objective study; the rows proposed.

    Returns:
        ``rows`` (the table row index of each proposal, in order, repeats included),
        ``unique`` (distinct rows) and ``wall_seconds`` (of the replay itself).
    """
    index = {r["arch_id"]: i for i, r in enumerate(table.rows)}
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=sampler)
    start = time.perf_counter()
    rows: list[int] = []
    for _ in range(budget):
        trial = study.ask()
        row = table.lookup(suggest(trial, table.space))
        study.tell(trial, [row["val_acc"][-1], float(row[cost])])
        rows.append(index[row["arch_id"]])
    return {
        "rows": rows,
        "unique": len(set(rows)),
        "wall_seconds": time.perf_counter() - start,
    }


def one_run(
    table: Table, method: str, seed: int, budget: int, cost: str, options: dict[str, Any]
) -> dict[str, Any]:
    """One replay, reduced to what the results keep."""
    r = run_mo(table, make_sampler(method, seed, **options), budget, cost)
    return {
        "seed": seed,
        "rows": r["rows"],
        "unique": r["unique"],
        "wall_seconds": round(r["wall_seconds"], 2),
    }


# Summaries ---------------------------------------------------------------------------
def summarise(result: dict[str, Any], table: Table) -> dict[str, Any]:
    """Per scale and method: mean and median regret at the checkpoints, the mean curve;
    per scale the targets (see :func:`targets`)."""
    points = objectives(table, result["cost"])
    grid, cps = result["eval_grid"], result["checkpoints"]
    out: dict[str, Any] = {}
    for scale in SCALES:
        scorer = Scorer(points, scale)
        per: dict[str, Any] = {}
        for method, runs in result["runs"].items():
            curves = [scorer.curve(r["rows"], grid) for r in runs]
            at = {str(c): [cv[grid.index(c)] for cv in curves] for c in cps if c in grid}
            per[method] = {
                "seeds": len(runs),
                "mean_regret": {c: _round(statistics.mean(v)) for c, v in at.items()},
                "median_regret": {c: _round(statistics.median(v)) for c, v in at.items()},
                # Standard error of the mean (0 with one seed).
                "sem_regret": {
                    c: _round(statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else 0.0)
                    for c, v in at.items()
                },
                "mean_unique": statistics.mean(r["unique"] for r in runs),
                "curve": [
                    _round(statistics.mean(cv[i] for cv in curves)) for i in range(len(grid))
                ],
            }
        out[scale] = {
            "true_front_hv": scorer.best_hv,
            "methods": per,
            "targets": targets(per),
        }
    return out


def _round(x: float) -> float:
    return round(float(x), 5)


def targets(per: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets for the best of archtune's own controllers (:data:`OWN`, by
    mean regret at 100 evaluations): at most half of random search's mean regret at 100,
    at most half of ``optuna-motpe``'s at 100, and below ``optuna-motpe``'s at 50.

    Example:
        >>> per = {m: {"mean_regret": {"50": r, "100": r}} for m, r in
        ...        [("tpe", 0.1), ("random", 0.3), ("optuna-motpe", 0.15)]}
        >>> t = targets(per)
        >>> t["best_own"], t["half_of_random_at_100"], t["half_of_motpe_at_100"]
        ('tpe', True, False)
    """
    own = [m for m in OWN if m in per]
    if not own or "random" not in per or "optuna-motpe" not in per:
        return {}

    def at(m: str, c: str) -> float:
        return per[m]["mean_regret"].get(c, math.inf)

    best = min(own, key=lambda m: (at(m, "100"), m))
    return {
        "best_own": best,
        "best_own_at_50": at(best, "50"),
        "best_own_at_100": at(best, "100"),
        "random_at_100": at("random", "100"),
        "motpe_at_50": at("optuna-motpe", "50"),
        "motpe_at_100": at("optuna-motpe", "100"),
        "half_of_random_at_100": at(best, "100") <= 0.5 * at("random", "100"),
        "half_of_motpe_at_100": at(best, "100") <= 0.5 * at("optuna-motpe", "100"),
        "below_motpe_at_50": at(best, "50") < at("optuna-motpe", "50"),
    }


# Command line ------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", default=DEFAULT_TABLE, help="the benchmark table")
    p.add_argument("--cost", choices=COSTS, default="params", help="the cost objective")
    p.add_argument("--json", help="results file, resumed if present (default: by cost)")
    p.add_argument("--seeds", type=int, default=100, help="seeds per method (100)")
    p.add_argument("--gp-seeds", type=int, default=30, help=f"seeds for {SLOW} (30)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed (0; tuning: 1000)")
    p.add_argument("--budget", type=int, default=200, help="evaluations per run (200)")
    p.add_argument("--methods", nargs="*", help="subset of methods (default: all)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="controller option for tuning runs (e.g. population_size=30); repeatable",
    )
    p.add_argument("--jobs", type=int, default=1, help="replay processes (1)")
    p.add_argument("--fresh", action="store_true", help="ignore runs already in --json")
    p.add_argument("--write-docs", action="store_true", help="also write the figure and docs")
    p.add_argument("--docs-only", action="store_true", help="only rewrite figure and docs")
    return p.parse_args(argv)


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--option takes KEY=JSON, got {pair!r}.")
        out[key] = json.loads(value)
    return out


def _new_result(args: argparse.Namespace, table: Table, argv: list[str] | None) -> dict:
    points = objectives(table, args.cost)
    front = true_front(points)
    return {
        **machine_info.header(
            "nasbench_mo",
            argv,
            ["optuna", "numpy", "moocore", "torch"],
            "nice -n 10 .venv/bin/python benchmarks/nasbench/mo.py",
        ),
        "table": {
            "path": os.path.relpath(args.table, ROOT),
            "rows": len(table),
            "epochs": table.epochs,
            "recipe": table.meta.get("recipe"),
        },
        "cost": args.cost,
        "directions": {"val_acc": "maximize", args.cost: "minimize"},
        "budget": args.budget,
        "options": _options(args.option),
        "normalisation": {
            "accuracy": "(best - acc) / (best - worst) over the table",
            "cost": {
                "log": "(log10 c - log10 min) / (log10 max - log10 min) over the table",
                "linear": "(c - min) / (max - min) over the table",
            },
            "accuracy_range": [float(points[:, 0].min()), float(points[:, 0].max())],
            "cost_range": [float(points[:, 1].min()), float(points[:, 1].max())],
        },
        "reference_point": list(REFERENCE),
        "points": points.tolist(),  # (accuracy, cost) of every row, in file order
        "true_front": {
            "rows": front.tolist(),
            "points": points[front].tolist(),
        },
        "checkpoints": [c for c in CHECKPOINTS if c <= args.budget],
        "eval_grid": [g for g in EVAL_GRID if g <= args.budget],
        "runs": {},
    }


def _work(job: tuple[str, int, int, str, dict[str, Any]]) -> dict[str, Any]:
    return one_run(worker_table(), *job)


def _replay_all(
    args: argparse.Namespace, result: dict[str, Any], save: Callable[[], None]
) -> None:
    chosen = machine_info.chosen_methods(args.methods, methods())
    chosen.sort(key=lambda m: m in SLOW)  # the slow ones last: an interruption keeps most
    options = result["options"]
    with contextlib.ExitStack() as stack:
        mapper: Callable[..., Any] = map
        if args.jobs > 1:
            pool = stack.enter_context(multiprocessing.Pool(args.jobs, init_worker, (args.table,)))
            mapper = pool.imap
        for method in chosen:
            runs = result["runs"].setdefault(method, [])
            done = {r["seed"] for r in runs}
            n = args.gp_seeds if method in SLOW else args.seeds
            seeds = [s for s in range(args.first_seed, args.first_seed + n) if s not in done]
            jobs = [(method, s, args.budget, args.cost, options) for s in seeds]
            saved = time.monotonic()
            for one in mapper(_work, jobs):
                runs.append(one)
                print(
                    f"{method} seed={one['seed']}: unique={one['unique']}, "
                    f"{one['wall_seconds']} s",
                    flush=True,
                )
                if time.monotonic() - saved > SAVE_EVERY_S:
                    save()
                    saved = time.monotonic()
            if not runs:
                del result["runs"][method]
            save()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); returns the results."""
    from benchmarks.nasbench import mo_docs

    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.json = args.json or default_json(args.cost)
    table = Table.load(args.table)
    if args.docs_only:
        with open(args.json, encoding="utf-8") as f:
            result = json.load(f)
        result["summary"] = summarise(result, table)
        mo_docs.write_docs(result, ROOT)
        return result
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}.")
    result = _new_result(args, table, argv)
    if not args.fresh and os.path.exists(args.json):
        with open(args.json, encoding="utf-8") as f:
            old = json.load(f)
        same = ("table", "cost", "budget", "options", "eval_grid")
        if all(old.get(k) == result[k] for k in same):
            result["runs"] = old["runs"]
            if not old["command"].endswith(result["command"]):
                result["command"] = old["command"] + " && " + result["command"]
    use_table(table)

    def save() -> None:
        result["seeds"] = {m: len(r) for m, r in result["runs"].items()}
        machine_info.write_json(args.json, result)

    _replay_all(args, result, save)
    result["summary"] = summarise(result, table)
    save()
    print(mo_docs.markdown_table(result, SCALES[0]))
    if args.write_docs:
        mo_docs.write_docs(result, ROOT)
    return result


if __name__ == "__main__":
    main()
