"""Faults injected into real studies, and what each cost: trials lost, duplicated or
trained again, and the wall time to recover.

Each injection runs a small study with ``archtune run`` in a process of its own (a
local Ray instance, SQLite, ``random`` controller, 6 trials of 6 epochs of 0.5 s, 2 at
a time, a checkpoint every epoch), waits until a trial has completed and another is
running with a checkpoint recorded, then injects one fault:

- ``driver-sigkill``: SIGKILL of the driver and of what it started (its Ray instance),
  as a lost machine; then ``archtune resume``.
- ``sigint`` / ``sigterm``: Ctrl-C or SIGTERM to the driver, which stops cleanly
  (exit status 130 / 143); then ``archtune resume``.
- ``worker-sigkill``: SIGKILL of the Ray worker process running a trial; Ray Tune
  restarts the trial from its last checkpoint (``max_retries``) and the run goes on.
- ``db-lock``: another process holds an exclusive SQLite transaction for
  ``--lock-seconds`` (35 s: past the 30 s ``busy_timeout`` archtune sets, so a write
  fails with "database is locked" and the recorder's writer tries it again).

Afterwards the study is counted from the database and from the trainer's own log
(every start, with the epoch it went on from; every epoch trained, and every epoch saved,
i.e. reported with its checkpoint; with times): trials COMPLETE (of the 6 asked), trials
lost, configurations recorded in two trials, configurations trained from scratch again
after an epoch of theirs was saved, starts from an older checkpoint than the last one
saved, epochs trained twice (and of those, epochs in flight when the fault came: trained,
not yet saved), trials that went on from a checkpoint, restarts recorded
(``archtune:restarts``), per-epoch metric rows recorded twice, whole learning curves,
and ``PRAGMA integrity_check``. Recovery time: from the fault to the first trial
training again (driver faults: after ``archtune resume``, whose start-up is included;
``worker-sigkill``: the killed trial started again), and for ``db-lock`` from the
lock's release to the first trial started after it (a proposal waits for the writes
queued before it).

The trainer (:class:`FaultTrainer`) lives in this module; the study file imports it,
with ``benchmarks/`` on ``PYTHONPATH`` for the driver and its Ray workers.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/faults.py --repeats 3 --json benchmarks/results/faults.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fault_counts import LogLine, count, read_log, study_state

from spaces import SearchSpace
from trainers.base import Trainer, TrialSession

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ("driver-sigkill", "sigint", "sigterm", "worker-sigkill", "db-lock")
STUDY = "faults"

STUDY_FILE = """
from spaces import Float, SearchSpace
from studies import Experiment
from faults import FaultTrainer

experiment = Experiment(
    name="faults",
    space=SearchSpace({"x": Float(0.0, 1.0)}),
    objective="score",
    trainer=FaultTrainer(@LOG@, epochs=@EPOCHS@, seconds=@SECONDS@),
    controller="random",
    seed=@SEED@,
    num_trials=@TRIALS@,
    max_concurrent=2,
    storage=@DB@,
    run_dir=@RUNS@,
)
"""

HOLD_LOCK = (
    "import sqlite3, sys, time\n"
    "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=120)\n"
    "db.execute('BEGIN EXCLUSIVE')\n"
    "print(time.time(), flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
    "db.execute('COMMIT')\n"
    "print(time.time(), flush=True)\n"
)


class FaultTrainer(Trainer):
    """Reports ``score = x`` each epoch after ``seconds`` of sleep, checkpoints every
    epoch (as an archtune checkpoint dict: ``version`` and ``epoch``), goes on from a
    checkpoint, and logs to ``<log_dir>/log`` each start (``start x FROM pid time``),
    each epoch trained (``epoch x N pid time``, before it is reported) and each epoch
    reported with its checkpoint (``saved x N pid time``: Ray has taken the report and
    let the trial go on), so a benchmark can tell what was trained, twice or from where.
    """

    name = "benchmark_fault"
    metrics = ("epoch", "score")

    def __init__(self, log_dir: str, epochs: int = 6, seconds: float = 0.5) -> None:
        self.log_dir, self.max_epochs, self.seconds = log_dir, epochs, seconds

    def check_space(self, space: SearchSpace) -> None:
        if "x" not in space:
            raise ValueError("FaultTrainer needs a parameter 'x'.")

    def run(
        self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession
    ) -> dict[str, float]:
        from trainers.checkpoint import CHECKPOINT_VERSION  # what a resumed trial checks

        state = session.restore()
        start = state["epoch"] if state else 0
        x = float(config["x"])
        self._log(f"start {x!r} {start}")
        metrics: dict[str, float] = {}
        for epoch in range(start + 1, self.max_epochs + 1):
            time.sleep(self.seconds)
            metrics = {"epoch": epoch, "score": x}
            self._log(f"epoch {x!r} {epoch}")
            session.report(metrics, {"version": CHECKPOINT_VERSION, "epoch": epoch})
            self._log(f"saved {x!r} {epoch}")
        return metrics

    def _log(self, line: str) -> None:
        with open(os.path.join(self.log_dir, "log"), "a", encoding="utf-8") as f:
            f.write(f"{line} {os.getpid()} {time.time():.3f}\n")

    def spec(self) -> dict[str, Any]:
        return {"log_dir": self.log_dir, "epochs": self.max_epochs, "seconds": self.seconds}


def _mid_study(db: Path) -> bool:
    complete, checkpointed = study_state(db)
    return complete >= 1 and checkpointed


# Processes ----------------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'benchmarks'}{os.pathsep}{ROOT}"}
    for name in ("RAY_ADDRESS", "ARCHTUNE_STORAGE"):
        env.pop(name, None)
    return env


def _archtune(args: Sequence[str], cwd: Path, tag: str) -> subprocess.Popen[bytes]:
    """``archtune ARGS`` in its own process, output to ``cwd/<tag>.out|err``."""
    out = open(cwd / f"{tag}.out", "wb")  # noqa: SIM115 - the child holds it
    err = open(cwd / f"{tag}.err", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "studies.cli", *args], cwd=cwd, env=_env(), stdout=out, stderr=err
    )


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process``, then every process it started (its local Ray)."""
    import psutil

    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    for child in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def _wait(
    what: str, ready: Callable[[], bool], driver: subprocess.Popen[bytes], limit: float
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if ready():
            return
        if driver.poll() is not None:
            raise RuntimeError(f"the driver exited ({driver.returncode}) before {what}")
        time.sleep(0.1)
    raise TimeoutError(f"no {what} within {limit:.0f} s")


def _first_start_after(log: Sequence[LogLine], t: float, x: float | None = None) -> float | None:
    times = [ln.t for ln in log if ln.kind == "start" and ln.t > t and (x is None or ln.x == x)]
    return min(times) if times else None


def _running_trial(directory: Path, epochs: int) -> tuple[float, int] | None:
    """``(x, pid)`` of a trial training now that has an epoch behind it, or None."""
    log = read_log(directory)
    last: dict[float, LogLine] = {}
    trained: dict[float, int] = {}
    for line in log:
        if line.kind == "start":
            last[line.x] = line
        elif line.kind == "saved":
            trained[line.x] = max(trained.get(line.x, 0), line.n)
    busy = [ln for x, ln in last.items() if 0 < trained.get(x, 0) < epochs - 1]
    return (busy[-1].x, busy[-1].pid) if busy else None


# One injection ------------------------------------------------------------------------
def inject(fault: str, repeat: int, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run the study once with ``fault`` injected; count what it cost."""
    directory = base / f"{fault}-{repeat}"
    directory.mkdir()
    db = directory / "faults.db"
    url = f"sqlite:///{db}"
    text = STUDY_FILE
    for key, value in {
        "@LOG@": repr(str(directory)),
        "@EPOCHS@": repr(args.epochs),
        "@SECONDS@": repr(args.seconds),
        "@SEED@": repr(repeat),
        "@TRIALS@": repr(args.trials),
        "@DB@": repr(url),
        "@RUNS@": repr(str(directory / "runs")),
    }.items():
        text = text.replace(key, value)
    (directory / "study.py").write_text(text, encoding="utf-8")
    started = time.time()
    driver = _archtune(["run", "study.py"], directory, "run")
    out: dict[str, Any] = {"fault": fault, "repeat": repeat}
    try:
        _wait(
            "a completed trial and a running one with a checkpoint",
            lambda: _mid_study(db),
            driver,
            args.timeout,
        )
        out["fault_after_s"] = round(time.time() - started, 2)
        out["started_at"] = round(started, 3)
        out.update(_FAULTS[fault](driver, directory, url, args))
    finally:
        if driver.poll() is None:
            _kill_tree(driver)
    out["wall_s"] = round(time.time() - started, 2)
    out["counts"] = count(db, read_log(directory), args.trials, args.epochs)
    busy = (directory / "run.err").read_text(errors="replace").count("database is busy")
    out["busy_retries_logged"] = busy
    return out


def _stop_driver(
    signum: int | None,
) -> Callable[[subprocess.Popen[bytes], Path, str, argparse.Namespace], dict[str, Any]]:
    """A driver fault: SIGKILL of its process tree (``signum`` None) or the signal
    ``signum``; then ``archtune resume``."""

    def fault(
        driver: subprocess.Popen[bytes], directory: Path, url: str, args: argparse.Namespace
    ) -> dict[str, Any]:
        t0 = time.time()
        if signum is None:
            _kill_tree(driver)
        else:
            driver.send_signal(signum)
            try:
                driver.wait(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(driver)
        stopped = time.time()
        err = (directory / "run.err").read_text(errors="replace")
        resume = _archtune(["resume", STUDY, "--storage", url], directory, "resume")
        try:
            resume.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(resume)
        ended = time.time()
        back = _first_start_after(read_log(directory), stopped)
        return {
            "fault_at": round(t0, 3),
            "driver_status": driver.returncode,
            "driver_said_resume": f"archtune resume {STUDY}" in err,
            "traceback_shown": "Traceback" in err,
            "stop_s": round(stopped - t0, 2),
            "resume_status": resume.returncode,
            "resume_s": round(ended - stopped, 2),
            "recovery_s": None if back is None else round(back - t0, 2),
        }

    return fault


def _kill_worker(
    driver: subprocess.Popen[bytes], directory: Path, url: str, args: argparse.Namespace
) -> dict[str, Any]:
    """SIGKILL the worker process of a trial mid-way; the run goes on by itself."""
    found: list[tuple[float, int]] = []

    def ready() -> bool:
        trial = _running_trial(directory, args.epochs)
        if trial is not None:
            found.append(trial)
        return trial is not None

    _wait("a trial mid-way", ready, driver, args.timeout)
    x, pid = found[-1]
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)
    try:
        driver.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(driver)
    back = _first_start_after(read_log(directory), t0, x)
    return {
        "fault_at": round(t0, 3),
        "killed_x": x,
        "driver_status": driver.returncode,
        "killed_pid": pid,
        "recovery_s": None if back is None else round(back - t0, 2),
    }


def _lock_database(
    driver: subprocess.Popen[bytes], directory: Path, url: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Hold an exclusive transaction on the study file from another process."""
    db = directory / "faults.db"
    holder = subprocess.run(
        [sys.executable, "-c", HOLD_LOCK, str(db), str(args.lock_seconds)],
        capture_output=True,
        text=True,
        timeout=args.lock_seconds + 120,
        check=True,
    )
    locked, released = (float(t) for t in holder.stdout.split())
    try:
        driver.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(driver)
    # New trials wait for the proposal, which waits for the writes queued before it.
    back = _first_start_after(read_log(directory), released)
    return {
        "fault_at": round(locked, 3),
        "driver_status": driver.returncode,
        "held_s": round(released - locked, 2),
        "recovery_s": None if back is None else round(back - released, 2),
    }


_FAULTS: dict[str, Callable[..., dict[str, Any]]] = {
    "driver-sigkill": _stop_driver(None),
    "sigint": _stop_driver(signal.SIGINT),
    "sigterm": _stop_driver(signal.SIGTERM),
    "worker-sigkill": _kill_worker,
    "db-lock": _lock_database,
}


# Summary ------------------------------------------------------------------------------
def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per fault: totals of the counts over its injections, and the recovery times."""
    out: dict[str, Any] = {}
    for fault in dict.fromkeys(r["fault"] for r in runs):
        mine = [r for r in runs if r["fault"] == fault]
        counts = [r["counts"] for r in mine]
        total = {
            k: sum(c[k] for c in counts)
            for k in counts[0]
            if isinstance(counts[0][k], int) and not isinstance(counts[0][k], bool)
        }
        recovery = [r["recovery_s"] for r in mine if r.get("recovery_s") is not None]
        out[fault] = {
            "injections": len(mine),
            **total,
            "all_curves_whole": all(c["whole_curves"] for c in counts),
            "integrity_ok": sum(c["integrity_check"] == "ok" for c in counts),
            "recovery_s": recovery,
            "recovery_median_s": round(statistics.median(recovery), 2) if recovery else None,
            "driver_status": [r.get("driver_status") for r in mine],
            "resume_status": [r.get("resume_status") for r in mine if "resume_status" in r],
            "busy_retries_logged": sum(r["busy_retries_logged"] for r in mine),
        }
    return out


def print_table(summary: Mapping[str, Mapping[str, Any]], trials: int) -> None:
    print(
        f"\n{'fault':15} {'n':>2} {'complete':>9} {'lost':>5} {'dup':>4} {'scratch':>8} "
        f"{'older':>6} {'twice (flight)':>14} {'went on':>8} {'restarts':>9} {'ok db':>6} "
        f"{'recovery s':>18}"
    )
    for fault, s in summary.items():
        rec = ", ".join(f"{v:.1f}" for v in s["recovery_s"])
        twice = f"{s['epochs_trained_twice']} ({s['in_flight_lost']})"
        print(
            f"{fault:15} {s['injections']:2d} {s['complete']:4d}/{s['injections'] * trials:<4d} "
            f"{s['lost']:5d} {s['configs_in_two_trials']:4d} {s['trained_from_scratch_again']:8d} "
            f"{s['went_on_from_older_checkpoint']:6d} {twice:>14} "
            f"{s['went_on_from_checkpoint']:8d} {s['restarts_recorded']:9d} "
            f"{s['integrity_ok']:6d} {rec:>18}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faults", nargs="+", choices=FAULTS, help="a subset (all by default)")
    p.add_argument("--repeats", type=int, default=3, help="injections per fault (3)")
    p.add_argument("--trials", type=int, default=6, help="trials of the study (6)")
    p.add_argument("--epochs", type=int, default=6, help="epochs per trial (6)")
    p.add_argument("--seconds", type=float, default=0.5, help="seconds per epoch (0.5)")
    p.add_argument(
        "--lock-seconds",
        type=float,
        default=35.0,
        help="how long db-lock holds the database (35: past the 30 s busy_timeout)",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="limit of each wait (300 s)")
    p.add_argument("--keep", help="keep every injection's files under this directory")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.trials < 2 or args.epochs < 3:
        p.error("--repeats must be >= 1, --trials >= 2 and --epochs >= 3.")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    import machine_info

    args = parse_args(argv)
    faults = machine_info.chosen_methods(args.faults, FAULTS)
    runs: list[dict[str, Any]] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="archtune-faults-") as tmp:
        base = Path(args.keep or tmp)
        base.mkdir(parents=True, exist_ok=True)
        for repeat in range(args.repeats):
            for fault in faults:
                run = inject(fault, repeat, base, args)
                runs.append(run)
                c = run["counts"]
                print(
                    f"{fault} #{repeat + 1}: {c['complete']}/{args.trials} complete, lost "
                    f"{c['lost']}, in two trials {c['configs_in_two_trials']}, from scratch "
                    f"again {c['trained_from_scratch_again']}, from an older checkpoint "
                    f"{c['went_on_from_older_checkpoint']}, epochs twice "
                    f"{c['epochs_trained_twice']} ({c['in_flight_lost']} in flight), went on "
                    f"{c['went_on_from_checkpoint']}, "
                    f"restarts {c['restarts_recorded']}, {c['integrity_check']}; recovery "
                    f"{run.get('recovery_s')} s; {run['wall_s']:.0f} s",
                    flush=True,
                )
    summary = summarize(runs)
    print_table(summary, args.trials)
    out = {
        **machine_info.header(
            "faults",
            argv,
            ["ray", "optuna", "sqlalchemy"],
            ".venv/bin/python benchmarks/faults.py",
        ),
        "settings": {**vars(args), "json": None, "keep": None},
        "sqlite_library": sqlite3.sqlite_version,
        "run_s": round(time.time() - started, 1),
        "summary": summary,
        "runs": runs,
    }
    if args.json:
        machine_info.write_json(args.json, out, indent=1)
    return out


if __name__ == "__main__":
    main()
