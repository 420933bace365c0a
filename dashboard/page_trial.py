"""The trial page: its values and state, its network drawn from its config, every
metric per epoch, where it ran, its lineage, checkpoint and error.

One :meth:`StudyReader.trial <studies.reads.StudyReader.trial>` (a handful of queries on
one trial's rows); live while the trial is unfinished.
"""

from __future__ import annotations

import html
from typing import Any

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, dcc
from dash import html as h

from dashboard.context import PLOT_CONFIG, Context, duration, shown_time, text
from dashboard.figures import STATE_COLORS, _message, _style
from dashboard.network import plot_network
from dashboard.paths import study_path, trial_path
from studies.reads import TrialDetail
from studies.records import StudyRecord

__all__ = ["layout", "plot_metrics", "register"]


def plot_metrics(detail: TrialDetail, record: StudyRecord) -> go.Figure:
    """Every metric the trial reported, per epoch: one line each (the objectives first).

    Optuna's intermediate values stand in for the objective when archtune recorded no
    metric rows (a plain Optuna study).
    """
    trial = detail.record
    series = dict(trial.metrics)
    if not series and trial.intermediate:
        series[record.objective] = sorted(trial.intermediate.items())
    fig = _style(go.Figure(), f"Metrics of trial {trial.number}", "per epoch", "Epoch", "")
    if not series:
        return _message(fig, "This trial reported no metric.")
    if max((s for points in series.values() for s, _ in points), default=0) <= 20:
        fig.update_xaxes(dtick=1)
    first = [n for n in record.objectives if n in series]
    for name in first + sorted(n for n in series if n not in first):
        points = series[name]
        fig.add_trace(
            go.Scatter(
                x=[s for s, _ in points],
                y=[v for _, v in points],
                mode="lines+markers",
                name=html.escape(name),
                visible=True if name in first or len(series) <= 4 else "legendonly",
            )
        )
    return fig


_BUNDLED = {"digits": (1, 8, 10), "cifar10": (3, 32, 10)}  # channels, side, classes


def input_of(settings: dict[str, Any]) -> dict[str, Any]:
    """The input shape and class count of the bundled dataset a study's trainer reads
    (``{}`` for other data: the drawing then shows strides, not feature-map sizes).

    Example:
        >>> input_of({"trainer": {"kwargs": {"dataset": "digits", "image_size": None}}})
        {'input_shape': (1, 8, 8), 'num_classes': 10}
    """
    kwargs = (settings.get("trainer") or {}).get("kwargs") or {}
    known = _BUNDLED.get(str(kwargs.get("dataset")))
    if known is None:
        return {}
    channels, side, classes = known
    size = kwargs.get("image_size") or side
    sides = list(size) if isinstance(size, (list, tuple)) else [size, size]
    if len(sides) != 2 or not all(isinstance(x, int) and x > 0 for x in sides):
        return {}
    return {"input_shape": (channels, sides[0], sides[1]), "num_classes": classes}


def _network(trial: Any, record: StudyRecord, shape: dict[str, Any]) -> go.Figure:
    """The drawing of the trial's network, or a figure saying why there is none (a
    recorded value the drawing cannot read must not take the page down)."""
    try:
        return plot_network(trial, record.space, **shape)
    except Exception as e:
        fig = _style(go.Figure(), f"Trial {trial.number} network", "")
        return _message(fig, f"Cannot draw this network: {e}")


def _kv(rows: list[tuple[str, Any]]) -> h.Dl:
    shown = [(k, v) for k, v in rows if v not in (None, "", [], {})]
    return h.Dl([x for k, v in shown for x in (h.Dt(k), h.Dd(v))], className="kv")


def _link(name: str, number: int | None) -> Any:
    return None if number is None else dcc.Link(f"trial {number}", href=trial_path(name, number))


def _where(detail: TrialDetail) -> list[Any]:
    t = detail.record
    spent = t.overhead or {}
    phases = ("propose", "queue", "startup", "train", "record")
    went = " · ".join(
        f"{p} {duration(spent[f'{p}_s'])}" for p in phases if spent.get(f"{p}_s") is not None
    )
    rows = [("Node", t.node), ("Wall time went to", went or None)]
    out: list[Any] = [_kv([*rows, ("Cut off", "yes" if detail.cut_off else None)])]
    if t.restarts:
        head = h.Tr([h.Th("Restart"), h.Th("Node lost"), h.Th("After epoch"), h.Th("Error")])
        body = [
            h.Tr(
                [
                    h.Td(str(i + 1)),
                    h.Td(text(r.get("node"))),
                    h.Td(text(r.get("epoch"))),
                    h.Td(text(r.get("error"))),
                ]
            )
            for i, r in enumerate(t.restarts)
        ]
        out.append(h.Table([h.Thead(head), h.Tbody(body)]))
    if detail.interrupted:
        out.append(h.P("Interrupted: " + "; ".join(detail.interrupted), className="muted"))
    return out


def _values(detail: TrialDetail, record: StudyRecord) -> list[tuple[str, Any]]:
    t = detail.record
    values = t.values or ([t.value] if t.value is not None else [])
    return [(o, text(values[i])) for i, o in enumerate(record.objectives) if i < len(values)]


def layout(ctx: Context, name: str, number: str) -> h.Div:
    """The page of trial ``number`` of study ``name`` (``KeyError`` if there is none)."""
    try:
        n = int(number)
    except ValueError:
        raise KeyError(f"{number!r} is not a trial number.") from None
    record = ctx.reader.study(name)
    detail = ctx.reader.trial(name, n)
    return h.Div(
        [
            dcc.Store(id="trial-key", data={"study": name, "number": n}),
            dcc.Interval(id="trial-tick", interval=ctx.poll_ms, disabled=detail.record.finished),
            h.Div(content(ctx, name, record, detail), id="trial-body"),
        ]
    )


def content(ctx: Context, name: str, record: StudyRecord, detail: TrialDetail) -> list[Any]:
    """The trial page's body."""
    t = detail.record
    shape = input_of(ctx.reader.settings(name))
    color = STATE_COLORS.get(t.state, "#6b7280")
    summary = _kv(
        [
            *_values(detail, record),
            ("Started", shown_time(t.started)),
            ("Ended", shown_time(t.completed) if t.completed else None),
            ("Duration", duration(t.duration_s) if t.duration_s is not None else None),
            ("Architecture id", t.arch_id),
            *((k, text(v)) for k, v in (t.stats or {}).items()),
        ]
    )
    lineage = _kv(
        [
            ("Parent (evolution)", _link(name, detail.parent)),
            ("Mutated", detail.mutated),
            ("Repeat of", _link(name, t.repeat_of)),
            ("Went on from", _link(name, detail.resumed_from)),
        ]
    )
    config = h.Table(
        [h.Tbody([h.Tr([h.Td(k), h.Td(text(v), className="num")]) for k, v in t.params.items()])]
    )
    cards: list[Any] = [
        h.Div(
            [
                dcc.Link(f"← {name}", href=study_path(name), className="back"),
                h.H1(
                    [
                        f"Trial {t.number} ",
                        h.Span(t.state.lower(), className="badge", style={"background": color}),
                    ]
                ),
                summary,
            ],
            className="card",
        ),
        h.Div(
            [
                dcc.Graph(
                    id="trial-network",
                    figure=_network(t, record, shape),
                    config=PLOT_CONFIG,
                )
            ],
            className="card wide",
        ),
        h.Div(
            [
                dcc.Graph(
                    id="trial-metrics", figure=plot_metrics(detail, record), config=PLOT_CONFIG
                )
            ],
            className="card",
        ),
        h.Div([h.H2("Config"), config], className="card"),
        h.Div([h.H2("Where it ran"), *_where(detail)], className="card"),
    ]
    if lineage.children:
        cards.append(h.Div([h.H2("Lineage"), lineage], className="card"))
    if detail.checkpoint:
        cards.append(h.Div([h.H2("Checkpoint"), h.Code(detail.checkpoint)], className="card"))
    if t.error or t.traceback:
        cards.append(
            h.Div(
                [
                    h.H2("Error"),
                    h.P(t.error or "", className="err"),
                    h.Details([h.Summary("Traceback"), h.Pre(t.traceback)])
                    if t.traceback
                    else None,
                ],
                className="card",
            )
        )
    if detail.user_attrs:
        attrs = _kv([(k, text(v)) for k, v in detail.user_attrs.items()])
        cards.append(h.Div([h.H2("User attributes"), attrs], className="card"))
    return [h.Div(cards, className="grid")]


def register(app: dash.Dash, ctx: Context) -> None:
    """The trial page's callback: redraw while the trial runs."""

    @app.callback(
        Output("trial-body", "children"),
        Output("trial-tick", "disabled"),
        Input("trial-tick", "n_intervals"),
        State("trial-key", "data"),
        prevent_initial_call=True,
    )
    def refresh(_n: int, key: dict[str, Any]) -> Any:
        record = ctx.reader.study(key["study"])
        detail = ctx.reader.trial(key["study"], key["number"])
        return content(ctx, key["study"], record, detail), detail.record.finished
