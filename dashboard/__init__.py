"""Views of a recorded study: Plotly figures and a self-contained static HTML report.

Every figure (history, parallel coordinates, learning curves and, for several
objectives, the Pareto front) is a pure ``get_*_info(record)`` data step plus a
``plot_*(record)`` renderer, both taking a :class:`studies.records.StudyRecord`, so they
are testable without a database or a browser.

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
    HistoryInfo,
    HistoryPoint,
    ParallelAxis,
    ParallelInfo,
    get_history_info,
    get_parallel_info,
    plot_history,
    plot_parallel_coordinates,
)
from dashboard.pareto import (
    ParetoAxis,
    ParetoInfo,
    ParetoPoint,
    get_pareto_info,
    plot_pareto,
)
from dashboard.report import render_report, write_report

__all__ = [
    "Curve",
    "CurvesInfo",
    "HistoryInfo",
    "HistoryPoint",
    "ParallelAxis",
    "ParallelInfo",
    "ParetoAxis",
    "ParetoInfo",
    "ParetoPoint",
    "get_curves_info",
    "get_history_info",
    "get_parallel_info",
    "get_pareto_info",
    "plot_history",
    "plot_learning_curves",
    "plot_parallel_coordinates",
    "plot_pareto",
    "render_report",
    "write_report",
]
