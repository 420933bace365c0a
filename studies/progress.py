"""A one-line progress bar for a running study: trials done / total and the study's best.

Shown instead of Ray Tune's status tables. Failed trials print one line each with
their reason, so a failure is visible without scrolling through tracebacks. When
standard error is not a terminal (a CI log, ``| tee``), a bar would print nothing until
the end: each finished trial prints one line instead.

Example:
    >>> from studies.objectives import Objectives
    >>> objectives = Objectives.parse("val_acc", "maximize")
    >>> bar = TrialProgress("demo", total=3, objectives=objectives, enabled=False)
    >>> bar.best is None
    True
"""

from __future__ import annotations

import math
import sys
from types import TracebackType

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from studies.objectives import Objectives
from studies.records import ATTR_ERROR


class TrialProgress:
    """Counts finished trials and tracks the best objective value of this run."""

    def __init__(
        self, study: str, total: int, objectives: Objectives, enabled: bool = True
    ) -> None:
        self.study, self.total, self.objectives = study, total, objectives
        self.best: float | None = None
        self.front: list[list[float]] = []  # values of the Pareto front (several objectives)
        self.counts = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL")}
        self.enabled = enabled
        self.done = 0
        self._console = Console(file=sys.stderr)
        self.lines = enabled and not self._console.is_terminal  # a line per trial
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("trials"),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
            console=self._console,
            disable=not enabled or self.lines,
        )
        self._task = self._progress.add_task(study, total=total, best=self._best_text())

    def _best_text(self) -> str:
        extra = "".join(
            f"  {k.lower()} {v}" for k, v in self.counts.items() if v and k != "COMPLETE"
        )
        if self.objectives.multi:
            return f"front: {len(self.front)} trials{extra}"
        name = self.objectives[0].name
        if self.best is None:
            return f"best {name}: -"
        return f"best {name}: {self.best:.4f}{extra}"

    def start_from(self, best: float | None, front: list[list[float]]) -> None:
        """Start from the study's best value (or front) so far: the bar shows the study's."""
        self.best = best
        self.front = [list(p) for p in front]

    def add(self, values: list[float]) -> None:
        """Take a completed trial's values into the best value (or the front)."""
        if self.objectives.multi:
            if all(math.isfinite(v) for v in values):
                points = [*self.front, list(values)]
                mask = self.objectives.pareto_mask(points)
                self.front = [p for p, on in zip(points, mask, strict=True) if on]
        elif self.objectives[0].better(values[0], self.best):
            self.best = values[0]

    def trial_finished(self, trial: optuna.trial.FrozenTrial) -> None:
        """Count a trial that has just been told, and print why if it failed."""
        self.counts[trial.state.name] = self.counts.get(trial.state.name, 0) + 1
        self.done += 1
        values = trial.values if trial.state == TrialState.COMPLETE and trial.values else None
        if values is not None:
            self.add(list(values))
        if trial.state == TrialState.FAIL and self.enabled:
            reason = trial.user_attrs.get(ATTR_ERROR, "unknown error")
            self._progress.console.print(f"[red]trial {trial.number} failed:[/red] {reason}")
        elif self.lines:
            shown = "  ".join(
                f"{o.name} {v:.4g}" for o, v in zip(self.objectives, values or [], strict=False)
            )
            self._console.print(
                f"{self.study}: trial {trial.number} {trial.state.name.lower()}"
                f"{'  ' + shown if shown else ''}  [{self.done}/{self.total}]  "
                f"{self._best_text()}",
                markup=False,
                highlight=False,
                soft_wrap=True,  # one line in a log, whatever its length
            )
        self._progress.update(self._task, advance=1, best=self._best_text())

    def note(self, text: str) -> None:
        """Print one line above the bar (when shown)."""
        if self.enabled:
            self._console.print(text, markup=False, highlight=False)

    def summary(self, rejected: int, stopped: str | None, repeated: int = 0) -> None:
        """Say how many proposals were rejected or repeats, and why the search stopped early."""
        if not self.enabled:
            return
        if repeated:
            self._console.print(
                f"{repeated} proposals repeated completed trials and took their results "
                "instead of training again."
            )
        if rejected:
            self._console.print(
                f"{rejected} proposals broke the constraints and were not trained."
            )
        if stopped:
            self._console.print(f"[yellow]Search stopped early:[/yellow] {stopped}")

    def __enter__(self) -> TrialProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
