"""Views of a recorded study: Plotly figures, a static HTML report, and the live Dash app
(``archtune dashboard``: :mod:`dashboard.app`).

Every figure (history, parallel coordinates, importance, learning curves, timeline,
overhead, the network of a trial and, for several objectives, the Pareto front) is a
pure ``get_*_info(record)`` data step plus a ``plot_*(record)`` renderer, both taking a
:class:`studies.records.StudyRecord`, so they are testable without a database or a
browser; the report and the app draw the same figures.

Example:
    >>> from studies.records import StudyRecord, TrialRecord
    >>> from dashboard import plot_history, write_report
    >>> record = StudyRecord("demo", "maximize", "val_acc", None, [
    ...     TrialRecord(0, "COMPLETE", {"model/depth": 2}, 0.81, {1: 0.7, 2: 0.81}),
    ...     TrialRecord(1, "PRUNED", {"model/depth": 4}, None, {1: 0.5}),
    ... ])
    >>> fig = plot_history(record)
    >>> write_report(record, "demo.html")  # doctest: +SKIP
    PosixPath('demo.html')
"""

from dashboard.curves import Curve, CurvesInfo, get_curves_info, plot_learning_curves
from dashboard.figures import (
    ParallelAxis,
    ParallelInfo,
    get_parallel_info,
    plot_parallel_coordinates,
)
from dashboard.history import HistoryInfo, HistoryPoint, get_history_info, plot_history
from dashboard.importance import (
    EVALUATORS,
    ImportanceInfo,
    ObjectiveImportance,
    get_importance_info,
    plot_importance,
)
from dashboard.network import NetworkBlock, NetworkInfo, get_network_info, plot_network
from dashboard.overhead import OverheadInfo, get_overhead_info, plot_overhead
from dashboard.pareto import (
    ParetoAxis,
    ParetoInfo,
    ParetoPoint,
    get_pareto_info,
    plot_pareto,
)
from dashboard.report import render_report, write_report
from dashboard.timeline import (
    TimelineBar,
    TimelineInfo,
    TimelineLane,
    get_timeline_info,
    pack_lanes,
    plot_timeline,
)

__all__ = [
    "EVALUATORS",
    "Curve",
    "CurvesInfo",
    "HistoryInfo",
    "HistoryPoint",
    "ImportanceInfo",
    "NetworkBlock",
    "NetworkInfo",
    "ObjectiveImportance",
    "OverheadInfo",
    "ParallelAxis",
    "ParallelInfo",
    "ParetoAxis",
    "ParetoInfo",
    "ParetoPoint",
    "TimelineBar",
    "TimelineInfo",
    "TimelineLane",
    "get_curves_info",
    "get_history_info",
    "get_importance_info",
    "get_network_info",
    "get_overhead_info",
    "get_parallel_info",
    "get_pareto_info",
    "get_timeline_info",
    "pack_lanes",
    "plot_history",
    "plot_importance",
    "plot_learning_curves",
    "plot_network",
    "plot_overhead",
    "plot_parallel_coordinates",
    "plot_pareto",
    "plot_timeline",
    "render_report",
    "write_report",
]
