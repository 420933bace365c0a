"""Storage cost per trial as a study grows: archtune's recorder against plain Optuna.

A study of ``--trials`` trials (10,000 by default) is recorded, one trial at a time and
without Ray, the way Ray Tune drives archtune's :class:`~studies.recorder.Recorder`:
``ask`` (the controller proposes), then per epoch ``result`` (the objective as an
intermediate value, every metric as a row of ``archtune_metrics``) and ``checkpoint``
(the trial's checkpoint directory, as ``ImageClassifier`` writes one each epoch), then
``complete`` (tell COMPLETE), then ``flush`` (the recorder's background writer has
written everything). A trial's cost is the wall time of all of that. Methods:

- ``archtune-sqlite``, ``archtune-postgres``: the recorder on a study made by
  ``Study.create`` in a fresh SQLite file (archtune's settings: WAL,
  ``synchronous=NORMAL``) or a fresh PostgreSQL database, Optuna's ``RandomSampler``.
- ``optuna-memory``: plain Optuna, in-memory storage: ``ask``, the same two
  ``suggest`` calls, one ``report`` per epoch, ``tell``; the same sampler and seed.
- ``optuna-sqlite``, ``optuna-postgres``: the same plain Optuna calls on Optuna's RDB
  storage over the same kind of database, opened the same way (``open_storage``), so
  the difference to ``archtune-*`` is the recorder's own work.

The methods run side by side in one process: each records ``--block`` trials in turn,
so a change in the machine's load falls on all of them alike. The figure is the mean
(and median, p95) wall time per trial over windows of ``--window`` trials, the first
window against the last: the target is a per-trial cost that stays flat from 1,000 to
10,000 trials. For every database method the SQL statements are timed per window
(SQLAlchemy cursor events), so a statement whose cost grows with the study is named.

PostgreSQL comes from ``--postgres URL`` or ``ARCHTUNE_TEST_POSTGRES_URL`` (a user that
may ``CREATE DATABASE``; ``eval "$(.ci/run postgres)"`` starts a throw-away server):
each method gets a database of its own, dropped at the end. Without one the PostgreSQL
methods are skipped.

Rerun (from the repository root)::

    eval "$(.ci/run postgres)"
    .venv/bin/python benchmarks/storage_cost.py --json benchmarks/results/storage_cost.json

``--quick`` runs a smoke-sized study (200 trials, windows of 50).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import machine_info
import optuna
import sqlalchemy as sa
from sql_profile import SqlProfile
from sqlalchemy.engine import make_url

from spaces import Categorical, Float, SearchSpace
from studies.recorder import Recorder
from studies.storage import Storage, open_storage
from studies.study import Study

METHODS = (
    "archtune-sqlite",
    "archtune-postgres",
    "optuna-memory",
    "optuna-sqlite",
    "optuna-postgres",
)
SPACE = SearchSpace({"x": Float(0.0, 1.0), "c": Categorical(["a", "b"])})
METRICS = ("epoch", "score", "loss", "val_acc", "seconds")  # rows per epoch in archtune


def report(epoch: int, epochs: int, x: float) -> dict[str, Any]:
    """What a trial reports at ``epoch``, as Ray Tune hands it to the recorder (the
    trainer's keys listed in ``archtune_keys``, Ray's own beside them)."""
    metrics = {
        "epoch": epoch,
        "score": x * epoch / epochs,
        "loss": 1.0 / epoch,
        "val_acc": 0.5 + 0.4 * x * epoch / epochs,
        "seconds": 0.01,
    }
    return {**metrics, "archtune_keys": list(metrics), "training_iteration": epoch}


# SQL profiling ---------------------------------------------------------------------
# Methods -----------------------------------------------------------------------------
@dataclass
class Side:
    """One method: how to record trial ``i``, and what it measured.

    ``ask_s[i]`` is the wall time to propose trial ``i``; ``record_s[i]`` the wall time
    of its results, checkpoints, tell and the wait for the writes; ``cpu_s[i]`` the
    process's CPU time over both (every thread; a PostgreSQL server's is not counted).
    """

    name: str
    record_trial: Callable[[int], tuple[float, float]]
    close: Callable[[], None]
    profile: SqlProfile | None = None
    size: Callable[[], int | None] = lambda: None
    ask_s: list[float] = field(default_factory=list)
    record_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)


def archtune_side(name: str, url: str, args: argparse.Namespace) -> Side:
    """archtune's recorder on a new study in the database at ``url``."""
    study = Study.create("storage-cost", space=SPACE, objective="score", storage=url)
    study.optuna.sampler = optuna.samplers.RandomSampler(seed=args.seed)
    finished: list[int] = []
    recorder = Recorder(
        study.optuna,
        study.storage,
        SPACE,
        study.objectives,
        budget=lambda config: args.epochs,
        num_trials=args.trials,
        on_finish=lambda t: finished.append(t.number),
        trainer_id="storage-cost",
        reuse=True,  # Study.run's default (reuse_finished=True)
    )
    runs = os.path.join(args.tmp, f"{name}-runs")

    def record_trial(i: int) -> tuple[float, float]:
        key = f"trial_{i:05d}"
        t0 = time.perf_counter()
        config = recorder.ask(key)
        t1 = time.perf_counter()
        if config is None:
            raise RuntimeError(f"{name}: the recorder proposed nothing for trial {i}.")
        result: dict[str, Any] = {}
        for epoch in range(1, args.epochs + 1):
            result = report(epoch, args.epochs, float(config["x"]))
            recorder.result(key, result)
            if args.checkpoints:
                recorder.checkpoint(key, os.path.join(runs, key, f"checkpoint_{epoch:06d}"))
        recorder.complete(key, result)  # Ray repeats the last result at the end
        recorder.flush()
        return t1 - t0, time.perf_counter() - t1

    def close() -> None:
        recorder.close()
        if len(finished) != args.trials_run:
            raise RuntimeError(f"{name}: {len(finished)} of {args.trials_run} trials were told.")
        study.storage.optuna.engine.dispose()

    return Side(
        name,
        record_trial,
        close,
        SqlProfile(study.storage.optuna.engine),
        lambda: database_bytes(study.storage),
    )


def optuna_side(name: str, storage: Storage | None, args: argparse.Namespace) -> Side:
    """Plain Optuna ask/suggest/report/tell, in memory or on ``storage``'s RDB storage."""
    study = optuna.create_study(
        study_name="storage-cost",
        storage=None if storage is None else storage.optuna,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=args.seed),
    )

    def record_trial(i: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.suggest_categorical("c", ["a", "b"])
        t1 = time.perf_counter()
        value = 0.0
        for epoch in range(1, args.epochs + 1):
            value = x * epoch / args.epochs
            trial.report(value, epoch)
        study.tell(trial, value)
        return t1 - t0, time.perf_counter() - t1

    def close() -> None:
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if done != args.trials_run:
            raise RuntimeError(f"{name}: {done} of {args.trials_run} trials are COMPLETE.")
        if storage is not None:
            storage.optuna.engine.dispose()

    if storage is None:
        return Side(name, record_trial, close)
    return Side(
        name,
        record_trial,
        close,
        SqlProfile(storage.optuna.engine),
        lambda: database_bytes(storage),
    )


def database_bytes(storage: Storage) -> int | None:
    """The database's size on disk: the SQLite file with its WAL, or PostgreSQL's
    ``pg_database_size``."""
    url = make_url(storage.url)
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    with storage.optuna.engine.connect() as c:
        return int(c.scalar(sa.text("SELECT pg_database_size(current_database())")))


class PostgresDatabases:
    """Fresh PostgreSQL databases on one server, each dropped at :meth:`drop_all`."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.admin = sa.create_engine(
            server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        self.names: list[str] = []

    def new(self) -> str:
        """The URL of a new, empty database."""
        name = f"storage_cost_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return make_url(self.server).set(database=name).render_as_string(hide_password=False)

    def version(self) -> str:
        with self.admin.connect() as c:
            return str(c.exec_driver_sql("SHOW server_version").scalar())

    def settings(self) -> dict[str, str]:
        """The server's durability settings (a throw-away test server has them off)."""
        with self.admin.connect() as c:
            return {
                k: str(c.exec_driver_sql(f"SHOW {k}").scalar())
                for k in ("fsync", "synchronous_commit", "full_page_writes")
            }

    def drop_all(self) -> None:
        with self.admin.connect() as c:
            for name in self.names:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.dispose()


def make_side(name: str, args: argparse.Namespace, pg: PostgresDatabases | None) -> Side:
    """The :class:`Side` of method ``name`` on a fresh database."""
    backend = name.split("-", 1)[1]
    if backend == "memory":
        return optuna_side(name, None, args)
    if backend == "sqlite":
        url = f"sqlite:///{os.path.join(args.tmp, name + '.db')}"
    else:
        if pg is None:
            raise ValueError("no PostgreSQL server")
        url = pg.new()
    if name.startswith("archtune"):
        return archtune_side(name, url, args)
    return optuna_side(name, open_storage(url), args)


# Summaries ---------------------------------------------------------------------------
def window_summary(side: Side, start: int, stop: int) -> dict[str, Any]:
    """Per-trial milliseconds (mean, median, p95; ask and record apart) over trials
    ``start`` to ``stop - 1``."""
    total = [a + r for a, r in zip(side.ask_s[start:stop], side.record_s[start:stop], strict=True)]
    ms = sorted(1e3 * t for t in total)
    return {
        "trials": [start + 1, stop],
        "mean_ms": round(statistics.fmean(ms), 3),
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 3),
        "cpu_mean_ms": round(1e3 * statistics.fmean(side.cpu_s[start:stop]), 3),
        "cpu_median_ms": round(1e3 * statistics.median(side.cpu_s[start:stop]), 3),
        "ask_mean_ms": round(1e3 * statistics.fmean(side.ask_s[start:stop]), 3),
        "record_mean_ms": round(1e3 * statistics.fmean(side.record_s[start:stop]), 3),
    }


def summarize(side: Side, args: argparse.Namespace) -> dict[str, Any]:
    """What one method measured: every window, first against last, the SQL profile."""
    n, w = args.trials_run, args.window
    windows = [window_summary(side, s, min(s + w, n)) for s in range(0, n, w)]
    first, last = windows[0], windows[-1]
    out: dict[str, Any] = {
        "windows": windows,
        "first_mean_ms": first["mean_ms"],
        "last_mean_ms": last["mean_ms"],
        "growth_mean": round(last["mean_ms"] / first["mean_ms"], 3),
        "growth_median": round(last["median_ms"] / first["median_ms"], 3),
        "growth_cpu_mean": round(last["cpu_mean_ms"] / first["cpu_mean_ms"], 3),
        "total_s": round(sum(side.ask_s) + sum(side.record_s), 2),
        "cpu_s": round(sum(side.cpu_s), 2),
        "database_bytes": side.size(),
        "block_means_ms": [
            window_summary(side, s, min(s + args.block, n))["mean_ms"]
            for s in range(0, n, args.block)
        ],
    }
    if side.profile is not None:
        last_window = len(windows) - 1
        out["sql_first"] = side.profile.summary(0, min(w, n))
        out["sql_last"] = side.profile.summary(last_window, n - last_window * w)
        out["sql_top_last"] = side.profile.growth(0, last_window, min(w, n))
    return out


def run_side_by_side(sides: Sequence[Side], args: argparse.Namespace, started: float) -> int:
    """Record trials with each side in turn, ``args.block`` at a time, until
    ``args.trials`` or, past ``args.max_minutes``, the end of a window; return how many
    trials each side recorded."""
    done = 0
    while done < args.trials:
        stop = min(done + args.block, args.trials)
        for side in sides:
            for i in range(done, stop):
                if side.profile is not None:
                    side.profile.window = i // args.window
                cpu = time.process_time()
                ask_s, record_s = side.record_trial(i)
                side.cpu_s.append(time.process_time() - cpu)
                side.ask_s.append(ask_s)
                side.record_s.append(record_s)
        done = stop
        elapsed = time.perf_counter() - started
        if done % args.window == 0 or done == args.trials:
            line = ", ".join(f"{s.name} {recent_ms(s, args.window):.1f}" for s in sides)
            print(f"{done} trials ({elapsed:.0f} s): ms/trial {line}", flush=True)
            if args.max_minutes and elapsed > 60 * args.max_minutes and done < args.trials:
                print(f"Stopping at {done} trials: past --max-minutes {args.max_minutes}.")
                break
    return done


def recent_ms(side: Side, n: int) -> float:
    """Mean milliseconds per trial over the last ``n`` trials of ``side``."""
    return 1e3 * (sum(side.ask_s[-n:]) + sum(side.record_s[-n:])) / len(side.ask_s[-n:])


def print_table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    """Wall (mean / median / p95) and CPU (mean) ms per trial, first window against last."""
    first = f"1-{min(args.window, args.trials_run)}"
    last = f"{args.trials_run - args.window + 1}-{args.trials_run}"
    print(
        f"\nms per trial, wall mean / median / p95 [CPU mean], trials {first} against {last}, "
        f"{args.epochs} epochs of {len(METRICS)} metrics each:"
    )
    print(f"{'method':18} {first:>32} {last:>32} {'wall last/first':>16} {'CPU':>6} {'SQL':>10}")
    for name, r in results.items():
        cells = [
            f"{w['mean_ms']:8.2f} {w['median_ms']:7.2f} {w['p95_ms']:7.2f} "
            f"[{w['cpu_mean_ms']:6.2f}]"
            for w in (r["windows"][0], r["windows"][-1])
        ]
        sql = ""
        if "sql_first" in r:
            a, b = r["sql_first"]["statements_per_trial"], r["sql_last"]["statements_per_trial"]
            sql = f"{a:.0f} -> {b:.0f}"
        print(
            f"{name:18} {cells[0]:>32} {cells[1]:>32} {r['growth_mean']:15.2f}x "
            f"{r['growth_cpu_mean']:5.2f}x {sql:>10}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=10_000, help="trials per study (10000)")
    p.add_argument("--window", type=int, default=1000, help="trials per summary window (1000)")
    p.add_argument("--block", type=int, default=100, help="trials per turn of a method (100)")
    p.add_argument("--epochs", type=int, default=5, help="epochs (reports) per trial (5)")
    p.add_argument("--seed", type=int, default=0, help="the random sampler's seed (0)")
    p.add_argument("--methods", nargs="+", choices=METHODS, help="a subset (all by default)")
    p.add_argument(
        "--no-checkpoints",
        dest="checkpoints",
        action="store_false",
        help="no checkpoint event per epoch (ImageClassifier checkpoints every epoch)",
    )
    p.add_argument(
        "--postgres",
        default=os.environ.get("ARCHTUNE_TEST_POSTGRES_URL"),
        help="server URL of a user who may CREATE DATABASE (ARCHTUNE_TEST_POSTGRES_URL)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0,
        help="stop at the end of the first window after this many minutes (0: no limit)",
    )
    p.add_argument("--quick", action="store_true", help="smoke size: 200 trials, windows of 50")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.window, args.block = 200, 50, 50
    if min(args.trials, args.window, args.block, args.epochs) < 1:
        p.error("--trials, --window, --block and --epochs must be >= 1.")
    if args.window > args.trials:
        p.error("--window must be at most --trials.")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    methods = machine_info.chosen_methods(args.methods, METHODS)
    pg = PostgresDatabases(args.postgres) if args.postgres else None
    skipped = [m for m in methods if m.endswith("postgres") and pg is None]
    if skipped:
        print(
            f"No PostgreSQL server (--postgres / ARCHTUNE_TEST_POSTGRES_URL): skipping {skipped}."
        )
    methods = [m for m in methods if m not in skipped]
    postgres: dict[str, Any] | None = None
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="archtune-storage-cost-") as tmp:
        args.tmp = tmp
        try:
            if pg is not None:
                postgres = {"version": pg.version(), **pg.settings()}
            sides = [make_side(m, args, pg) for m in methods]
            args.trials_run = run_side_by_side(sides, args, started)
            for side in sides:
                results[side.name] = summarize(side, args)
                side.close()
        finally:
            if pg is not None:
                pg.drop_all()
    del args.tmp
    print_table(results, args)
    out = {
        **machine_info.header(
            "storage_cost",
            argv,
            ["optuna", "sqlalchemy", "psycopg"],
            ".venv/bin/python benchmarks/storage_cost.py",
        ),
        "settings": {**vars(args), "json": None, "postgres": None},
        "metrics_per_epoch": list(METRICS),
        "sqlite_library": sqlite3.sqlite_version,
        "postgres_server": postgres,
        "skipped": skipped,
        "run_s": round(time.perf_counter() - started, 1),
        "results": results,
    }
    if args.json:
        machine_info.write_json(args.json, out, indent=1)
    return out


if __name__ == "__main__":
    main()
