"""The trials table of the static report, and the badges its summary shares.

One row per trial: number, state, the objective (one column per objective with several),
the network's costs when any trial has them (parameters, FLOPs, latency: the last
reported value, else the statistic computed before training, muted), duration, config
and error. Two kinds of trial are told apart from the rest, in the table and in the
summary's counts:

- a **repeat** is a COMPLETE trial answered from the record instead of trained (its
  config repeats an earlier trial's, whose result it reuses); its row says which;
- a **rejected** trial is a proposal that broke the space's constraints and was recorded
  FAIL without training (its error is ``"rejected: <why>"``); it is no failure of the
  trainer, and its reason is not written in red.

Every user-supplied string (params, errors, tracebacks) is HTML-escaped.

Example:
    >>> from studies.records import StudyRecord, TrialRecord
    >>> record = StudyRecord("demo", "maximize", "val_acc", None, [
    ...     TrialRecord(0, "COMPLETE", {"w": 8}, 0.8),
    ...     TrialRecord(1, "COMPLETE", {"w": 8}, 0.8, repeat_of=0),
    ...     TrialRecord(2, "FAIL", {"w": 64}, error="rejected: params = 2e6 > max 1e6"),
    ... ])
    >>> kind_counts(record)
    {'complete': 1, 'repeat': 1, 'rejected': 1}
    >>> "repeat of #0" in table_html(record, highlight={0})
    True
"""

from __future__ import annotations

import html

from dashboard.figures import STATE_COLORS, STATE_ORDER, format_value, is_finite
from dashboard.pareto import GROUP_COLORS, _short, last_reported
from dashboard.timeline import format_duration
from studies.records import StudyRecord, TrialRecord

REJECTED_PREFIX = "rejected: "  # how studies.records writes a rejection as the error
KIND_COLORS = {"repeat": "#0891b2", "rejected": "#64748b"}
COSTS = (("params", "Params"), ("flops", "FLOPs"), ("latency_ms", "Latency (ms)"))
_MUTED_DASH = '<span class="muted">—</span>'


def is_rejected(trial: TrialRecord) -> bool:
    """Whether ``trial`` is a proposal rejected for its constraints (never trained)."""
    return trial.state == "FAIL" and (trial.error or "").startswith(REJECTED_PREFIX)


def is_repeat(trial: TrialRecord) -> bool:
    """Whether ``trial`` was answered from the record (it repeats an earlier trial)."""
    return trial.repeat_of is not None and trial.state == "COMPLETE"


def kind(trial: TrialRecord) -> str:
    """``"repeat"``, ``"rejected"``, else the state in lower case."""
    if is_repeat(trial):
        return "repeat"
    return "rejected" if is_rejected(trial) else trial.state.lower()


def kind_counts(record: StudyRecord) -> dict[str, int]:
    """Trials per :func:`kind`: the states in their usual order, each followed by the
    kind split off it (complete, repeat, pruned, fail, rejected, ...)."""
    counts: dict[str, int] = {}
    for t in record.trials:
        counts[kind(t)] = counts.get(kind(t), 0) + 1
    split = {"complete": ["repeat"], "fail": ["rejected"]}
    order = [k for s in STATE_ORDER for k in (s.lower(), *split.get(s.lower(), []))]
    known = [k for k in order if k in counts]
    return {k: counts[k] for k in known + sorted(set(counts) - set(known))}


def escaped(value: object) -> str:
    """The escaped display form of any value."""
    return html.escape(format_value(value))


def badge(state: str, text: str | None = None, color: str | None = None) -> str:
    """A coloured pill: ``state``'s colour and name unless ``text`` / ``color`` say."""
    color = color or KIND_COLORS.get(state) or STATE_COLORS.get(state.upper(), "#6b7280")
    label = text if text is not None else state.lower()
    return f'<span class="badge" style="background:{color}">{html.escape(label)}</span>'


def counts_html(record: StudyRecord) -> str:
    """One badge per :func:`kind_counts` entry, e.g. ``complete 12``, ``rejected 3``."""
    return "".join(badge(k, f"{k} {n}") for k, n in kind_counts(record).items())


def params_html(params: dict[str, object]) -> str:
    """``<code>name=value</code>`` per param, by name."""
    if not params:
        return _MUTED_DASH
    return "".join(
        f"<code>{html.escape(k)}={escaped(v)}</code>" for k, v in sorted(params.items())
    )


def _value_cell(trial: TrialRecord) -> str:
    if trial.value is not None:
        return escaped(trial.value)
    if trial.state == "PRUNED" and trial.intermediate:
        epoch = max(trial.intermediate)
        last = escaped(trial.intermediate[epoch])
        return f'<span class="muted">{last} @ epoch {html.escape(str(epoch))}</span>'
    return _MUTED_DASH


def _objective_cell(trial: TrialRecord, index: int, name: str) -> str:
    """A trial's value of objective ``index`` (several objectives); a pruned trial's last
    reported value, muted."""
    if trial.values is not None and index < len(trial.values):
        return escaped(trial.values[index])
    last = last_reported(trial, name) if trial.state == "PRUNED" else None
    if last is None:
        return _MUTED_DASH
    epoch, value = last
    where = "before training" if epoch is None else f"@ epoch {epoch}"
    return f'<span class="muted">{escaped(value)} {html.escape(where)}</span>'


def _state_cell(record: StudyRecord, trial: TrialRecord) -> str:
    """The state's badge, a rejection's instead of a failure's; a repeat's and, with
    several objectives, an infeasible complete trial's beside it."""
    if is_rejected(trial):
        return badge("rejected")
    cell = badge(trial.state)
    if is_repeat(trial):
        cell += badge("repeat", f"repeat of #{trial.repeat_of}")
    if record.multi and trial.state == "COMPLETE" and not trial.feasible:
        cell += badge("", "infeasible", GROUP_COLORS["infeasible"])
    return cell


def _error_cell(trial: TrialRecord) -> str:
    if is_rejected(trial):  # a reason, not a failure
        why = (trial.error or "")[len(REJECTED_PREFIX) :]
        return f'<div class="muted">constraints: {html.escape(why)}</div>'
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


def cost_columns(record: StudyRecord) -> list[tuple[str, str]]:
    """``(metric, header)`` of each cost some trial has (reported or computed before
    training) that is not an objective (an objective has its own column)."""
    return [
        (name, header)
        for name, header in COSTS
        if name not in record.objectives
        and any(last_reported(t, name) is not None for t in record.trials)
    ]


def _cost_cell(trial: TrialRecord, name: str) -> str:
    last = last_reported(trial, name)
    if last is None:
        return _MUTED_DASH
    epoch, value = last
    shown = html.escape(format_value(value) if name == "latency_ms" else _short(value))
    if epoch is None:
        return f'<span class="muted" title="computed before training">{shown}</span>'
    return shown


TABLE_LIMIT = 1000
"""A report lists at most this many trials (a 10,000-row table made a 40 MB page)."""


def _listed(record: StudyRecord, highlight: set[int]) -> tuple[list[TrialRecord], str]:
    """The trials the table lists, in number order, and a note when not all of them: the
    highlighted ones, then the best complete ones by the first objective."""
    if len(record.trials) <= TABLE_LIMIT:
        return sorted(record.trials, key=lambda t: t.number), ""
    sign = -1.0 if record.direction == "maximize" else 1.0
    done = [t for t in record.trials if t.state == "COMPLETE" and is_finite(t.value)]
    ranked = sorted(done, key=lambda t: (sign * float(t.value or 0.0), t.number))
    keep = {t.number for t in record.trials if t.number in highlight}
    for t in ranked:
        if len(keep) >= TABLE_LIMIT:
            break
        keep.add(t.number)
    listed = [t for t in record.trials if t.number in keep]
    note = (
        f"<p class='muted'>{len(listed):,} of {len(record.trials):,} trials: the best by "
        f"{html.escape(record.objective)}. <code>archtune show NAME --all</code> or "
        "<code>archtune dashboard</code> lists every one.</p>"
    )
    return sorted(listed, key=lambda t: t.number), note


def table_html(record: StudyRecord, highlight: set[int]) -> str:
    """The card of the trials (at most :data:`TABLE_LIMIT`); the rows of ``highlight``
    (the best trial, or the front) stand out."""
    costs = cost_columns(record)
    rows = []
    listed, note = _listed(record, highlight)
    for t in listed:
        cls = ' class="best"' if t.number in highlight else ""
        cost = "".join(f"<td class='num'>{_cost_cell(t, name)}</td>" for name, _ in costs)
        rows.append(
            f"<tr{cls}><td class='num'>{t.number}</td><td>{_state_cell(record, t)}</td>"
            f"{_value_cells(record, t)}{cost}"
            f"<td class='num'>{format_duration(t.duration_s)}</td>"
            f"<td>{params_html(t.params)}</td><td>{_error_cell(t)}</td></tr>"
        )
    named_params = record.multi or any(name == "params" for name, _ in costs)
    config = "Config" if named_params else "Params"  # "params" may be an objective or cost
    heads = ("#", "State", *record.objectives, *(h for _, h in costs), "Duration", config)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in (*heads, "Error"))
    span = len(heads) + 1
    body = "".join(rows) or f'<tr><td colspan="{span}" class="muted">No trials yet.</td></tr>'
    return (
        f'<section class="card"><h2>Trials</h2>{note}<div class="scroll"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></section>"
    )
