"""A study as one self-contained static HTML page, readable without a network.

The page holds a summary (objective, direction, trials per state, the best trial), the
three figures of :mod:`dashboard.figures` and a table of every trial. plotly.js is
embedded inline exactly once; every user-supplied string is HTML-escaped.

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

import plotly.graph_objects as go

from dashboard.curves import plot_learning_curves
from dashboard.figures import (
    STATE_COLORS,
    STATE_ORDER,
    HistoryInfo,
    format_value,
    get_history_info,
    plot_history,
    plot_parallel_coordinates,
)
from dashboard.pareto import GROUP_COLORS, last_reported, plot_pareto
from studies.records import StudyRecord, TrialRecord

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


def _e(value: object) -> str:
    """The escaped display form of any value."""
    return html.escape(format_value(value))


def _badge(state: str, text: str | None = None, color: str | None = None) -> str:
    color = color or STATE_COLORS.get(state, "#6b7280")
    label = text if text is not None else state.lower()
    return f'<span class="badge" style="background:{color}">{html.escape(label)}</span>'


def _params(params: dict[str, object]) -> str:
    if not params:
        return '<span class="muted">—</span>'
    return "".join(f"<code>{html.escape(k)}={_e(v)}</code>" for k, v in sorted(params.items()))


def _duration(seconds: float | None) -> str:
    """``"12.3 s"``, ``"4 m 05 s"`` or ``"1 h 02 m"``; ``"—"`` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} m"


def _states(counts: dict[str, int]) -> list[str]:
    return [s for s in STATE_ORDER if s in counts] + sorted(set(counts) - set(STATE_ORDER))


def _trials(n: int) -> str:
    return f"{n} trial{'s' * (n != 1)}"


def _objectives_html(record: StudyRecord) -> str:
    return "<br>".join(
        f'{html.escape(o)} <span class="muted">{html.escape(d)}</span>'
        for o, d in zip(record.objectives, record.directions, strict=True)
    )


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
    tail = "" if front else f'<p class="muted">{_NO_FRONT}</p>'
    return (
        f'<section class="card"><h2>Summary</h2><div class="stats">{cells}</div>{tail}</section>'
    )


def _summary_html(record: StudyRecord, info: HistoryInfo) -> str:
    counts = "".join(_badge(s, f"{s.lower()} {info.counts[s]}") for s in _states(info.counts))
    if record.multi:
        return _multi_summary_html(record, counts)
    best = info.best
    stats = [
        ("Objective", html.escape(record.objective)),
        ("Direction", html.escape(record.direction)),
        ("Trials", f"{len(record.trials)}<div>{counts}</div>"),
        ("Best value", _e(best.value) if best else "—"),
        ("Best trial", f"#{best.number}" if best else "—"),
    ]
    cells = "".join(
        f'<div class="stat"><div class="k">{k}</div><div class="v">{v}</div></div>'
        for k, v in stats
    )
    if best is None:
        tail = '<p class="muted">No complete trial with a finite value yet.</p>'
    else:
        tail = f"<p><b>Best params</b><br>{_params(best.trial.params)}</p>"
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
        + "".join(f"<td class='num'>{_e(v)}</td>" for v in t.values or [])
        + f"<td>{_params(t.params)}</td></tr>"
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


def _figures_html(record: StudyRecord) -> str:
    figures: list[tuple[str, go.Figure, str]] = [
        ("history", plot_history(record), ""),
        ("parallel", plot_parallel_coordinates(record), ""),
        ("curves", plot_learning_curves(record), ""),
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


def _value_cell(trial: TrialRecord) -> str:
    if trial.value is not None:
        return _e(trial.value)
    if trial.state == "PRUNED" and trial.intermediate:
        epoch = max(trial.intermediate)
        last = _e(trial.intermediate[epoch])
        return f'<span class="muted">{last} @ epoch {html.escape(str(epoch))}</span>'
    return '<span class="muted">—</span>'


def _objective_cell(trial: TrialRecord, index: int, name: str) -> str:
    """A trial's value of objective ``index`` (several objectives); a pruned trial's last
    reported value, muted."""
    if trial.values is not None and index < len(trial.values):
        return _e(trial.values[index])
    last = last_reported(trial, name) if trial.state == "PRUNED" else None
    if last is None:
        return '<span class="muted">—</span>'
    epoch, value = last
    where = "before training" if epoch is None else f"@ epoch {epoch}"
    return f'<span class="muted">{_e(value)} {html.escape(where)}</span>'


def _state_cell(record: StudyRecord, trial: TrialRecord) -> str:
    """The state's badge; with several objectives, an infeasible complete trial's too."""
    if record.multi and trial.state == "COMPLETE" and not trial.feasible:
        return _badge(trial.state) + _badge("", "infeasible", GROUP_COLORS["infeasible"])
    return _badge(trial.state)


def _error_cell(trial: TrialRecord) -> str:
    if not trial.error and not trial.traceback:
        return ""
    line = f'<div class="err">{html.escape(trial.error or "error")}</div>'
    if not trial.traceback:
        return line
    trace = html.escape(trial.traceback)
    return f"{line}<details><summary>traceback</summary><pre>{trace}</pre></details>"


def _value_cells(record: StudyRecord, trial: TrialRecord) -> str:
    if not record.multi:
        return f"<td class='num'>{_value_cell(trial)}</td>"
    return "".join(
        f"<td class='num'>{_objective_cell(trial, i, name)}</td>"
        for i, name in enumerate(record.objectives)
    )


def _table_html(record: StudyRecord, highlight: set[int]) -> str:
    """Every trial; the rows of ``highlight`` (the best trial, or the front) stand out."""
    rows = []
    for t in sorted(record.trials, key=lambda t: t.number):
        cls = ' class="best"' if t.number in highlight else ""
        rows.append(
            f"<tr{cls}><td class='num'>{t.number}</td><td>{_state_cell(record, t)}</td>"
            f"{_value_cells(record, t)}<td class='num'>{_duration(t.duration_s)}</td>"
            f"<td>{_params(t.params)}</td><td>{_error_cell(t)}</td></tr>"
        )
    config = "Config" if record.multi else "Params"  # "params" may be an objective
    head = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in ("#", "State", *record.objectives, "Duration", config, "Error")
    )
    span = len(record.objectives) + 5
    body = "".join(rows) or f'<tr><td colspan="{span}" class="muted">No trials yet.</td></tr>'
    return (
        f'<section class="card"><h2>Trials</h2><div class="scroll"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></section>"
    )


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
        f"{_summary_html(record, info)}{_figures_html(record)}{_table_html(record, highlight)}"
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
