"""Wall time of a stopped configuration proposed again, with and without ``resume_stopped``.

Under ASHA a controller may propose a configuration that ASHA stopped. By default
``Study.run`` trains it again from scratch; with ``resume_stopped=True`` the new trial
first reports the stopped trial's last epoch again, so ASHA judges it at that rung before
any training, and if ASHA stops it again it trained nothing. The replay on the digits
table (``benchmarks/nasbench``) counts such a trial as free in epochs; this script
measures what it costs in wall time on a real local Ray Tune, against training the
repeat's first epoch again.

Each run is a fresh SQLite study under ASHA (grace 1, reduction factor 3) with one trial
at a time, proposing in turn a new configuration (``x`` from 0.5 up: it passes every rung
and trains ``--epochs`` epochs of ``--epoch-seconds``) and the configuration ``x = 0.1``
(stopped at epoch 1 the first time, and every time after). The gap between a trial's end
and the next one's is the wall time that trial added; the gaps of the repeats of
``x = 0.1`` are the figure (a repeat after a new trial: a run of repeats in a row, as
in the replays, is not timed apart). Both sides run ``--repeats`` times, alternating, after an
untimed warm-up of each, in one process on one Ray instance; medians are reported.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/resume_cost.py --json benchmarks/results/resume_cost.json
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import machine_info
import optuna
import ray
from optuna.trial import TrialState
from overhead import RecorderTimer  # also sets the environment archtune's runner uses

from spaces import Float, SearchSpace
from studies.records import ATTR_RESUMED_FROM
from studies.study import Study
from trainers import Trainer, TrialSession

LOW = 0.1  # the configuration ASHA stops, proposed again and again
MAX_PAIRS = 40  # new configurations are 0.5, 0.51, ... 0.89


class EpochSleepTrainer(Trainer):
    """Sleeps ``epoch_seconds`` per epoch, reports ``score = x`` and checkpoints each epoch.

    Restores its epoch count from a checkpoint, as a real trainer restores its weights, so
    ``resume_stopped`` can go on from a stopped trial.
    """

    name = "benchmark_epoch_sleep"
    metrics = ("epoch", "score")

    def __init__(self, epochs: int = 3, epoch_seconds: float = 0.3) -> None:
        self.max_epochs = epochs
        self.epoch_seconds = epoch_seconds

    def check_space(self, space: SearchSpace) -> None:
        if set(space) != {"x"}:
            raise ValueError(
                f"EpochSleepTrainer needs the space {{'x': Float(...)}}; got {space!r}."
            )

    def run(
        self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession
    ) -> dict[str, float]:
        state = session.restore()
        metrics: dict[str, float] = {}
        for epoch in range((state or {}).get("epoch", 0) + 1, self.max_epochs + 1):
            time.sleep(self.epoch_seconds)
            metrics = {"epoch": epoch, "score": float(config["x"])}
            session.report(metrics, {"epoch": epoch})
        return metrics

    def spec(self) -> dict[str, Any]:
        return {"epochs": self.max_epochs, "epoch_seconds": self.epoch_seconds}


def proposals(pairs: int) -> list[float]:
    """``x`` in run order: a new configuration, better than all before, then ``LOW``.

    Example:
        >>> proposals(2)
        [0.5, 0.1, 0.51, 0.1]
    """
    return [x for i in range(pairs) for x in (round(0.5 + i / 100, 4), LOW)]


def one_run(
    resume: bool, pairs: int, trainer: Trainer, tmp: str, name: str, timer: RecorderTimer
) -> dict[str, Any]:
    """One study; the wall seconds each repeat of ``LOW`` added (its first try excluded)."""
    study = Study.create(
        name,
        SearchSpace({"x": Float(0.0, 1.0)}),
        objective="score",
        storage=f"sqlite:///{tmp}/{name}.db",
    )
    xs = proposals(pairs)
    for x in xs:
        study.optuna.enqueue_trial({"x": x})
    timer.reset()
    start = time.perf_counter()
    study.run(
        trainer,
        controller="random",
        num_trials=len(xs),
        max_concurrent=1,
        scheduler="asha",
        resume_stopped=resume,
        resources_per_trial={"cpu": 1},
        run_dir=tmp,
        progress=False,
    )
    wall = time.perf_counter() - start
    trials = sorted(study.optuna.trials, key=lambda t: t.number)
    states = [(round(t.params["x"], 4), t.state) for t in trials]
    expected = [(x, TrialState.PRUNED if x == LOW else TrialState.COMPLETE) for x in xs]
    if states != expected or len(timer.completions) != len(xs):
        raise RuntimeError(f"Run {name} did not go as planned: {states}")
    # One trial at a time, so trials end in the order they were enqueued: trial 2k+1 is a
    # repeat of LOW, and its gap runs from the end of trial 2k (a new configuration).
    ends = [t for t, _ in timer.completions]
    gaps = [ends[i] - ends[i - 1] for i in range(3, len(xs), 2)]
    resumed = sum(ATTR_RESUMED_FROM in t.user_attrs for t in trials)
    return {"wall_s": wall, "repeat_gaps_s": gaps, "resumed": resumed}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=15, help="new + repeat pairs per run (15)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side (3)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of a full trial (3)")
    p.add_argument(
        "--epoch-seconds",
        type=float,
        default=0.33,
        help="sleep per epoch (0.33: the digits table)",
    )
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if not 2 <= args.pairs <= MAX_PAIRS or args.repeats < 1 or args.epochs < 2:
        p.error(f"Need 2 <= --pairs <= {MAX_PAIRS}, --repeats >= 1 and --epochs >= 2.")
    if args.epoch_seconds < 0:
        p.error("--epoch-seconds must be >= 0.")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trainer = EpochSleepTrainer(args.epochs, args.epoch_seconds)
    timer = RecorderTimer()
    sides = {"scratch": False, "resume": True}
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    try:
        timer.install()
        ray.init(
            num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )
        with tempfile.TemporaryDirectory(prefix="archtune-resume-cost-") as tmp:
            for side, resume in sides.items():
                one_run(resume, 2, trainer, tmp, f"warmup-{side}", timer)
            for i in range(args.repeats):
                for side, resume in sides.items():
                    r = one_run(resume, args.pairs, trainer, tmp, f"{side}-{i}", timer)
                    runs[side].append(r)
                    print(
                        f"repeat {i + 1}/{args.repeats} {side:7}: median repeat "
                        f"{1e3 * statistics.median(r['repeat_gaps_s']):.0f} ms, "
                        f"{r['resumed']} resumed, {r['wall_s']:.1f} s in all",
                        flush=True,
                    )
    finally:
        timer.uninstall()
        ray.shutdown()
    median = {
        side: statistics.median(g for r in rs for g in r["repeat_gaps_s"])
        for side, rs in runs.items()
    }
    out = {
        **machine_info.header(
            "resume_cost",
            argv,
            ["ray", "optuna", "torch"],
            ".venv/bin/python benchmarks/resume_cost.py",
        ),
        "settings": {**vars(args), "json": None},
        "runs": runs,
        "median_repeat_s": median,
        "saved_s": median["scratch"] - median["resume"],
    }
    print(
        f"\nA repeat of a stopped configuration, median wall time it adds ({args.epoch_seconds} s "
        f"epochs, one trial at a time): trained again {1e3 * median['scratch']:.0f} ms, "
        f"judged again with resume_stopped {1e3 * median['resume']:.0f} ms."
    )
    if args.json:
        machine_info.write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
