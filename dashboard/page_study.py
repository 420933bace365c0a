"""The study page: head, run settings, figures, and the trials table; live.

What is drawn first comes from the study's outline (numbers, states, values, times: two
index scans at 100,000 trials), so the history is on screen before the rest of the study
is read. A study of up to :data:`SMALL` trials is read whole before the page is sent;
a larger one in the background (:class:`~dashboard.live.LiveStudies`), its other figures
saying so until they are drawn. Then every ``poll_ms`` the page asks whether the study
changed (one poll: a few indexed queries) and redraws only when it did. Importance is
computed in the background, once per number of finished trials.
"""

from __future__ import annotations

import functools
import html
import json
from typing import Any

import dash
import dash_ag_grid as dag
import plotly.graph_objects as go
from dash import Input, Output, State, dcc
from dash import html as h

from dashboard.context import PLOT_CONFIG, Context
from dashboard.curves import plot_learning_curves
from dashboard.figures import _message, _style, plot_parallel_coordinates
from dashboard.history import plot_history
from dashboard.importance import plot_importance
from dashboard.live import Snapshot
from dashboard.overhead import plot_overhead
from dashboard.pareto import plot_pareto
from dashboard.paths import trial_path
from dashboard.study_panels import columns, grid_request, grid_row, head, settings_panel
from dashboard.timeline import plot_timeline
from studies.records import StudyRecord

__all__ = ["SMALL", "layout", "register", "rest", "warm"]

SMALL = 2000
"""Studies of up to this many trials are read whole before their page is sent (the history
then lists each trial's params), and their other figures come drawn with the rest of the
page; a larger study is read after its page is sent, and its other figures follow from
callbacks once it is in memory."""

_HEAVY = {
    "fig-parallel": plot_parallel_coordinates,
    "fig-timeline": plot_timeline,
    "fig-overhead": plot_overhead,
}


def _loading(title: str, n: int) -> dict[str, Any]:
    """A figure that says the study is being read (a dict: styling a plotly figure
    costs ~30 ms, and a large study's page sends five of these)."""
    fig = json.loads(_blank(title))
    fig["layout"]["annotations"][0]["text"] = html.escape(f"Reading {n:,} trials…")
    return fig


@functools.lru_cache(maxsize=16)
def _blank(title: str) -> str:
    return _message(_style(go.Figure(), title, ""), "").to_json()


def warm() -> None:
    """Pay before the first page for what its figures first cost: plotly's template
    (0.5 s the first time) and the placeholders."""
    for title in ("", "Parameter importance", "Learning curves", "Pareto front"):
        _blank(title)


def _graph(graph_id: str, figure: go.Figure | dict[str, Any], **kwargs: Any) -> dcc.Graph:
    return dcc.Graph(id=graph_id, figure=figure, config=PLOT_CONFIG, **kwargs)


def _card(*children: Any, wide: bool = False) -> h.Div:
    return h.Div(list(children), className="card wide" if wide else "card")


def _metrics(record: StudyRecord | None) -> list[str]:
    if record is None:
        return []
    names: dict[str, None] = {}
    for t in record.trials[-200:]:
        names.update(dict.fromkeys(t.metrics))
    return sorted(names)


def _importance(ctx: Context, name: str, record: StudyRecord) -> tuple[go.Figure, int] | None:
    """The importance figure, or None while it is computed in the background."""
    done = sum(t.state == "COMPLETE" for t in record.trials)
    value = ctx.cache.get(name, done, lambda: plot_importance(record, "auto"))
    if value is None:
        return None
    if isinstance(value, Exception):
        fig = _message(_style(go.Figure(), "Parameter importance", ""), f"Not computed: {value}")
        return fig, done
    return value, done


def layout(ctx: Context, name: str) -> h.Div:
    """The page of study ``name`` (``KeyError`` if there is none), as first sent: its head,
    run settings and history, drawn from the study's outline. The other figures and the
    trials table follow from :func:`rest`, asked once this is on screen, so that the first
    figure is drawn before the browser builds the others and the grid."""
    outline = ctx.reader.outline(name)
    line = ctx.reader.summary(name)
    n = len(outline)
    # A small study is read whole before its page is sent (its history then has every
    # trial's params); a large one after (:func:`rest`), or it was read by a page before.
    snap = ctx.live.wait(name) if n <= SMALL else ctx.live.peek(name)
    history = _card(
        dcc.RadioItems(
            id="history-by",
            options=[
                {"label": "by trial", "value": "number"},
                {"label": "by wall time", "value": "time"},
            ],
            value="number",
            inline=True,
            className="toggle",
        ),
        _graph("fig-history", plot_history(snap.record or outline)),
    )
    return h.Div(
        [
            dcc.Store(id="study-name", data=name),
            dcc.Store(id="study-version", data=snap.version),
            dcc.Store(id="study-trials", data=n),
            dcc.Interval(id="study-tick", interval=ctx.poll_ms),
            h.Div(head(outline.study, line, _status(snap, n)), id="study-head", className="card"),
            settings_panel(ctx.reader.settings(name)),
            # The later figures join the history's grid (display: contents).
            h.Div(
                [history, h.Div(id="study-figures", className="contents")], className="grid fill"
            ),
            h.Div(id="study-table"),
        ]
    )


def rest(ctx: Context, name: str, n: int) -> tuple[list[Any], list[Any]]:
    """The study page after its history: the other figures and the trials table, for a
    study of ``n`` trials when its page was sent. Up to :data:`SMALL` (the study was read
    whole) the figures come drawn; else they say the study is being read (which this
    starts), and callbacks draw them when it is. The store ``figures-version`` says which
    version of the study they show (0: none)."""
    inline = n <= SMALL
    study = ctx.reader.study(name)
    snap = ctx.live.wait(name) if inline else ctx.live.get(name)  # get: starts reading it
    record = snap.record if inline else None
    heavy = {k: f(record) if record else _loading("", n) for k, f in _HEAVY.items()}
    importance = _importance(ctx, name, record) if record else None
    wait_fig = _loading("Parameter importance", n)
    importance_card = _card(
        dcc.Store(id="importance-key", data=importance[1] if importance else -1),
        _graph("fig-importance", importance[0] if importance else wait_fig),
    )
    curves_card = _card(
        dcc.Dropdown(
            id="curves-metric",
            options=_metrics(record),
            placeholder=f"metric (default: {study.objective})",
            clearable=True,
        ),
        _graph(
            "fig-curves",
            plot_learning_curves(record) if record else _loading("Learning curves", n),
        ),
    )
    figures: list[Any] = [dcc.Store(id="figures-version", data=snap.version if record else 0)]
    if study.multi:  # history | Pareto, importance | curves
        fig = plot_pareto(record) if record else _loading("Pareto front", n)
        hint = h.P("Click a point to open its trial.", className="muted")
        figures += [_card(_graph("fig-pareto", fig), hint), importance_card, curves_card]
    else:  # history | importance, curves
        figures += [importance_card, curves_card]
        figures.append(_graph("fig-pareto", go.Figure(), style={"display": "none"}))
    figures += [
        _card(_graph("fig-parallel", heavy["fig-parallel"]), wide=True),
        _card(_graph("fig-timeline", heavy["fig-timeline"]), wide=True),
        _card(_graph("fig-overhead", heavy["fig-overhead"]), wide=True),
    ]
    return figures, [_table(ctx, name)]


def _table(ctx: Context, name: str) -> h.Div:
    """The trials table: AG Grid's infinite row model, rows sorted and filtered in SQL."""
    return _card(
        h.Div(
            [
                h.H2("Trials"),
                h.A(
                    "Download CSV",
                    href=f"/export/trials.csv?study={_q(name)}",
                    className="button",
                    id="trials-csv",
                ),
            ],
            className="row",
        ),
        dag.AgGrid(
            id="trials-grid",
            columnDefs=columns(ctx, name).defs(),
            rowModelType="infinite",
            defaultColDef={
                "sortable": False,
                "filter": False,
                "resizable": True,
                "minWidth": 90,
            },
            dashGridOptions={
                "cacheBlockSize": 100,
                "maxBlocksInCache": 20,
                "pagination": True,
                "paginationPageSize": 25,
                "paginationPageSizeSelector": [25, 100, 500],
            },
            style={"height": "540px"},
            className="ag-theme-quartz",
        ),
        wide=True,
    )


def _q(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _status(snap: Any, n: int) -> str:
    if snap.error:
        return f"Could not read the latest changes: {snap.error}"
    if snap.record is None:
        return f"Reading {n:,} trials…"
    return "Updates by itself while the study runs." if snap.live else ""


def register(app: dash.Dash, ctx: Context) -> None:
    """The study page's callbacks."""
    _register_live(app, ctx)
    for graph_id, plot in _HEAVY.items():
        _redraw(app, ctx, graph_id, plot)
    _redraw(app, ctx, "fig-pareto", plot_pareto)
    _register_figures(app, ctx)
    _register_table(app, ctx)
    _register_clicks(app)


def _register_live(app: dash.Dash, ctx: Context) -> None:
    """The poll, the rest of the page after the history, and the history's redraw."""

    @app.callback(
        Output("study-version", "data"),
        Output("study-head", "children"),
        Input("study-tick", "n_intervals"),
        State("study-name", "data"),
        State("study-version", "data"),
        prevent_initial_call=True,
    )
    def tick(_n: int, name: str, drawn: int) -> tuple[Any, Any]:
        ctx.warm_up()
        snap = ctx.live.get(name)
        if snap.version == drawn and not snap.error:
            return dash.no_update, dash.no_update
        line = ctx.reader.summary(name)
        record = snap.record or ctx.reader.study(name)
        changed = snap.version if snap.version != drawn else dash.no_update  # redraws
        return changed, head(record, line, _status(snap, line.n_trials))

    @app.callback(
        Output("study-figures", "children"),
        Output("study-table", "children"),
        Input("study-name", "data"),
        State("study-trials", "data"),
    )
    def after_history(name: str, n: int) -> tuple[Any, Any]:
        return rest(ctx, name, n)

    @app.callback(
        Output("fig-history", "figure"),
        Input("study-version", "data"),
        Input("history-by", "value"),
        State("study-name", "data"),
        prevent_initial_call=True,
    )
    def history(_v: int, by: str, name: str) -> Any:
        record = ctx.live.peek(name).record or ctx.reader.outline(name)
        return plot_history(record, by=by or "number")


def _register_figures(app: dash.Dash, ctx: Context) -> None:
    """Learning curves (any metric) and importance (when computed)."""

    @app.callback(
        Output("fig-curves", "figure"),
        Output("curves-metric", "options"),
        Input("study-version", "data"),
        Input("curves-metric", "value"),
        State("study-name", "data"),
        State("figures-version", "data"),
    )
    def curves(_v: int, metric: str | None, name: str, drawn: int) -> Any:
        snap = ctx.live.peek(name)
        if _up_to_date(snap, drawn):
            return dash.no_update, dash.no_update
        return plot_learning_curves(snap.record, metric or None), _metrics(snap.record)

    @app.callback(
        Output("fig-importance", "figure"),
        Output("importance-key", "data"),
        Input("study-tick", "n_intervals"),
        State("study-name", "data"),
        State("importance-key", "data"),
    )
    def importance(_n: int, name: str, drawn: int) -> Any:
        record = ctx.live.peek(name).record
        found = _importance(ctx, name, record) if record else None
        if found is None or found[1] == drawn:
            return dash.no_update, dash.no_update
        return found


def _register_table(app: dash.Dash, ctx: Context) -> None:
    """The trials table: rows from SQL, refetched when the study changed."""

    @app.callback(
        Output("trials-grid", "getRowsResponse"),
        Input("trials-grid", "getRowsRequest"),
        State("study-name", "data"),
        prevent_initial_call=True,
    )
    def rows(request: dict[str, Any] | None, name: str) -> Any:
        if not request:
            return dash.no_update
        cols = columns(ctx, name)
        page = ctx.reader.page(name, **grid_request(cols, request))
        return {
            "rowData": [grid_row(cols, t) for t in page.record.trials],
            "rowCount": page.total,
        }

    # A change refetches the visible rows (sort, filter and scroll kept).
    app.clientside_callback(
        """function(version) {
            let api = null;
            try { api = dash_ag_grid.getApi("trials-grid"); } catch (e) { }  // not built yet
            if (api) { api.refreshInfiniteCache(); }
            return window.dash_clientside.no_update;
        }""",
        Output("trials-grid", "id"),
        Input("study-version", "data"),
        prevent_initial_call=True,
    )


def _register_clicks(app: dash.Dash) -> None:
    """A click on a history or Pareto point, or on a trial's number, opens the trial.
    (The history's has its own callback: it is on the page before the others are.)"""

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Input("fig-history", "clickData"),
        State("study-name", "data"),
        State("history-by", "value"),
        prevent_initial_call=True,
    )
    def open_from_history(click: Any, name: str, by: str) -> Any:
        if not click:
            return dash.no_update
        point = click["points"][0]  # x is the number, unless drawn by time
        number = point.get("x") if by != "time" else point.get("customdata")
        return dash.no_update if number is None else trial_path(name, int(number))

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Input("fig-pareto", "clickData"),
        Input("trials-grid", "cellClicked"),
        State("study-name", "data"),
        prevent_initial_call=True,
    )
    def open_trial(click: Any, cell: Any, name: str) -> Any:
        number = None
        if dash.ctx.triggered_id == "fig-pareto" and click:
            number = click["points"][0].get("customdata")
        elif cell and cell.get("colId") == "number":
            number = cell.get("value")
        return dash.no_update if number is None else trial_path(name, int(number))


def _up_to_date(snap: Snapshot, drawn: int) -> bool:
    """Whether a figure drawn at study version ``drawn`` needs no redraw: on its first
    call (its part of the page just arrived) it does when the study changed since, or was
    not read then; later calls come from a change (or a new choice), and redraw."""
    first = dash.ctx.triggered_id is None
    return snap.record is None or (first and snap.version == drawn)


def _redraw(app: dash.Dash, ctx: Context, graph_id: str, plot: Any) -> None:
    """Redraw figure ``graph_id`` with ``plot(record)`` when the study changed, and once
    its part of the page arrived if the study is newer than what it shows."""

    @app.callback(
        Output(graph_id, "figure"),
        Input("study-version", "data"),
        State("study-name", "data"),
        State("figures-version", "data"),
    )
    def redraw(_v: int, name: str, drawn: int) -> Any:
        snap = ctx.live.peek(name)
        return dash.no_update if _up_to_date(snap, drawn) else plot(snap.record)
