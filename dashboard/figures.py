"""Parallel coordinates of a recorded study, and the helpers every figure module shares
(the history: :mod:`dashboard.history`; learning curves: :mod:`dashboard.curves`; the
Pareto front: :mod:`dashboard.pareto`).

Each figure is a pure ``get_*_info(record)`` step, unit-tested without a browser, and a
``plot_*(record)`` renderer that turns it into a :class:`plotly.graph_objects.Figure`
(the split ``optuna/visualization`` uses). The static report and the dashboard share the
info functions. Non-finite values (NaN, ±inf) are never plotted, only counted; a study
with nothing to plot gives a figure that says so instead of raising.

Example:
    >>> from studies.records import StudyRecord, TrialRecord
    >>> record = StudyRecord("demo", "minimize", "val_loss", None, [
    ...     TrialRecord(0, "COMPLETE", {"train/lr": 0.01}, 0.9, {1: 1.2, 2: 0.9}),
    ...     TrialRecord(1, "COMPLETE", {"train/lr": 0.1}, 1.1, {1: 1.3, 2: 1.1}),
    ... ])
    >>> [axis.label for axis in get_parallel_info(record).axes]
    ['train/lr', 'val_loss']
    >>> fig = plot_parallel_coordinates(record)  # a plotly.graph_objects.Figure
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from studies.records import StudyRecord, TrialRecord

STATE_COLORS = {
    "COMPLETE": "#2563eb",
    "PRUNED": "#f59e0b",
    "FAIL": "#dc2626",
    "RUNNING": "#10b981",
    "INTERRUPTED": "#8b5cf6",
    "WAITING": "#9ca3af",
}
STATE_ORDER = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "INTERRUPTED", "WAITING")
MISSING_LABEL = "(missing)"
_FONT = "Inter, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_MISSING = object()


# ---------------------------------------------------------------------------- helpers


def is_finite(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool) that is neither NaN nor ±inf."""
    if type(value) is float:  # the common cases, without the ABC checks (1 s a million)
        return math.isfinite(value)
    if type(value) is int:
        return True
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return real and math.isfinite(value)


def format_value(value: Any) -> str:
    """A short display string: ``"—"`` for None, 6 significant digits for floats.

    Example:
        >>> format_value(0.000123456789), format_value(None), format_value(True)
        ('0.000123457', '—', 'True')
    """
    if value is None:
        return "—"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.6g}"
    return str(value)


def _check_direction(record: StudyRecord) -> bool:
    """True for maximize; raises on anything but the two known directions."""
    if record.direction not in ("maximize", "minimize"):
        raise ValueError(
            f"Study {record.name!r} has direction {record.direction!r}; "
            "expected 'maximize' or 'minimize'."
        )
    return record.direction == "maximize"


def _hover(trial: TrialRecord, rows: list[tuple[str, Any]]) -> str:
    """Hover text (plotly's HTML subset) naming the trial, ``rows`` and its params."""
    head = f"<b>Trial {trial.number}</b> · {trial.state.lower()}"
    items = [*rows, *sorted(trial.params.items())]
    lines = [f"{html.escape(str(k))}: {html.escape(format_value(v))}" for k, v in items]
    return "<br>".join([head, *lines])


def _style(fig: go.Figure, title: str, subtitle: str, x: str = "", y: str = "") -> go.Figure:
    """Apply the shared look: template, font, titles and axis labels (all escaped)."""
    fig.update_layout(
        template="plotly_white",
        font={"family": _FONT, "size": 13, "color": "#1f2937"},
        title={
            "text": f"<b>{html.escape(title)}</b>",
            "subtitle": {"text": html.escape(subtitle), "font": {"color": "#6b7280"}},
            "x": 0.01,
            "xanchor": "left",
        },
        margin={"l": 70, "r": 30, "t": 90, "b": 60},
        height=460,
        hoverlabel={"font": {"family": _FONT}, "align": "left"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
    )
    fig.update_xaxes(title_text=html.escape(x), zeroline=False)
    fig.update_yaxes(title_text=html.escape(y), zeroline=False)
    return fig


def _message(fig: go.Figure, text: str) -> go.Figure:
    """Write ``text`` across an otherwise empty figure, axes hidden."""
    fig.add_annotation(
        text=html.escape(text),
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font={"size": 14, "color": "#6b7280"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _objective_label(record: StudyRecord) -> str:
    """``"val_acc (maximize)"``; with several objectives, says that it is the first.

    Example:
        >>> _objective_label(StudyRecord("s", "maximize", "acc", None, [],
        ...     objectives=["acc", "params"], directions=["maximize", "minimize"]))
        'acc (maximize), the first of 2 objectives'
    """
    label = f"{record.objective} ({record.direction})"
    if record.multi:
        label += f", the first of {len(record.objectives)} objectives"
    return label


def _subtitle(record: StudyRecord, what: str, hidden: dict[str, int]) -> str:
    """``"study · what"``, then how many of what kinds are not shown, if any."""
    notes = [f"{n} {kind}" for kind, n in hidden.items() if n]
    return " · ".join([record.name, what, *(["not shown: " + ", ".join(notes)] if notes else [])])


# Plotly validates a list element by element (seconds at 100,000 points) and writes it as
# JSON text; a numpy array it takes as it is and sends as a base64 typed array
# ({"dtype", "bdata"}) that plotly.js decodes. Figures pass their point data this way.


def float_array(values: Iterable[Any], dtype: Any = np.float64) -> np.ndarray:
    """``values`` as a numpy float array (None as NaN, which plotly leaves out or breaks a
    line at): what a trace's point data should be.

    Example:
        >>> float_array([1, None, 2.5])
        array([1. , nan, 2.5])
    """
    return np.asarray(list(values), dtype=dtype)


def compact_array(values: Iterable[float]) -> np.ndarray:
    """``values`` as the smallest array that draws them exactly enough: int16 when they
    are all whole numbers of int16 (category indices, small integers), else float32 (7
    significant digits: for positions only drawn, never read out in a hover).

    Example:
        >>> compact_array([0.0, 2.0, 1.0]).dtype, compact_array([0.5, 1e6]).dtype
        (dtype('int16'), dtype('float32'))
    """
    array = np.asarray(list(values), dtype=np.float64)
    whole = np.all(np.isfinite(array)) and np.all(array == np.round(array))
    if whole and (array.size == 0 or np.abs(array).max() < 2**15):
        return array.astype(np.int16)
    return array.astype(np.float32)


def _template(state: str, rows: list[tuple[str, str]], number: str = "%{customdata}") -> str:
    """A hover template (plotly's HTML subset) naming the trial and its state, then
    ``rows`` of ``(label, placeholder)``: the per-point values come from the trace's
    arrays (``%{x}``, ``%{customdata[1]}``), never from per-point strings. Labels and the
    state are escaped; a string placed through ``customdata`` must be escaped by its caller.

    Example:
        >>> _template("COMPLETE", [("<lr>", "%{x:.6~g}")])
        '<b>Trial %{customdata}</b> · complete<br>&lt;lr&gt;: %{x:.6~g}<extra></extra>'
    """
    head = f"<b>Trial {number}</b> · {template_text(state.lower())}"
    lines = [f"{template_text(label)}: {placeholder}" for label, placeholder in rows]
    return "<br>".join([head, *lines]) + "<extra></extra>"


def template_text(text: str) -> str:
    """``text`` to put in a hover template as it is: HTML escaped, and ``%`` as an entity
    (in a name such as ``loss %{x}`` plotly would fill in the placeholder).

    Example:
        >>> template_text("<b>loss %{x}</b>")
        '&lt;b&gt;loss &#37;{x}&lt;/b&gt;'
    """
    return html.escape(text).replace("%", "&#37;")


def ranked_numbers(record: StudyRecord) -> list[int]:
    """Numbers of the complete trials with a finite objective, best first (the first
    reached on ties, as :func:`dashboard.history.get_history_info` picks the best)."""
    sign = -1.0 if _check_direction(record) else 1.0
    done = [t for t in record.trials if t.state == "COMPLETE" and is_finite(t.value)]
    return [t.number for t in sorted(done, key=lambda t: (sign * t.value, t.number))]


def sample_trials(
    trials: list[TrialRecord], ranked: list[int], limit: int, n_best: int, seed: int
) -> tuple[list[TrialRecord], int]:
    """At most ``limit`` of ``trials`` (by number): the best ``n_best`` by ``ranked``,
    then the others with the smallest seeded random keys, and how many are the best. A
    trial's key depends on its number and the seed only, so a growing study keeps the
    trials it showed unless new ones displace them.

    Example:
        >>> trials = [TrialRecord(n, "COMPLETE", {}, n / 10) for n in range(10)]
        >>> picked, n_best = sample_trials(trials, [9, 8, 7], limit=4, n_best=2, seed=0)
        >>> [t.number for t in picked if t.number in (8, 9)], len(picked), n_best
        ([8, 9], 4, 2)
    """
    if len(trials) <= limit:
        return trials, 0
    have = {t.number for t in trials}
    chosen = set([n for n in ranked if n in have][: min(n_best, limit)])
    n_chosen_best = len(chosen)
    rest = [t.number for t in trials if t.number not in chosen]
    keys = np.random.default_rng(seed).random(max(have) + 1)
    order = np.argsort(keys[rest], kind="stable")[: limit - n_chosen_best]
    chosen.update(rest[i] for i in order)
    return [t for t in trials if t.number in chosen], n_chosen_best


# ------------------------------------------------------------- parallel coordinates


@dataclass(frozen=True)
class ParallelAxis:
    """One axis of the parallel-coordinate plot.

    Attributes:
        label: Param name, or the objective's name for the last axis.
        kind: ``"linear"``, ``"log"`` (values are log10) or ``"categorical"`` (values
            are indices into ``ticktext``).
        values: Position of each trial on the axis, in the order of ``numbers``.
        tickvals, ticktext: Explicit ticks, or None to let plotly choose.
        range: Explicit ``(low, high)`` of the axis, or None.
    """

    label: str
    kind: str
    values: list[float]
    tickvals: list[float] | None = None
    ticktext: list[str] | None = None
    range: tuple[float, float] | None = None


@dataclass(frozen=True)
class ParallelInfo:
    """Data of :func:`plot_parallel_coordinates`.

    Attributes:
        objective, direction: As in the record.
        numbers: Numbers of the plotted trials (complete, with a finite value).
        axes: One axis per param (sorted by name), then the objective's.
        n_skipped: Complete trials left out because their value is not finite.
        n_trials: Complete trials with a finite value: ``len(numbers)`` unless sampled.
        n_best: When sampled, how many of ``numbers`` are the best trials.
    """

    objective: str
    direction: str
    numbers: list[int]
    axes: list[ParallelAxis]
    n_skipped: int
    n_trials: int = 0
    n_best: int = 0


def _decade_label(k: int) -> str:
    return f"{10.0**k:g}" if -3 <= k <= 3 else f"1e{k}"


def _numeric_axis(label: str, raw: list[Any]) -> ParallelAxis:
    """A linear or (over more than two decades of positive values) log10 axis."""
    nums = [float(v) for v in raw if v is not _MISSING]
    lo, hi = min(nums), max(nums)
    log = lo > 0 and hi > 100 * lo
    encode = math.log10 if log else float
    if log:
        decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        ticks, text = [float(k) for k in decades], [_decade_label(k) for k in decades]
    else:
        distinct = sorted(set(nums))
        ticks = distinct if len(distinct) <= 6 else [lo + (hi - lo) * i / 4 for i in range(5)]
        text = [format_value(v) for v in ticks]
    low, high, kind = ticks[0], ticks[-1], "log" if log else "linear"
    if len(nums) == len(raw):
        values = [encode(v) for v in nums]
        if log:
            return ParallelAxis(label, kind, values, ticks, text, (low, high))
        return ParallelAxis(label, kind, values)
    pos = low - 0.2 * ((high - low) or 1.0)
    values = [pos if v is _MISSING else encode(float(v)) for v in raw]
    return ParallelAxis(label, kind, values, [pos, *ticks], [MISSING_LABEL, *text], (pos, high))


def _category_key(value: Any) -> tuple[int, float, str]:
    return (0, float(value), "") if is_finite(value) else (1, 0.0, str(value))


def _categorical_axis(label: str, raw: list[Any]) -> ParallelAxis:
    """Categories (str, bool, None, mixed) at integer positions, missing ones last."""
    present = sorted((v for v in raw if v is not _MISSING), key=_category_key)
    labels = list(dict.fromkeys(str(v) for v in present))
    if len(present) < len(raw):
        labels.append(MISSING_LABEL)
    index = {text: i for i, text in enumerate(labels)}
    values = [float(index[MISSING_LABEL if v is _MISSING else str(v)]) for v in raw]
    ticks = [float(i) for i in range(len(labels))]
    span = (0.0, float(max(len(labels) - 1, 1)))
    return ParallelAxis(label, "categorical", values, ticks, labels, span)


def _categorical_paths(space: dict[str, Any] | None, prefix: str = "") -> set[str]:
    """Paths of the params the space JSON declares categorical (numbers included)."""
    out: set[str] = set()
    for name, entry in ((space or {}).get("entries") or {}).items():
        if entry.get("type") == "space":
            out |= _categorical_paths(entry, f"{prefix}{name}/")
        elif entry.get("type") == "categorical":
            out.add(prefix + name)
    return out


LINES_SHOWN = 5000
"""Most lines of the parallel coordinates; past this, the best :data:`LINES_BEST` and a
seeded sample of the rest (tens of thousands of lines draw as a block, slowly)."""
LINES_BEST = 500


def get_parallel_info(
    record: StudyRecord, *, limit: int | None = LINES_SHOWN, n_best: int = LINES_BEST
) -> ParallelInfo:
    """One axis per param over the complete trials with a finite value, objective last;
    past ``limit`` of them, the best ``n_best`` and a seeded sample of the others
    (:func:`sample_trials`).

    A param is numeric when the study's space does not declare it categorical and every
    value it takes is a finite real number (bools count as categories); trials that lack
    a param sit at a ``(missing)`` tick of its axis.
    """
    _check_direction(record)
    done = [t for t in record.trials if t.state == "COMPLETE"]
    kept = sorted((t for t in done if is_finite(t.value)), key=lambda t: t.number)
    n_trials, best = len(kept), 0
    if limit is not None and len(kept) > limit:
        kept, best = sample_trials(kept, ranked_numbers(record), limit, n_best, seed=0)
    names = sorted({name for t in kept for name in t.params})
    declared = _categorical_paths(record.space)
    axes = []
    for name in names:
        raw = [t.params.get(name, _MISSING) for t in kept]
        numeric = name not in declared and all(is_finite(v) for v in raw if v is not _MISSING)
        axes.append(_numeric_axis(name, raw) if numeric else _categorical_axis(name, raw))
    if kept:
        axes.append(ParallelAxis(record.objective, "linear", [float(t.value) for t in kept]))
    numbers = [t.number for t in kept]
    skipped = len(done) - n_trials
    return ParallelInfo(record.objective, record.direction, numbers, axes, skipped, n_trials, best)


def plot_parallel_coordinates(record: StudyRecord) -> go.Figure:
    """Params of the complete trials against the objective, coloured by the objective.

    Log-scale params get a log10 axis labelled in decades; categorical ones integer
    positions labelled with their categories. The best colour is always the bright end.
    Past :data:`LINES_SHOWN` trials, the best and a sample are drawn, as the subtitle says.
    """
    info = get_parallel_info(record, limit=LINES_SHOWN, n_best=LINES_BEST)
    hidden = {"complete without a finite value": info.n_skipped}
    subtitle = _subtitle(record, _objective_label(record), hidden)
    if len(info.numbers) < info.n_trials:
        subtitle += (
            f" · showing {len(info.numbers):,} of {info.n_trials:,} trials: "
            f"the best {info.n_best:,} and a sample"
        )
    fig = _style(go.Figure(), "Parallel coordinates", subtitle)
    if not info.numbers:
        return _message(fig, f"No complete trial with a finite {info.objective} yet.")
    dims = []
    for axis in info.axes:
        values = compact_array(axis.values)  # drawn only: parcoords shows no values
        dim: dict[str, Any] = {"label": html.escape(axis.label), "values": values}
        if axis.tickvals is not None:
            dim["tickvals"] = axis.tickvals
            dim["ticktext"] = axis.ticktext  # drawn as plain text: no escaping
        if axis.range is not None:
            dim["range"] = list(axis.range)
        dims.append(dim)
    line = {
        "color": float_array(info.axes[-1].values),
        "colorscale": "Viridis",
        "reversescale": info.direction == "minimize",
        "showscale": True,
        "colorbar": {"title": {"text": html.escape(info.objective)}, "thickness": 14, "x": 1.04},
    }
    fig.add_trace(go.Parcoords(dimensions=dims, line=line, labelangle=-20, labelside="top"))
    fig.update_layout(margin={"l": 80, "r": 110, "t": 150, "b": 40})
    return fig
