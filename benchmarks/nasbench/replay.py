"""Replay every archtune controller and its peers on a digits ResNet table.

Each method searches a table built by ``build.py`` (no training: the table's curves and
seconds stand in for it), once per seed, in two settings (see ``simulate.py``):

- **full training**: ``--budget`` evaluations, each trained for all the table's epochs;
- **ASHA** (Li et al., 2020): grace ``--asha-grace`` epochs (1, as ``Study.run``'s
  ``scheduler="asha"``; methods named ``NAME@graceN`` use N), reduction factor 3,
  ``max_t`` = the table's epochs, until ``--asha-epochs`` epochs are spent (by default
  half of what full training spends: the target asks for a quarter). As in ``Study.run``
  (``reuse_finished=True``), a repeat of a network already trained to ``max_t`` is
  answered from the record at no cost.

Methods: every controller of :func:`search.list_controllers` (``random`` is Optuna's
``RandomSampler``, ``gp`` Optuna's ``GPSampler`` with its defaults, ``nni-tpe`` and
``nni-evolution`` NNI 3's own tuners behind archtune's adapter, so these four are also
the peers of those names), plus Optuna's ``TPESampler`` with its defaults
(``optuna-tpe``) and ``CmaEsSampler`` on an ordinal encoding of the decisions
(``optuna-cmaes``). The benchmark's protocol follows NAS-Bench-201 (Dong & Yang, 2020).

Two tables are shipped: ``digits_resnet.json.gz`` (12 epochs, the main one; results in
``benchmarks/results/nasbench.json``) and ``digits_resnet_e27.json.gz`` (27 epochs, to
give ASHA whole rungs; ``nasbench_e27.json``). Results (per run and summarised, with
machine and versions) go to ``--json`` every :data:`SAVE_EVERY_S` seconds and after each
method; a rerun with the same file skips the runs already there. ``--write-docs`` also
writes the table's two figures under ``docs/figures/`` and its section of
``docs/benchmarks.md`` (between ``<!-- nasbench:start -->`` and ``<!-- nasbench:end
-->``, or ``nasbench_e27:start`` / ``end``).

Example (from the repository root; with ``--jobs 2``, seeds run in two processes; a few
hours and about 45 minutes of two cores: under ASHA, with repeats answered from the
record, TPE and the NNI tuners ask thousands of times per run, hence fewer seeds for
them)::

    nice -n 10 .venv/bin/python benchmarks/nasbench/replay.py --jobs 2 --write-docs
    nice -n 10 .venv/bin/python benchmarks/nasbench/replay.py --jobs 2 --write-docs \\
        --table benchmarks/nasbench/digits_resnet_e27.json.gz --asha-seeds 10 \\
        --slow-asha-seeds 0

Only the docs of both tables, from the results already written::

    .venv/bin/python benchmarks/nasbench/replay.py --docs-only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import optuna  # noqa: E402

from benchmarks import machine_info  # noqa: E402
from benchmarks.nasbench import report, simulate  # noqa: E402
from benchmarks.nasbench.table import (  # noqa: E402
    DEFAULT_TABLE,
    Table,
    init_worker,
    use_table,
    worker_table,
)
from search import list_controllers, make_controller  # noqa: E402

TABLE_E27 = os.path.join(ROOT, "benchmarks", "nasbench", "digits_resnet_e27.json.gz")
ASHA_SHARE = 0.5  # default ASHA budget, as a share of full training's epochs
CHECKPOINTS = (50, 100, 200)
TEST_AT = (50, 100, 150, 200)  # test regret is kept at these evaluation counts
# Curves are kept at these evaluation counts (every one up to 20, then every 5).
EVAL_GRID = [*range(1, 20), *range(20, 201, 5)]
PEERS = ("optuna-tpe", "optuna-cmaes")
ORDINAL = {"optuna-cmaes"}
# Methods whose replays take tens of seconds to minutes each run fewer seeds.
SLOW = ("nni-tpe", "nni-evolution", "optuna-tpe")
GP = ("gp",)
# Run under ASHA only: a documented option that suits a scheduler that stops trials, and
# methods with another grace period (``@graceN``: ``scheduler_options={"grace_period": N}``).
# ``NAME+resume``: a repeat of a stopped network goes on from its checkpoint
# (``Study.run(resume_stopped=True)``).
ASHA_ONLY = (
    "evolution+use_pruned",
    "evolution@grace3",
    "random@grace3",
    "tpe@grace3",
    "evolution@grace4",
    "random@grace4",
    "tpe@grace4",
    "evolution+resume",
    "evolution+resume@grace3",
    "random+resume@grace3",
)
RESUME = "+resume"
SAVE_EVERY_S = 30.0  # results are written this often, and after each method


def methods() -> list[str]:
    """Every registered controller, the peers that are not controllers, ASHA-only variants."""
    return [*sorted(list_controllers()), *PEERS, *ASHA_ONLY]


def default_json(table_path: str) -> str:
    """The results file of a table: ``nasbench.json`` for the main one.

    Example:
        >>> os.path.basename(default_json("x/digits_resnet_e27.json.gz"))
        'nasbench_e27.json'
    """
    key = report.table_key({"table": {"path": table_path}})
    return os.path.join(ROOT, "benchmarks", "results", f"nasbench{key}.json")


def make_sampler(name: str, seed: int, asha: bool = False) -> optuna.samplers.BaseSampler:
    """A fresh sampler of method ``name`` with ``seed`` (defaults everywhere)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "optuna-tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if name == "optuna-cmaes":
            # ASHA: let CMA-ES learn from stopped trials too, as it would with a pruner.
            return optuna.samplers.CmaEsSampler(
                seed=seed, warn_independent_sampling=False, consider_pruned_trials=asha
            )
    if name == "evolution+use_pruned":
        return make_controller("evolution", seed=seed, use_pruned=True)
    return make_controller(name, seed=seed)


def split_grace(method: str) -> tuple[str, int | None]:
    """``"evolution@grace3"`` as ``("evolution", 3)``; a plain name has no grace of its own.

    Example:
        >>> split_grace("evolution@grace3"), split_grace("tpe")
        (('evolution', 3), ('tpe', None))
    """
    base, sep, grace = method.partition("@grace")
    return base, int(grace) if sep else None


def _grid(values: list[float], grid: list[int]) -> list[float | None]:
    return [_num(values[g - 1]) if g <= len(values) else None for g in grid]


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def full_run(table: Table, method: str, seed: int, budget: int) -> dict[str, Any]:
    """One full-training replay, reduced to what the results keep."""
    sampler = make_sampler(method, seed)
    r = simulate.run_full(table, sampler, budget, ordinal=method in ORDINAL)
    grid = [g for g in EVAL_GRID if g <= budget]
    return {
        "seed": seed,
        "evals_to_top": r["evals_to_top"],
        "trainings_to_top": r["trainings_to_top"],
        "seconds_to_top": r["seconds_to_top"],
        "unique": r["unique"],
        "val_regret": _grid(r["val_regret"], grid),
        # Test regret only where it is reported (keeps the results file small).
        "test_regret": {str(c): _num(r["test_regret"][c - 1]) for c in TEST_AT if c <= budget},
        "sim_seconds": round(r["sim_seconds"][-1], 2),
        "wall_seconds": round(r["wall_seconds"], 2),
    }


def asha_run(
    table: Table, method: str, seed: int, epoch_budget: int, grace: int = 1
) -> dict[str, Any]:
    """One ASHA replay; regret on the grid of ``table.epochs`` x :data:`EVAL_GRID` epochs.

    A method ``"NAME@graceN"`` runs ``NAME`` with grace ``N`` instead of ``grace``.
    """
    base, own_grace = split_grace(method)
    resume = base.endswith(RESUME)
    base = base.removesuffix(RESUME)
    sampler = make_sampler(base, seed, asha=True)
    r = simulate.run_asha(
        table,
        sampler,
        epoch_budget,
        grace=own_grace or grace,
        ordinal=base in ORDINAL,
        reuse=True,
        resume=resume,
    )
    grid = [table.epochs * g for g in EVAL_GRID if table.epochs * g <= epoch_budget]
    return {
        "seed": seed,
        "trials": r["trials"],
        "repeats": r["repeats"],
        "completed": r["completed"],
        "stops": r["stops"],
        "resumed": r["resumed"],
        "val_regret": [_num(v) for v in simulate.on_grid(r["epochs"], r["val_regret"], grid)],
        "test_regret_final": _num(r["test_regret"][-1]),
        "wall_seconds": round(r["wall_seconds"], 2),
    }


def compact(result: dict[str, Any]) -> None:
    """Runs written with a full test-regret curve keep it at :data:`TEST_AT` only."""
    grid = result["eval_grid"]
    for run in _all(result, "full"):
        if isinstance(run.get("test_regret"), list):
            curve = run["test_regret"]
            run["test_regret"] = {str(c): curve[grid.index(c)] for c in TEST_AT if c in grid}
    for run in _all(result, "asha"):
        if "test_regret" in run:
            run["test_regret_final"] = run.pop("test_regret")[-1]


def _all(result: dict[str, Any], setting: str) -> list[dict[str, Any]]:
    return [r for runs in result["runs"][setting].values() for r in runs]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", default=DEFAULT_TABLE, help="the benchmark table")
    p.add_argument(
        "--json", help="results file, resumed if present (default: by table, under results/)"
    )
    p.add_argument("--seeds", type=int, default=100, help="seeds per method (100)")
    p.add_argument("--asha-seeds", type=int, default=100, help="seeds per method, ASHA (100)")
    p.add_argument("--slow-seeds", type=int, default=30, help=f"seeds for {SLOW} (30)")
    p.add_argument("--slow-asha-seeds", type=int, default=30, help="their ASHA seeds (30)")
    p.add_argument("--gp-seeds", type=int, default=30, help="seeds for gp (30)")
    p.add_argument("--gp-asha-seeds", type=int, default=30, help="its ASHA seeds (30)")
    p.add_argument("--budget", type=int, default=200, help="full-training evaluations (200)")
    p.add_argument(
        "--asha-epochs",
        type=int,
        help=f"ASHA epoch budget (default: {ASHA_SHARE} x budget x table epochs)",
    )
    p.add_argument("--asha-grace", type=int, default=1, help="ASHA grace period, epochs (1)")
    p.add_argument("--methods", nargs="*", help="subset of methods (default: all)")
    p.add_argument("--jobs", type=int, default=1, help="replay processes (1)")
    p.add_argument("--fresh", action="store_true", help="ignore runs already in --json")
    p.add_argument("--write-docs", action="store_true", help="also write figures and docs")
    p.add_argument(
        "--docs-only",
        action="store_true",
        help="only rewrite figures and docs (of both shipped tables unless --json is given)",
    )
    return p.parse_args(argv)


def _new_result(args: argparse.Namespace, table: Table, argv: list[str] | None) -> dict:
    return {
        **machine_info.header(
            "nasbench",
            argv,
            ["optuna", "numpy", "cmaes", "nni", "torch"],
            "nice -n 10 .venv/bin/python benchmarks/nasbench/replay.py",
        ),
        "table": {
            "path": os.path.relpath(args.table, ROOT),
            **table.summary(),
            "build_machine": table.meta.get("machine"),
            "recipe": table.meta.get("recipe"),
            "splits": table.meta.get("splits"),
        },
        "budget": args.budget,
        "asha": {
            "grace": args.asha_grace,
            "eta": 3,
            "max_t": table.epochs,
            "epoch_budget": args.asha_epochs,
            "reuse": True,
        },
        "checkpoints": list(CHECKPOINTS),
        "eval_grid": [g for g in EVAL_GRID if g <= args.budget],
        "epoch_grid": [
            table.epochs * g for g in EVAL_GRID if table.epochs * g <= args.asha_epochs
        ],
        "runs": {"full": {}, "asha": {}},
    }


def _work(job: tuple[Callable[..., dict[str, Any]], str, int, int]) -> dict[str, Any]:
    run, method, seed, budget = job
    return run(worker_table(), method, seed, budget)


def _replay_all(
    args: argparse.Namespace,
    table: Table,
    result: dict[str, Any],
    save: Callable[[], None],
) -> None:
    use_table(table)
    with contextlib.ExitStack() as stack:
        pool = None
        if args.jobs > 1:
            pool = stack.enter_context(multiprocessing.Pool(args.jobs, init_worker, (args.table,)))
        _replay_jobs(args, result, save, pool.imap if pool else map)


def _replay_jobs(
    args: argparse.Namespace,
    result: dict[str, Any],
    save: Callable[[], None],
    mapper: Callable[..., Any],
) -> None:
    chosen = machine_info.chosen_methods(args.methods, methods())
    settings = {
        "full": (full_run, args.budget),
        "asha": (partial(asha_run, grace=args.asha_grace), args.asha_epochs),
    }
    # Cheap methods first, then the slow ones, then gp: an interrupted replay (the JSON is
    # saved after every run and resumed) has the most methods done.
    cost = {m: 2 if m in GP else 1 if m in SLOW else 0 for m in chosen}
    order = {"full": 0, "asha": 1}
    jobs = sorted(
        ((cost[m], s, m) for s in settings for m in chosen), key=lambda j: (j[0], order[j[1]])
    )
    for _, setting, method in jobs:
        run, budget = settings[setting]
        runs = result["runs"][setting].setdefault(method, [])
        done = {r["seed"] for r in runs}
        saved = time.monotonic()
        todo = [s for s in range(_seeds(args, method, setting)) if s not in done]
        for one in mapper(_work, [(run, method, seed, budget) for seed in todo]):
            runs.append(one)
            print(f"{setting} {method} seed={one['seed']}: {_brief(one)}", flush=True)
            if time.monotonic() - saved > SAVE_EVERY_S:  # summarising takes ~1 s
                result["summary"] = report.summarise(result)
                save()
                saved = time.monotonic()
        if not runs:
            del result["runs"][setting][method]
            continue
        result["summary"] = report.summarise(result)
        save()


def _seeds(args: argparse.Namespace, method: str, setting: str) -> int:
    """Seeds of one method in one setting (``gp``: ``--gp-seeds`` and ``--gp-asha-seeds``)."""
    asha = setting == "asha"
    if method in ASHA_ONLY:
        return args.asha_seeds if asha else 0
    if method in GP:
        return args.gp_asha_seeds if asha else args.gp_seeds
    if method in SLOW:
        return args.slow_asha_seeds if asha else args.slow_seeds
    return args.asha_seeds if asha else args.seeds


def _brief(run: dict[str, Any]) -> str:
    keys = ("evals_to_top", "trials", "completed", "unique", "wall_seconds")
    return ", ".join(f"{k}={run[k]}" for k in keys if k in run) + (
        f", regret={run['val_regret'][-1]}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.docs_only:
        paths = (
            [args.json] if args.json else [default_json(DEFAULT_TABLE), default_json(TABLE_E27)]
        )
        for path in paths:
            with open(path, encoding="utf-8") as f:
                result = json.load(f)
            compact(result)
            result["summary"] = report.summarise(result)
            report.write_docs(result, ROOT)
        return result
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}.")
    args.json = args.json or default_json(args.table)
    table = Table.load(args.table)
    if args.asha_epochs is None:
        args.asha_epochs = round(ASHA_SHARE * args.budget * table.epochs)
    result = _new_result(args, table, argv)
    if not args.fresh and os.path.exists(args.json):
        with open(args.json, encoding="utf-8") as f:
            old = json.load(f)
        # Runs are kept per setting when that setting and the table are unchanged.
        keys = {"full": ("budget", "eval_grid"), "asha": ("asha", "epoch_grid")}
        was = old.get("table", {})
        table_same = (was.get("rows"), was.get("recipe")) == (len(table), table.meta.get("recipe"))
        kept = [
            s for s, ks in keys.items() if table_same and all(old.get(k) == result[k] for k in ks)
        ]
        for setting in kept:
            result["runs"][setting] = old["runs"][setting]
        compact(result)
        if kept and not old["command"].endswith(result["command"]):
            result["command"] = old["command"] + " && " + result["command"]
        elif kept:
            result["command"] = old["command"]
    _replay_all(args, table, result, lambda: machine_info.write_json(args.json, result))
    result["seeds"] = {
        k: {m: len(v) for m, v in runs.items()} for k, runs in result["runs"].items()
    }
    result["summary"] = report.summarise(result)
    machine_info.write_json(args.json, result)
    print(report.markdown_tables(result))
    if args.write_docs:
        report.write_docs(result, ROOT)
    return result


if __name__ == "__main__":
    main()
