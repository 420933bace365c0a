"""A study as one self-contained static HTML page, readable without a network.

The page holds a summary (objective, direction, trials per state, the best trial), the
figures (optimization history and parallel coordinates of :mod:`dashboard.figures`,
parameter importance of :mod:`dashboard.importance`, learning curves of
:mod:`dashboard.curves`, the timeline of :mod:`dashboard.timeline`) and the table of every
trial of :mod:`dashboard.report_table` (with the network's costs when trials have them).
Repeats (answered from the record) and proposals rejected for their constraints are
counted apart from complete and failed trials, in the summary and in the table.
plotly.js is embedded inline exactly once; every user-supplied string is HTML-escaped.

The importance is computed with ``evaluator="auto"`` (fANOVA up to
:data:`dashboard.importance.FANOVA_MAX_TRIALS` usable trials, PED-ANOVA beyond): fANOVA
takes about 35 s on 1,000 trials, and a report should not. The timeline's running trials
end at the latest time the record holds, so that the same record gives the same page.

A study with several objectives has no single best trial: its summary counts the
trials on the Pareto front, the page opens with the Pareto figure of
:mod:`dashboard.pareto` and a table of the front under it, the history and parallel
coordinates show the first objective (and say so), and the trials table has a column
per objective with the front's rows highlighted.

Example:
    >>> from studies.records import StudyRecord, TrialRecord
    >>> record = StudyRecord("demo", "maximize", "val_acc", None, [
    ...     TrialRecord(0, "COMPLETE", {"train/lr": 0.01}, 0.8, {1: 0.7, 2: 0.8}),
    ... ])
    >>> path = write_report(record, "demo.html")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
import pathlib
import tempfile
from datetime import datetime

import plotly.graph_objects as go

from dashboard.curves import plot_learning_curves
from dashboard.figures import plot_parallel_coordinates
from dashboard.history import HistoryInfo, get_history_info, plot_history
from dashboard.importance import plot_importance
from dashboard.pareto import plot_pareto
from dashboard.report_table import (
    counts_html,
    escaped,
    is_rejected,
    is_repeat,
    params_html,
    table_html,
)
from dashboard.timeline import plot_timeline
from studies.records import StudyRecord

_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_NO_FRONT = "No complete, feasible trial with finite values yet."

_CSS = """
:root { --fg: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.5 Inter, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 32px 24px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 12px; }
.sub { color: var(--muted); margin: 0 0 24px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 12px;
  padding: 20px; margin-bottom: 20px; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr));
  gap: 16px; }
.stat .k { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .04em; }
.stat .v { font-size: 20px; font-weight: 600; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px;
  font-weight: 600; color: #fff; margin: 2px 4px 2px 0; white-space: nowrap; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase;
  position: sticky; top: 0; background: #fff; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { background: #eff6ff; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: #f3f4f6; border-radius: 4px; padding: 1px 5px; margin: 1px 2px 1px 0;
  display: inline-block; }
.err { color: #b91c1c; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
details pre { white-space: pre-wrap; font-size: 12px; max-height: 320px; overflow: auto; }
.scroll { overflow-x: auto; }
"""


def _trials(n: int) -> str:
    return f"{n} trial{'s' * (n != 1)}"


def _objectives_html(record: StudyRecord) -> str:
    return "<br>".join(
        f'{html.escape(o)} <span class="muted">{html.escape(d)}</span>'
        for o, d in zip(record.objectives, record.directions, strict=True)
    )


def _untrained_note(record: StudyRecord) -> str:
    """Says how many trials were not trained: repeats and rejected proposals."""
    repeats = sum(map(is_repeat, record.trials))
    rejected = sum(map(is_rejected, record.trials))
    notes = []
    if repeats:
        notes.append(f"{_trials(repeats)} repeated an earlier configuration (its result reused)")
    if rejected:
        notes.append(f"{rejected} proposal{'s' * (rejected != 1)} broke the constraints")
    if not notes:
        return ""
    return f'<p class="muted">Not trained: {"; ".join(notes)}.</p>'


def _multi_summary_html(record: StudyRecord, counts: str) -> str:
    front = record.front
    stats = [
        ("Objectives", _objectives_html(record)),
        ("Trials", f"{len(record.trials)}<div>{counts}</div>"),
        ("Pareto front", _trials(len(front))),
    ]
    cells = "".join(
        f'<div class="stat"><div class="k">{k}</div><div class="v">{v}</div></div>'
        for k, v in stats
    )
    tail = ("" if front else f'<p class="muted">{_NO_FRONT}</p>') + _untrained_note(record)
    return (
        f'<section class="card"><h2>Summary</h2><div class="stats">{cells}</div>{tail}</section>'
    )


def _summary_html(record: StudyRecord, info: HistoryInfo) -> str:
    counts = counts_html(record)
    if record.multi:
        return _multi_summary_html(record, counts)
    best = info.best
    stats = [
        ("Objective", html.escape(record.objective)),
        ("Direction", html.escape(record.direction)),
        ("Trials", f"{len(record.trials)}<div>{counts}</div>"),
        ("Best value", escaped(best.value) if best else "—"),
        ("Best trial", f"#{best.number}" if best else "—"),
    ]
    cells = "".join(
        f'<div class="stat"><div class="k">{k}</div><div class="v">{v}</div></div>'
        for k, v in stats
    )
    if best is None:
        tail = '<p class="muted">No complete trial with a finite value yet.</p>'
    else:
        tail = f"<p><b>Best params</b><br>{params_html(best.trial.params)}</p>"
    tail += _untrained_note(record)
    return (
        f'<section class="card"><h2>Summary</h2><div class="stats">{cells}</div>{tail}</section>'
    )


def _front_html(record: StudyRecord) -> str:
    """The trials of the Pareto front, best first in the first objective."""
    sign = -1.0 if record.direction == "maximize" else 1.0
    front = sorted(record.front, key=lambda t: (sign * (t.values or [0.0])[0], t.number))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("#", *record.objectives, "Config"))
    rows = "".join(
        f"<tr><td class='num'>{t.number}</td>"
        + "".join(f"<td class='num'>{escaped(v)}</td>" for v in t.values or [])
        + f"<td>{params_html(t.params)}</td></tr>"
        for t in front
    )
    body = (
        rows
        or f'<tr><td colspan="{len(record.objectives) + 2}" class="muted">{_NO_FRONT}</td></tr>'
    )
    return (
        f'<h2 style="margin-top:16px">Pareto front · {_trials(len(front))}</h2>'
        f'<div class="scroll"><table class="front"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _last_event(record: StudyRecord) -> datetime | None:
    """The latest start or end the record holds: where running trials' bars end, so that
    the same record always gives the same page (None: no time is recorded)."""
    times = [x for t in record.trials for x in (t.started, t.completed) if x is not None]
    return max(times, default=None)


def _figures_html(record: StudyRecord) -> str:
    figures: list[tuple[str, go.Figure, str]] = [
        ("history", plot_history(record), ""),
        ("parallel", plot_parallel_coordinates(record), ""),
        ("importance", plot_importance(record, "auto"), ""),
        ("curves", plot_learning_curves(record), ""),
        ("timeline", plot_timeline(record, now=_last_event(record)), ""),
    ]
    if record.multi:
        figures.insert(0, ("pareto", plot_pareto(record), _front_html(record)))
    parts = []
    for i, (key, fig, below) in enumerate(figures):
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=i == 0,  # inline, once: the page must work offline
            config=_PLOTLY_CONFIG,
            div_id=f"figure-{key}",
        )
        parts.append(f'<section class="card">{div}{below}</section>')
    return "".join(parts)


def render_report(record: StudyRecord) -> str:
    """The report of ``record`` as a complete, self-contained HTML document.

    Example:
        >>> from studies.records import StudyRecord
        >>> "<h1>empty</h1>" in render_report(StudyRecord("empty", "minimize", "loss", None, []))
        True
    """
    info = get_history_info(record)
    name = html.escape(record.name)
    if record.multi:
        highlight = {t.number for t in record.front}
        goals = [f"{o} ({d})" for o, d in zip(record.objectives, record.directions, strict=True)]
        subtitle = f"{html.escape(' · '.join(goals))} · {len(record.trials)} trials"
    else:
        highlight = {info.best.number} if info.best else set()
        subtitle = (
            f"{html.escape(record.objective)} · {html.escape(record.direction)} · "
            f"{len(record.trials)} trials"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{name} · archtune</title><style>{_CSS}</style></head>"
        f'<body><main><h1>{name}</h1><p class="sub">{subtitle}</p>'
        f"{_summary_html(record, info)}{_figures_html(record)}{table_html(record, highlight)}"
        "</main></body></html>\n"
    )


def write_report(record: StudyRecord, path: str | os.PathLike[str]) -> pathlib.Path:
    """Write the report of ``record`` to ``path`` atomically and return the path.

    The page goes to a temporary file in the same directory, which then replaces
    ``path``: a reader never sees half a report, and a failure leaves no temp file.
    Missing parent directories are created.

    Example:
        >>> write_report(record, "reports/cifar-nas.html")  # doctest: +SKIP
        PosixPath('reports/cifar-nas.html')
    """
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(record)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        os.replace(tmp, target)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return target
