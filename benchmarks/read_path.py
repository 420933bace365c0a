"""How long the views take to read a large study: Optuna's path against the read path.

Issue 14: on a study of 10,012 finished trials (SQLite) ``archtune ls`` took 10.4 s,
``show`` 48.7 s and ``report`` 26.8 s, because every view went through Optuna's
``get_trials``. This script makes studies of ``--sizes`` finished trials (10,000 and
100,000 by default) and times, side by side in one process on one database:

- ``optuna_get_trials``: ``optuna.load_study(...).get_trials(deepcopy=False)``;
- ``records_load`` and ``records_ls``: ``records.load_study_record`` (what ``show`` and
  ``report`` read today) and ``records.list_studies`` (``ls`` today);
- ``reader_load``: :meth:`studies.reads.StudyReader.load_record` (the same record);
- ``reader_ls``: :meth:`~studies.reads.StudyReader.summaries`;
- ``reader_page`` (50 trials by number), ``reader_page_best`` (50 by value, best first,
  only COMPLETE), ``reader_best`` (the best trial): what a paged ``show`` reads;
- ``reader_poll_idle``: a live poll that finds nothing new (no trial running), and
  ``reader_poll_4_running``: one with 4 trials running, which it returns every time.

The study is written by SQL bulk inserts into the tables ``optuna.create_study`` and
:func:`studies.storage.open_storage` made (Optuna's ``add_trials`` takes minutes for
10,000): ``--epochs`` intermediate values and 4 archtune metric rows per epoch for each
trial, 6 parameters (categorical, int, log-float, stepped float), 5 user attributes and
one system attribute; 70% COMPLETE, 28% PRUNED (stopped at a random epoch), 2% FAIL.
A path that takes longer than ``--give-up`` seconds once is not repeated.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/read_path.py --json benchmarks/results/read_path.json
    .venv/bin/python benchmarks/read_path.py --quick   # 1,000 and 5,000 trials
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import machine_info
import numpy as np
import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

from search.optuna_access import trial_id
from studies import reads_sql as q
from studies.reads import StudyReader
from studies.records import (
    ATTR_ARCH_ID,
    ATTR_NODE,
    ATTR_OBJECTIVE,
    ATTR_RUN,
    ATTR_SPACE,
    ATTR_STATS,
    list_studies,
    load_study_record,
)
from studies.storage import MetricRow, Storage, open_storage, shown_url

NAME = "big"
METRICS = ("train_loss", "val_loss", "val_acc", "epoch_s")
PARAMS = {  # name: distribution JSON, as Optuna stores it
    "width": optuna.distributions.CategoricalDistribution([16, 32, 64]),
    "depth": optuna.distributions.IntDistribution(1, 4),
    "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
    "prune_ratio": optuna.distributions.FloatDistribution(0.0, 0.8, step=0.1),
    "batch_size": optuna.distributions.CategoricalDistribution([64, 128]),
    "precision": optuna.distributions.CategoricalDistribution(["fp32", "bf16"]),
}


def make_study(storage: Storage, n: int, epochs: int, seed: int = 0) -> None:
    """Write study :data:`NAME` with ``n`` finished trials by bulk inserts."""
    study = optuna.create_study(study_name=NAME, storage=storage.optuna, direction="maximize")
    study.set_user_attr(ATTR_OBJECTIVE, "val_acc")
    study.set_user_attr(ATTR_SPACE, json.dumps({"note": "synthetic"}))
    run = {"controller": {"name": "evolution", "seed": 0, "options": {}}, "scheduler": "asha"}
    study.set_user_attr(ATTR_RUN, json.dumps(run))
    with storage.optuna.engine.connect() as conn:
        sid = conn.scalar(sa.select(q.studies.c.study_id).where(q.studies.c.study_name == NAME))
        first = int(conn.scalar(sa.select(sa.func.max(q.trials.c.trial_id))) or 0) + 1
    rng = np.random.default_rng(seed)
    base = datetime(2026, 1, 1)
    dists = {k: optuna.distributions.distribution_to_json(d) for k, d in PARAMS.items()}
    for lo in range(0, n, 5000):
        rows: dict[str, list[dict[str, Any]]] = {
            k: [] for k in ("t", "p", "v", "i", "a", "s", "m")
        }
        for number in range(lo, min(n, lo + 5000)):
            _trial(rows, rng, sid, first + number, number, epochs, base, dists)
        with storage.optuna.engine.begin() as conn:
            conn.execute(sa.insert(q.trials), rows["t"])
            conn.execute(sa.insert(q.trial_params), rows["p"])
            conn.execute(sa.insert(q.trial_values), rows["v"])
            conn.execute(sa.insert(q.trial_intermediate_values), rows["i"])
            conn.execute(sa.insert(q.trial_user_attributes), rows["a"])
            conn.execute(sa.insert(q.trial_system_attributes), rows["s"])
            conn.execute(sa.insert(MetricRow.__table__), rows["m"])
    if storage.optuna.engine.dialect.name == "postgresql":  # ids were given: move the sequence
        with storage.optuna.engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), "
                "(SELECT max(trial_id) FROM trials))"
            )


def _trial(
    rows: dict[str, list[dict[str, Any]]],
    rng: np.random.Generator,
    sid: int,
    tid: int,
    number: int,
    epochs: int,
    base: datetime,
    dists: dict[str, str],
) -> None:
    u = rng.random()
    state = TrialState.COMPLETE if u < 0.70 else TrialState.PRUNED if u < 0.98 else TrialState.FAIL
    last = epochs if state == TrialState.COMPLETE else int(rng.integers(1, epochs))
    start = base + timedelta(seconds=30 * number)
    end = start + timedelta(seconds=2.5 * last + rng.random())
    rows["t"].append(
        {
            "trial_id": tid,
            "number": number,
            "study_id": sid,
            "state": state,
            "datetime_start": start,
            "datetime_complete": end,
        }
    )
    for name, dist in PARAMS.items():
        internal = (
            float(rng.integers(len(dist.choices)))
            if isinstance(dist, optuna.distributions.CategoricalDistribution)
            else float(rng.uniform(dist.low, dist.high))
        )
        if isinstance(dist, optuna.distributions.IntDistribution):
            internal = float(round(internal))
        rows["p"].append(
            {
                "trial_id": tid,
                "param_name": name,
                "param_value": internal,
                "distribution_json": dists[name],
            }
        )
    skill = float(rng.uniform(0.5, 1.0))
    curve = [skill * (1 - 0.5**e) for e in range(1, last + 1)]
    if state != TrialState.FAIL:
        rows["v"].append(
            {"trial_id": tid, "objective": 0, "value": curve[-1], "value_type": q.ValueType.FINITE}
        )
    for e, acc in enumerate(curve, 1):
        rows["i"].append(
            {
                "trial_id": tid,
                "step": e,
                "intermediate_value": acc,
                "intermediate_value_type": q.IntermediateType.FINITE,
            }
        )
        at = start + timedelta(seconds=2.5 * e)
        for name, value in zip(METRICS, (1 - acc, 1.1 - acc, acc, 2.5), strict=True):
            rows["m"].append(
                {
                    "trial_id": tid,
                    "step": e,
                    "name": name,
                    "value": value,
                    "kind": "finite",
                    "recorded_at": at,
                }
            )
    attrs = {
        ATTR_ARCH_ID: f"{tid:016x}",
        ATTR_STATS: {
            "params": float(rng.integers(1e4, 1e6)),
            "flops": float(rng.integers(1e6, 1e8)),
        },
        ATTR_NODE: "node-1 (10.0.0.1)",
        "archtune:proposed": True,
        "archtune:checkpoint": f"/runs/{NAME}/trial_{number}/checkpoint.pt",
    }
    for key, value in attrs.items():
        rows["a"].append({"trial_id": tid, "key": key, "value_json": json.dumps(value)})
    rows["s"].append(
        {"trial_id": tid, "key": "evolution:generation", "value_json": json.dumps(number // 50)}
    )


def add_running(storage: Storage, k: int, epochs: int) -> None:
    """Add ``k`` RUNNING trials that reported ``epochs`` epochs (a live driver's)."""
    study = optuna.load_study(study_name=NAME, storage=storage.optuna)
    for _ in range(k):
        trial = study.ask()
        for e in range(1, epochs + 1):
            trial.report(0.5, e)
            storage.add_metrics(trial_id(trial), e, dict.fromkeys(METRICS, 0.5))


def timed(fn: Callable[[], Any], repeats: int, give_up: float) -> dict[str, Any]:
    """Wall and CPU seconds of ``fn()``: ``repeats`` runs (one if the first took over
    ``give_up``). CPU time is this process's: on a shared machine it moves less."""
    runs: list[float] = []
    cpu: list[float] = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            fn()
        except Exception as e:  # a path that breaks at this size is a result too
            return {
                "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                "after_s": time.perf_counter() - t0,
            }
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if runs[-1] > give_up:
            break
    return {
        "median_s": statistics.median(runs),
        "min_s": min(runs),
        "runs": runs,
        "cpu_median_s": statistics.median(cpu),
        "os_load_1min": os.getloadavg()[0],
    }


def measure(url: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Make a study of ``n`` trials at ``url`` and time every path on it."""
    storage = open_storage(url)
    t0 = time.perf_counter()
    make_study(storage, n, args.epochs)
    made_s = time.perf_counter() - t0
    reader = StudyReader(storage)
    slow, fast = args.repeats, args.fast_repeats
    out: dict[str, Any] = {"trials": n, "make_s": made_s}

    def optuna_trials() -> None:
        optuna.load_study(study_name=NAME, storage=storage.optuna).get_trials(deepcopy=False)

    paths: dict[str, tuple[Callable[[], Any], int]] = {
        "reader_ls": (reader.summaries, fast),
        "reader_page": (lambda: reader.page(NAME, 0, 50), fast),
        "reader_page_best": (
            lambda: reader.page(NAME, 0, 50, "value", True, state="COMPLETE"),
            fast,
        ),
        "reader_best": (lambda: reader.best(NAME), fast),
        "reader_load": (lambda: reader.load_record(NAME), slow),
        "optuna_get_trials": (optuna_trials, slow),
        "records_ls": (lambda: list_studies(storage), slow),
        "records_load": (lambda: load_study_record(storage, NAME), slow),
    }
    for key, (fn, repeats) in paths.items():
        if key.startswith(("optuna", "records")) and n > args.today_up_to:
            out[key] = {"skipped": f"over --today-up-to {args.today_up_to}"}
            continue
        out[key] = timed(fn, repeats, args.give_up)
        print(f"  {n:>7} trials  {key:<22} {_shown(out[key])}", flush=True)
    cursor = reader.poll(NAME).cursor
    out["reader_poll_idle"] = timed(lambda: reader.poll(NAME, cursor), fast * 4, args.give_up)
    add_running(storage, 4, 3)
    cursor = reader.poll(NAME).cursor
    out["reader_poll_4_running"] = timed(lambda: reader.poll(NAME, cursor), fast * 4, 60)
    for key in ("reader_poll_idle", "reader_poll_4_running"):
        print(f"  {n:>7} trials  {key:<22} {_shown(out[key])}", flush=True)
    storage.optuna.engine.dispose()
    return out


def _shown(result: dict[str, Any]) -> str:
    if "median_s" in result:
        return (
            f"{result['median_s']:.4f} s (min {result['min_s']:.4f}, cpu "
            f"{result['cpu_median_s']:.4f}, {len(result['runs'])} runs, "
            f"load {result['os_load_1min']:.1f})"
        )
    return str(result)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--quick", action="store_true", help="sizes 1,000 and 5,000")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="runs of a whole-study read")
    p.add_argument("--fast-repeats", type=int, default=5, help="runs of a page, ls, poll")
    p.add_argument("--give-up", type=float, default=30.0, help="run a slower path once")
    p.add_argument("--today-up-to", type=int, default=10**9, help="skip Optuna's path above")
    p.add_argument(
        "--url",
        help="a PostgreSQL server URL (a database is made per size; "
        "default: an SQLite file per size)",
    )
    p.add_argument("--json", help="write results here")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = [1000, 5000]
    return args


@contextmanager
def _database(server: str | None, tmp: str, n: int) -> Iterator[str]:
    """A new database for ``n`` trials: an SQLite file in ``tmp``, or one made on the
    PostgreSQL ``server`` and dropped afterwards."""
    if server is None:
        yield f"sqlite:///{os.path.join(tmp, f'read_path_{n}.db')}"
        return
    url = sa.engine.make_url(server)
    url = url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    name = f"archtune_read_path_{n}_{os.getpid()}"
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    given = sys.argv[1:] if argv is None else list(argv)
    shown = [shown_url(a) if "://" in a else a for a in given]  # no password in the file
    result = machine_info.header(
        "read_path", shown, ["optuna", "sqlalchemy"], ".venv/bin/python benchmarks/read_path.py"
    )
    result["settings"] = {k: v for k, v in vars(args).items() if k not in ("json", "url")}
    result["backend"] = "postgresql" if args.url else "sqlite"
    result["sizes"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            print(f"{n} trials ({result['backend']})", flush=True)
            with _database(args.url, tmp, n) as url:
                result["sizes"][str(n)] = measure(url, n, args)
            if args.json:
                machine_info.write_json(args.json, result, indent=1)
    return result


if __name__ == "__main__":
    main()
