"""Pieces of the study page that are not figures: its head (counts, best, live), the run
settings as a readable panel, and the trials table's columns and rows.

The trials table pages, sorts and filters in SQL (:meth:`StudyReader.page
<studies.reads.StudyReader.page>`): its columns are fixed from the study's objectives and
from the parameters and statistics of a first page of trials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dash import html as h

from dashboard.context import Context, duration, shown_time, text
from dashboard.figures import STATE_COLORS, STATE_ORDER
from studies.reads import ORDERS, STATES, StudyOverview
from studies.records import StudyRecord, TrialRecord

__all__ = ["Columns", "columns", "grid_request", "grid_row", "head", "settings_panel"]

_CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_STAT_NAMES = {"params": "params", "flops": "FLOPs", "activation_bytes": "activations"}
_MAX_PARAM_COLUMNS = 16


@dataclass(frozen=True)
class Columns:
    """The trials table's columns of one study.

    Attributes:
        objectives: The study's objective names (fields ``v0``, ``v1``, ...).
        params: Parameter names (fields ``p0``, ...), those of the first trials.
        stats: Statistic names (fields ``s0``, ...), e.g. params and FLOPs.
    """

    objectives: list[str]
    params: list[str]
    stats: list[str]

    def defs(self) -> list[dict[str, Any]]:
        """AG Grid column definitions (only SQL-sortable columns sort)."""
        out: list[dict[str, Any]] = [
            {
                "field": "number",
                "headerName": "#",
                "maxWidth": 90,
                "cellClass": "link",
                "pinned": "left",
                "sortable": True,
            },
            {
                "field": "state",
                "headerName": "State",
                "maxWidth": 140,
                "sortable": True,
                "filter": "agTextColumnFilter",
                "filterParams": {"filterOptions": ["contains", "equals"], "maxNumConditions": 1},
            },
        ]
        for i, name in enumerate(self.objectives):
            out.append({"field": f"v{i}", "headerName": name, "sortable": True})
        out += [
            {"field": f"s{i}", "headerName": _STAT_NAMES.get(s, s)}
            for i, s in enumerate(self.stats)
        ]
        out += [
            {"field": "duration", "headerName": "Duration", "sortable": True, "maxWidth": 130},
            {"field": "started", "headerName": "Started", "sortable": True, "minWidth": 165},
        ]
        out += [{"field": f"p{i}", "headerName": p} for i, p in enumerate(self.params)]
        out += [
            {"field": "repeat_of", "headerName": "Repeat of", "maxWidth": 120},
            {"field": "node", "headerName": "Node"},
            {"field": "error", "headerName": "Error", "minWidth": 240, "flex": 1},
        ]
        return out

    def headers(self) -> dict[str, str]:
        """``{field: header}`` in column order (the CSV's header line)."""
        return {d["field"]: d["headerName"] for d in self.defs()}


def columns(ctx: Context, name: str) -> Columns:
    """The columns of study ``name``'s trials table."""
    first = ctx.reader.page(name, limit=50).record
    params: dict[str, None] = {}
    stats: dict[str, None] = {}
    for t in first.trials:
        params.update(dict.fromkeys(t.params))
        stats.update(dict.fromkeys(k for k, v in (t.stats or {}).items() if _number(v)))
    return Columns(list(first.objectives), list(params)[:_MAX_PARAM_COLUMNS], list(stats))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def grid_row(cols: Columns, trial: TrialRecord) -> dict[str, Any]:
    """One trial as a row of the trials table (plain text and numbers)."""
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state,
        "duration": duration(trial.duration_s),
        "started": shown_time(trial.started),
        "repeat_of": trial.repeat_of,
        "node": trial.node or "",
        "error": trial.error or "",
    }
    values = trial.values or ([trial.value] if trial.value is not None else [])
    for i in range(len(cols.objectives)):
        row[f"v{i}"] = text(values[i]) if i < len(values) else ""
    for i, s in enumerate(cols.stats):
        row[f"s{i}"] = text((trial.stats or {}).get(s))
    for i, p in enumerate(cols.params):
        row[f"p{i}"] = text(trial.params[p]) if p in trial.params else "(inactive)"
    return row


def grid_request(cols: Columns, request: dict[str, Any]) -> dict[str, Any]:
    """The :meth:`StudyReader.page <studies.reads.StudyReader.page>` arguments of an AG
    Grid ``getRowsRequest`` (its sort and its state filter).

    Example:
        >>> cols = Columns(["val_acc"], [], [])
        >>> asked = grid_request(cols, {"startRow": 100, "endRow": 200,
        ...     "sortModel": [{"colId": "v0", "sort": "desc"}],
        ...     "filterModel": {"state": {"type": "contains", "filter": "pr"}}})
        >>> asked["offset"], asked["limit"], asked["order_by"], asked["descending"]
        (100, 100, 'val_acc', True)
        >>> asked["state"]
        ['PRUNED']
    """
    start = max(int(request.get("startRow") or 0), 0)
    end = max(int(request.get("endRow") or start + 100), start + 1)
    out: dict[str, Any] = {"offset": start, "limit": end - start}
    for sort in request.get("sortModel") or []:
        col = sort.get("colId", "")
        if col in ORDERS:
            out["order_by"] = col
        elif col.startswith("v") and col[1:].isdigit() and int(col[1:]) < len(cols.objectives):
            out["order_by"] = cols.objectives[int(col[1:])]
        else:
            continue
        out["descending"] = sort.get("sort") == "desc"
        break
    wanted = (request.get("filterModel") or {}).get("state")
    if wanted and wanted.get("filter"):
        typed = str(wanted["filter"]).strip().upper()
        exact = wanted.get("type") == "equals"
        out["state"] = [s for s in STATES if (s == typed if exact else typed in s)]
    return out


def head(record: StudyRecord, line: StudyOverview, status: str) -> list[Any]:
    """The study page's head: name, objectives, counts by state, best, run, live."""
    arrows = {"maximize": "maximize ↑", "minimize": "minimize ↓"}
    objectives = " · ".join(
        f"{o} ({arrows.get(d, d)})"
        for o, d in zip(record.objectives, record.directions, strict=False)
    )
    badges = [
        h.Span(
            f"{line.states[s]} {s.lower()}",
            className="badge",
            style={"background": STATE_COLORS.get(s, "#6b7280")},
        )
        for s in STATE_ORDER
        if line.states.get(s)
    ]
    if record.multi:
        best = ("Pareto front", f"{line.front_size} trials" if line.front_size else "—")
    else:
        best = (f"best {record.objective}", text(line.best_value))
    stats = [
        ("trials", str(line.n_trials)),
        best,
        ("controller", line.controller or "—"),
        ("scheduler", line.scheduler or "—"),
        ("started", shown_time(line.started)),
        ("last activity", shown_time(line.last_activity)),
    ]
    return [
        h.H1(record.name, className="study-name"),
        h.P(
            [objectives, " ", h.Span("live", className="badge live") if line.live else None],
            className="sub",
        ),
        h.Div(
            [
                h.Div([h.Div(k, className="k"), h.Div(v, className="v")], className="stat")
                for k, v in stats
            ],
            className="stats",
        ),
        h.Div(badges or "no trials yet", className="states"),
        h.P(status, className="muted status"),
    ]


def _value(value: Any) -> str:
    if isinstance(value, str):
        return _CREDENTIALS.sub(r"\1***@", value)  # a URL's password, wherever it hides
    if isinstance(value, dict):
        shown = {k: v for k, v in value.items() if v not in (None, {}, [])}
        return ", ".join(f"{k}={_value(v)}" for k, v in shown.items()) or "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value) or "—"
    return text(value)


def settings_panel(settings: dict[str, Any]) -> h.Details:
    """The last run's settings and trainer as a readable list (not JSON)."""
    run, trainer = settings.get("run") or {}, settings.get("trainer") or {}
    controller = run.get("controller")
    if isinstance(controller, dict):
        options = {k: v for k, v in controller.items() if k != "name" and v not in (None, {})}
        controller = controller.get("name", "?") + (f" ({_value(options)})" if options else "")
    scheduler = run.get("scheduler")
    if scheduler and run.get("scheduler_options"):
        scheduler = f"{scheduler} ({_value(run['scheduler_options'])})"
    kwargs = dict(trainer.get("kwargs") or {})
    teacher = kwargs.pop("teacher", None) or trainer.get("teacher")
    trainer_args = kwargs or {
        k: v for k, v in trainer.items() if k not in ("class", "file", "teacher", "trainer")
    }
    rows = [
        ("Controller", controller),
        ("Scheduler", scheduler),
        ("Trials in the last run", run.get("num_trials")),
        ("At once", run.get("max_concurrent")),
        ("Resources per trial", run.get("resources_per_trial")),
        ("Trainer", trainer.get("class") or trainer.get("trainer")),
        ("Trainer settings", trainer_args or None),
        ("Teacher", teacher),
        ("Retries of a lost trial", run.get("max_retries")),
        ("Run directory", run.get("run_dir")),
    ]
    shown = [(k, v) for k, v in rows if v not in (None, "", {})]
    if not shown:
        body: Any = h.P("No archtune run recorded (a plain Optuna study).", className="muted")
    else:
        body = h.Dl([x for k, v in shown for x in (h.Dt(k), h.Dd(_value(v)))], className="kv")
    return h.Details([h.Summary("Run settings"), body], className="card", open=True)
