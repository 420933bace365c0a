"""Per-trial overhead of archtune against bare Ray Tune, on trivial trials.

Each trial sleeps 0.2 s in total and reports 3 times (sleeping 0.2/3 s before each
report), so almost all of a run's wall time is scheduling and bookkeeping. The same
trials run, in one process and on one Ray instance, through

- **bare Ray Tune**: a function trainable in a ``tune.Tuner`` with the settings archtune
  uses (``reuse_actors=True``, ``max_concurrent_trials``, ``CheckpointConfig``, the
  same environment variables, 1 CPU per trial), and
- **archtune**: a :class:`~trainers.Trainer` run by ``Study.run`` with the ``random``
  controller and the ``fifo`` scheduler, recorded in an SQLite study database.

Both sides run ``--repeats`` times, alternating (bare, archtune, bare, ...) after an
untimed warm-up of each, because the machine is shared and noisy; medians are reported.
For each side: wall time per trial, the ideal (0.2 s / concurrency), the overhead above
the ideal, and the ratio archtune / bare of the wall time per trial (target <= 1.10).
Each run is also split into start-up (to the first trial's end), the steady state (mean
gap between trial ends) and teardown, and counts the actors that ran trials: with trials
shorter than an actor's start-up, Ray Tune may run a whole study on one actor (see
docs/benchmarks.md), so runs that used fewer actors than ``--concurrency`` are flagged
and a ratio over the others is printed too. The driver-side recording calls
(:class:`studies.recorder.Recorder` ``ask``, ``result``, ``complete``, ``fail``) are timed
by wrappers this script installs, to show how much of archtune's time is recording.
``--bare-torch`` makes the bare trials import torch, as archtune's trainable does.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/overhead.py --trials 50 --repeats 3 \\
        --json benchmarks/results/overhead.json
"""

from __future__ import annotations

import os

# archtune's runner sets these before building its Tuner; set them here, before Ray is
# imported, so that bare Ray Tune runs with identical settings.
for _key, _value in (
    ("RAY_AIR_NEW_OUTPUT", "0"),
    ("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1"),
    ("TUNE_PRINT_ALL_TRIAL_ERRORS", "0"),
    ("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0"),
):
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable, Mapping  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

import machine_info  # noqa: E402
import optuna  # noqa: E402
import ray  # noqa: E402
from ray import tune  # noqa: E402

import studies  # noqa: E402
from spaces import Float, SearchSpace  # noqa: E402
from studies.recorder import Recorder  # noqa: E402
from studies.study import Study  # noqa: E402
from trainers import Trainer, TrialSession  # noqa: E402

TRIAL_SECONDS = 0.2
REPORTS = 3
TARGET_RATIO = 1.10
RECORDER_METHODS = ("ask", "result", "complete", "fail")


# The trivial trial, twice: as a bare Ray Tune function and as an archtune trainer ------
def bare_trial(config: dict[str, Any]) -> None:
    """Sleep ``TRIAL_SECONDS`` in ``REPORTS`` steps, reporting after each."""
    for epoch in range(1, REPORTS + 1):
        time.sleep(TRIAL_SECONDS / REPORTS)
        tune.report({"epoch": epoch, "score": config["x"]})


def bare_torch_trial(config: dict[str, Any]) -> None:
    """:func:`bare_trial` in a worker that imports torch, as archtune's trainable does."""
    import torch

    torch.set_num_threads(1)
    bare_trial(config)


class SleepTrainer(Trainer):
    """The same trivial trial as :func:`bare_trial`, as an archtune trainer.

    Args:
        seconds: Sleep of a whole trial, split evenly between the reports.
        reports: Reports (epochs) per trial.
    """

    name = "benchmark_sleep"
    metrics = ("epoch", "score")

    def __init__(self, seconds: float = TRIAL_SECONDS, reports: int = REPORTS) -> None:
        self.seconds = seconds
        self.max_epochs = reports

    def check_space(self, space: SearchSpace) -> None:
        if set(space) != {"x"} or not isinstance(space["x"], Float):
            raise ValueError(f"SleepTrainer needs the space {{'x': Float(...)}}; got {space!r}.")

    def run(
        self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession
    ) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for epoch in range(1, self.max_epochs + 1):
            time.sleep(self.seconds / self.max_epochs)
            metrics = {"epoch": epoch, "score": float(config["x"])}
            session.report(metrics)
        return metrics

    def spec(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "reports": self.max_epochs}


# Timing the driver-side recording ------------------------------------------------------
class RecorderTimer:
    """Wraps :class:`Recorder` methods to sum their wall time (inclusive, and top level).

    ``complete`` calls ``result``, and ``fail`` may be called from ``complete``; the
    per-method totals include such nested calls, while ``total_s`` counts each outermost
    call once. ``completions`` holds ``(time, worker pid)`` for each ``complete`` call,
    taken when it returns: the point where a bare run's callbacks hear of a completion.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.total_s = 0.0
        self.completions: list[tuple[float, Any]] = []
        self._depth = 0
        self._originals: dict[str, Callable[..., Any]] = {}

    def install(self) -> None:
        for method in RECORDER_METHODS:
            original = getattr(Recorder, method)
            self._originals[method] = original
            setattr(Recorder, method, self._wrap(method, original))

    def uninstall(self) -> None:
        for method, original in self._originals.items():
            setattr(Recorder, method, original)
        self._originals.clear()

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.total_s = 0.0
        self.completions = []

    def _wrap(self, method: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                end = time.perf_counter()
                elapsed = end - start
                self._depth -= 1
                if method == "complete":
                    result = args[2] if len(args) > 2 else kwargs.get("result")
                    self.completions.append((end, (result or {}).get("pid")))
                self.seconds[method] += elapsed
                self.calls[method] += 1
                if self._depth == 0:
                    self.total_s += elapsed

        return timed


class BareCompletions(tune.Callback):
    """Ray Tune callback noting when, and in which worker, each trial of a bare run ends."""

    def __init__(self, completions: list[tuple[float, Any]]) -> None:
        self.completions = completions

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.completions.append((time.perf_counter(), (trial.last_result or {}).get("pid")))


def phases(start: float, completions: list[tuple[float, Any]], end: float) -> dict[str, Any]:
    """Split a run's wall time at its first and last trial completions.

    ``startup_s`` runs from the start to the first completion (Tuner set-up, the first
    actors starting, the first trial itself), ``steady_per_trial_s`` is the mean gap
    between completions after that (ideal: trial seconds / concurrency), and
    ``teardown_s`` runs from the last completion to the end. ``actors`` counts the
    worker processes that ran trials: fewer than the concurrency means Ray Tune handed
    the second trial to the first actor before the second actor had started, and then
    ran the whole study on fewer actors (see docs/benchmarks.md).
    """
    times = [t for t, _ in completions]
    actors = len({pid for _, pid in completions if pid is not None})
    if len(times) < 2:
        return {
            "startup_s": (times[0] if times else end) - start,
            "steady_per_trial_s": float("nan"),
            "teardown_s": end - times[-1] if times else 0.0,
            "actors": actors,
        }
    return {
        "startup_s": times[0] - start,
        "steady_per_trial_s": (times[-1] - times[0]) / (len(times) - 1),
        "teardown_s": end - times[-1],
        "actors": actors,
    }


# One timed run of each side ------------------------------------------------------------
def run_bare(
    trials: int, concurrency: int, run_dir: str, name: str, torch: bool = False
) -> tuple[float, dict]:
    """Wall seconds of building and fitting a bare Ray Tune ``Tuner``, and its phases."""
    completions: list[tuple[float, Any]] = []
    start = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(bare_torch_trial if torch else bare_trial, {"cpu": 1}),
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            num_samples=trials,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=run_dir,
            verbose=0,
            callbacks=[BareCompletions(completions)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    results = tuner.fit()
    end = time.perf_counter()
    if results.num_errors or len(results) != trials:
        raise RuntimeError(f"Bare Ray Tune run {name}: {results.num_errors} errors.")
    return end - start, phases(start, completions, end)


def run_archtune(
    trials: int, concurrency: int, run_dir: str, name: str, timer: RecorderTimer
) -> tuple[float, float, dict]:
    """Seconds of ``Study.create`` and of ``Study.run`` in a fresh database, and phases."""
    space = SearchSpace({"x": Float(0.0, 1.0)})
    start = time.perf_counter()
    study = Study.create(name, space, objective="score", storage=f"sqlite:///{run_dir}/{name}.db")
    created = time.perf_counter()
    study.run(
        SleepTrainer(),
        controller="random",
        num_trials=trials,
        max_concurrent=concurrency,
        scheduler="fifo",
        resources_per_trial={"cpu": 1},
        run_dir=run_dir,
        progress=False,
    )
    end = time.perf_counter()
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) != trials:
        errors = {t.user_attrs.get("archtune:error") for t in study.trials} - {None}
        raise RuntimeError(
            f"archtune run {name}: {len(done)}/{trials} trials COMPLETE; errors: {sorted(errors)}"
        )
    return created - start, end - created, phases(created, timer.completions, end)


# Environment ---------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """Hardware, versions, and the archtune code measured (that of ``studies`` on the path)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(studies.__file__)))
    return {"archtune_path": root, **machine_info.machine(root, ["ray", "optuna", "torch"])}


# Main ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="trials per run (default 50)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at a time (default 2)")
    parser.add_argument("--json", metavar="PATH", help="write the results here as JSON")
    parser.add_argument(
        "--bare-torch",
        action="store_true",
        help="bare trials import torch too, as a torch trainable on bare Ray Tune would",
    )
    args = parser.parse_args(argv)
    for label in ("trials", "repeats", "concurrency"):
        if getattr(args, label) < 1:
            parser.error(f"--{label} must be a positive integer.")
    return args


def summarise(
    runs: list[dict[str, Any]], trials: int, ideal: float, concurrency: int
) -> dict[str, Any]:
    """Medians over ``runs`` (each with ``wall_s`` and phases), in seconds.

    ``full_median_per_trial_s`` is the median over the runs that used ``concurrency``
    actors only (None if there were none): the runs that Ray Tune did not serialise.
    """
    per_trial = [r["wall_s"] / trials for r in runs]
    median = statistics.median(per_trial)
    full = [p for p, r in zip(per_trial, runs, strict=True) if r["actors"] >= concurrency]
    return {
        "runs": runs,
        "median_per_trial_s": median,
        "full_median_per_trial_s": statistics.median(full) if full else None,
        "median_overhead_s": median - ideal,
        **{
            f"median_{key}": statistics.median(r[key] for r in runs)
            for key in ("startup_s", "steady_per_trial_s", "teardown_s")
        },
    }


def measure(args: argparse.Namespace, timer: RecorderTimer, tmp: str) -> dict[str, list]:
    """The alternating timed runs, after an untimed warm-up of each side."""
    n, c = args.trials, args.concurrency
    run_bare(c, c, tmp, "warmup-bare", args.bare_torch)
    run_archtune(c, c, tmp, "warmup-archtune", timer)
    runs: dict[str, list] = {"bare": [], "archtune": []}
    for i in range(args.repeats):
        wall, split = run_bare(n, c, tmp, f"bare-{i}", args.bare_torch)
        runs["bare"].append({"wall_s": wall, **split})
        timer.reset()
        create, wall, split = run_archtune(n, c, tmp, f"archtune-{i}", timer)
        runs["archtune"].append(
            {
                "wall_s": wall,
                **split,
                "study_create_s": create,
                "recording_ms_per_trial": 1e3 * timer.total_s / n,
                "recording_ms_per_trial_by_method": {
                    m: 1e3 * sec / n for m, sec in timer.seconds.items()
                },
                "recording_calls": dict(timer.calls),
            }
        )
        for side in ("bare", "archtune"):
            r = runs[side][-1]
            print(
                f"repeat {i + 1}/{args.repeats} {side:8}: {r['wall_s']:6.2f} s for {n} trials, "
                f"startup {r['startup_s']:.2f} s, {1e3 * r['steady_per_trial_s']:.0f} ms per "
                f"trial after it, {r['actors']} actor(s)",
                flush=True,
            )
    return runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON; return the results."""
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ideal = TRIAL_SECONDS / args.concurrency
    timer = RecorderTimer()
    timer.install()
    ray.init(
        num_cpus=args.concurrency,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="archtune-overhead-") as tmp:
            runs = measure(args, timer, tmp)
    finally:
        timer.uninstall()
        ray.shutdown()
    bare = summarise(runs["bare"], args.trials, ideal, args.concurrency)
    arch = summarise(runs["archtune"], args.trials, ideal, args.concurrency)
    by_method: dict[str, list[float]] = defaultdict(list)
    for r in runs["archtune"]:
        for m, ms in r["recording_ms_per_trial_by_method"].items():
            by_method[m].append(ms)
    results = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": "python benchmarks/overhead.py " + " ".join(argv or sys.argv[1:]),
        "settings": {
            "trials": args.trials,
            "repeats": args.repeats,
            "concurrency": args.concurrency,
            "trial_seconds": TRIAL_SECONDS,
            "reports": REPORTS,
            "bare_torch": args.bare_torch,
        },
        "ideal_per_trial_s": ideal,
        "bare": bare,
        "archtune": arch,
        "ratio": arch["median_per_trial_s"] / bare["median_per_trial_s"],
        "ratio_full_concurrency": (
            arch["full_median_per_trial_s"] / bare["full_median_per_trial_s"]
            if arch["full_median_per_trial_s"] and bare["full_median_per_trial_s"]
            else None
        ),
        "median_recording_ms_per_trial": statistics.median(
            r["recording_ms_per_trial"] for r in runs["archtune"]
        ),
        "median_recording_ms_per_trial_by_method": {
            m: statistics.median(v) for m, v in by_method.items()
        },
        "machine": machine(),
    }
    print_table(results)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return results


def print_table(results: Mapping[str, Any]) -> None:
    """The medians as a small text table."""
    s = results["settings"]
    ideal_ms = 1e3 * results["ideal_per_trial_s"]
    print(
        f"\n{s['trials']} trials x {s['repeats']} repeats, {s['concurrency']} at a time, "
        f"{s['trial_seconds']} s and {s['reports']} reports per trial; medians"
    )
    header = ("wall/trial", "ideal", "overhead", "startup", "steady/trial", "teardown")
    print(f"{'':10}" + "".join(f"{h:>14}" for h in header))
    for side in ("bare", "archtune"):
        r = results[side]
        cells = (
            f"{1e3 * r['median_per_trial_s']:.1f} ms",
            f"{ideal_ms:.1f} ms",
            f"{1e3 * r['median_overhead_s']:.1f} ms",
            f"{r['median_startup_s']:.2f} s",
            f"{1e3 * r['median_steady_per_trial_s']:.1f} ms",
            f"{r['median_teardown_s']:.2f} s",
        )
        print(f"{side:10}" + "".join(f"{c:>14}" for c in cells))
    for side in ("bare", "archtune"):
        short = sum(r["actors"] < s["concurrency"] for r in results[side]["runs"])
        if short:
            print(
                f"{side}: {short}/{s['repeats']} runs had fewer than {s['concurrency']} "
                "actors (Ray Tune reused the first actor before the next had started)"
            )
    verdict = "within" if results["ratio"] <= TARGET_RATIO else "ABOVE"
    print(
        f"ratio archtune / bare: {results['ratio']:.3f}x "
        f"({verdict} the {TARGET_RATIO:.2f}x target)"
    )
    if results["ratio_full_concurrency"] is not None:
        print(
            f"ratio over the runs at full concurrency only: "
            f"{results['ratio_full_concurrency']:.3f}x"
        )
    print(f"driver-side recording: {results['median_recording_ms_per_trial']:.1f} ms per trial")
    for m, ms in results["median_recording_ms_per_trial_by_method"].items():
        print(f"  Recorder.{m:9}{ms:7.2f} ms per trial (inclusive)")


if __name__ == "__main__":
    main()
