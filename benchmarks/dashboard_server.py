"""The server side of :mod:`dashboard_paint`: what the study page costs without a browser.

In-process timings of the study page's reads and figures (the outline, the page as first
sent, the rest of it, the background load, importance, the later figures, the trials
table's rows), a live poll that finds nothing, and ``archtune ls`` / ``show`` as
subprocesses and in-process. :mod:`dashboard_paint` runs them beside its browser loads
and writes them into the same results.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import read_path
from dash._utils import to_json

from dashboard.context import Context
from dashboard.curves import plot_learning_curves
from dashboard.figures import plot_parallel_coordinates
from dashboard.history import plot_history
from dashboard.overhead import plot_overhead
from dashboard.page_study import _importance
from dashboard.page_study import layout as study_layout
from dashboard.page_study import rest as study_rest
from dashboard.study_panels import columns, grid_request, grid_row
from dashboard.timeline import plot_timeline
from studies import cli
from studies.readonly import open_readonly
from studies.reads import StudyReader

NAME = read_path.NAME
BIN = os.path.dirname(sys.executable)  # the venv's bin: python and archtune


def median(values: list[float | None]) -> float | None:
    """The median of the values that are not None (None if there are none)."""
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def timed(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Median and runs of ``fn()``'s wall time in milliseconds."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": statistics.median(runs), "runs_ms": runs}


def server_costs(url: str, n: int, repeats: int) -> dict[str, Any]:
    """What the study page's callback does on the server; then the background load of the
    whole study, importance, and the figures drawn from the whole study."""
    storage = open_readonly(url)
    ctx = Context(StudyReader(storage), storage.shown, 3000)
    r = ctx.reader
    out: dict[str, Any] = {
        "outline": timed(lambda: r.outline(NAME), repeats),
        "summary": timed(lambda: r.summary(NAME), repeats),
        "settings": timed(lambda: r.settings(NAME), repeats),
        "columns": timed(lambda: columns(ctx, NAME), repeats),
    }
    outline = r.outline(NAME)
    out["plot_history"] = timed(lambda: plot_history(outline), repeats)
    fig = plot_history(outline)
    out["history_json"] = timed(fig.to_json, repeats) | {"bytes": len(fig.to_json())}
    cold = Context(StudyReader(storage), storage.shown, 3000)  # nothing loaded yet
    t0 = time.perf_counter()
    built = study_layout(cold, NAME)
    out["layout_cold"] = {"ms": (time.perf_counter() - t0) * 1000}
    out["layout_cold"]["json_bytes"] = len(to_json(built))
    t1 = time.perf_counter()  # then the callback that sends the rest of the page
    later = study_rest(cold, NAME, n)  # (starts the background load past SMALL)
    out["rest_cold"] = {"ms": (time.perf_counter() - t1) * 1000, "json_bytes": len(to_json(later))}
    record = cold.live.wait(NAME).record
    out["background_load_ms"] = (time.perf_counter() - t0) * 1000
    _importance(cold, NAME, record)  # as the importance callback does (rest, up to SMALL)
    cold.cache.wait(NAME, sum(t.state == "COMPLETE" for t in record.trials))
    out["importance_ready_ms"] = (time.perf_counter() - t0) * 1000
    out["layout_warm"] = timed(lambda: study_layout(cold, NAME), repeats)
    out["layout_warm"]["json_bytes"] = len(to_json(study_layout(cold, NAME)))
    out["later_figures"] = later_figures(record)
    out["grid_rows"] = grid_server(ctx, n, repeats)
    return out


def later_figures(record: Any) -> dict[str, Any]:
    """Time and JSON size of each figure drawn from the whole study (once each)."""
    out: dict[str, Any] = {}
    plots = {
        "curves": plot_learning_curves,
        "parallel": plot_parallel_coordinates,
        "timeline": plot_timeline,
        "overhead": plot_overhead,
        "history_full": plot_history,
    }
    for key, plot in plots.items():
        t0 = time.perf_counter()
        fig = plot(record)
        ms = (time.perf_counter() - t0) * 1000
        out[key] = {"ms": ms, "json_bytes": len(fig.to_json())}
    return out


def grid_server(ctx: Context, n: int, repeats: int) -> dict[str, Any]:
    """The trials table's rows callback on the server: columns, page, rows."""
    sort = [{"colId": "v0", "sort": "asc"}]
    requests = {
        "first_block": {"startRow": 0, "endRow": 100},
        "sorted_block": {"startRow": 0, "endRow": 100, "sortModel": sort},
        "last_block": {"startRow": max(n - 100, 0) // 100 * 100, "endRow": n},
    }

    def rows(request: dict[str, Any]) -> None:
        cols = columns(ctx, NAME)
        page = ctx.reader.page(NAME, **grid_request(cols, request))
        [grid_row(cols, t) for t in page.record.trials]

    out = {k: timed(lambda r=r: rows(r), repeats) for k, r in requests.items()}
    out["columns_per_request"] = timed(lambda: columns(ctx, NAME), repeats)
    return out


def poll_and_cli(url: str, polls: int, repeats: int) -> dict[str, Any]:
    """A live poll that finds nothing new; ``archtune ls`` / ``show`` as subprocesses and
    in-process; the start-up (Python and imports) a subprocess pays."""
    reader = StudyReader(open_readonly(url))
    t0 = time.perf_counter()
    cursor = reader.poll(NAME).cursor
    out: dict[str, Any] = {"first_poll_ms": (time.perf_counter() - t0) * 1000}
    out["poll_idle"] = timed(lambda: reader.poll(NAME, cursor), polls)
    reader.storage.engine.dispose()
    commands = {"ls": ["ls", "--storage", url], "show": ["show", NAME, "--storage", url]}
    for key, argv in commands.items():
        out[f"{key}_subprocess"] = _subprocess_runs(
            [os.path.join(BIN, "archtune"), *argv], repeats
        )
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cli.main(argv)  # warm-up: lazy imports
            out[f"{key}_in_process"] = timed(lambda a=argv: cli.main(a), repeats)
    imports = [os.path.join(BIN, "python"), "-c", "import studies.cli, studies.cli_views"]
    out["python_and_imports_subprocess"] = _subprocess_runs(imports, repeats)
    # main() imports what every command needs (Ray Tune among them) before it parses
    out["archtune_help_subprocess"] = _subprocess_runs(
        [os.path.join(BIN, "archtune"), "-h"], repeats
    )
    return out


def _subprocess_runs(argv: list[str], repeats: int) -> dict[str, Any]:
    """Wall time of ``repeats`` runs of the command ``argv``, its exit codes, and the end of
    its standard error when it failed."""
    done: list[subprocess.CompletedProcess[bytes]] = []
    out = timed(lambda: done.append(subprocess.run(argv, capture_output=True)), repeats)
    out["exit_codes"] = [d.returncode for d in done]
    if any(out["exit_codes"]):
        out["stderr"] = done[-1].stderr.decode(errors="replace")[-500:]
    return out


def _server_line(s: dict[str, Any]) -> str:
    if "error" in s:
        return s["error"]
    return (
        f"outline {s['outline']['median_ms']:.0f} ms, layout cold "
        f"{s['layout_cold']['ms']:.0f} ms ({s['layout_cold']['json_bytes'] / 1e6:.1f} MB), "
        f"warm {s['layout_warm']['median_ms']:.0f} ms "
        f"({s['layout_warm']['json_bytes'] / 1e6:.1f} MB); whole study loaded at "
        f"{s['background_load_ms'] / 1000:.1f} s, importance at "
        f"{s['importance_ready_ms'] / 1000:.1f} s"
    )


def _cli_line(c: dict[str, Any]) -> str:
    return (
        f"poll {c['poll_idle']['median_ms']:.2f} ms, ls {c['ls_subprocess']['median_ms']:.0f} "
        f"ms ({c['ls_in_process']['median_ms']:.0f} in-process), show "
        f"{c['show_subprocess']['median_ms']:.0f} ms ({c['show_in_process']['median_ms']:.0f}), "
        f"python + imports {c['python_and_imports_subprocess']['median_ms']:.0f} ms"
    )
