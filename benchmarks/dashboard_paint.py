"""First paint of the live dashboard's study page, against a floor and optuna-dashboard.

For studies of ``--sizes`` finished trials (10,000 and 100,000 by default), written by
:func:`read_path.make_study` and kept in ``--cache-dir`` between runs, this script serves
on the same SQLite file, each from Werkzeug's threaded server (``make_server``) in a child
process of its own, so that what a server still computes after a measurement (a study
loading, importance) is stopped with it:

- ``floor``: a Dash app with one ``dcc.Graph`` of a one-point scatter in its layout
  (plotly.js served as the dashboard serves it: ``serve_locally``, loaded by dcc.Graph);
- ``floor_routed``: the same figure returned by a callback on ``dcc.Location``, the round
  trips every dashboard page makes (layout, dependencies, then the page callback);
- ``ours``: :func:`dashboard.app.create_app` over :func:`studies.readonly.open_readonly`,
  page ``/study/big``;
- ``optuna``: ``optuna_dashboard.wsgi(url)``, page ``/dashboard/studies/<id>``, up to
  ``--optuna-max`` trials; above it one try, after everything else, with
  ``--optuna-timeout``.

Headless Chromium (``/usr/bin/chromium``, driven by Playwright's sync API) loads each page
``--repeats`` times cold (a new browser context, so an empty HTTP cache, and a new server,
so empty server caches) and each time once more warm (a new page in the same context and
server). An init script stamps ``performance.now()`` (ms from navigation start) from a
MutationObserver (and a 100 ms timer) the first time a figure is drawn:

- *first figure*: the graph's ``.main-svg`` is there and it shows points (an SVG
  ``.scatterlayer .point``, or a WebGL trace with data and its ``.gl-container`` canvas):
  ``#fig-floor``, ``#fig-history``, optuna-dashboard's ``#plot-history``;
- *all figures* (ours only): every figure of the page (history, importance, curves,
  parallel, timeline, overhead) is drawn and none still says "Reading N trials…".

The warm page then times the trials table (AG Grid, rows from the server): a click on the
objective's header (ascending, descending, unsorted) and on next / last / first page, each
until the first row shows another trial. Without a browser (:mod:`dashboard_server`) it
times what the study page costs on the server (outline, summary, settings, columns, the
history figure, the page as first sent and the rest of it, and their JSON; then the
background load, importance, and the figures drawn from the whole study), a live poll
that finds nothing new (``--polls`` times), and ``archtune ls`` / ``archtune show big`` as
subprocesses and in-process.

:func:`read_path.make_study` stores a placeholder search space (``{"note": "synthetic"}``)
that ``archtune show`` rejects when it prints the best configuration; the cached database
has it removed, so the study reads as one without a recorded space.

Rerun (from the repository root; about an hour on 2 shared cores, mostly at 100,000)::

    .venv/bin/python benchmarks/dashboard_paint.py --json benchmarks/results/dashboard_paint.json
    .venv/bin/python benchmarks/dashboard_paint.py --quick   # 2,000 trials, once: < 2 min

Each server process imports the packages afresh, so a checkout that changes during the
run (an hour) is measured at several commits. To measure one commit, run it from a clone
with the clone first on ``PYTHONPATH`` (the ``archtune`` subprocesses inherit it)::

    git clone -q /work/main /tmp/at && cp benchmarks/dashboard_paint.py /tmp/at/benchmarks/
    cd /tmp/at && ln -s /work/main/.venv .venv && PYTHONPATH=$PWD .venv/bin/python \\
        benchmarks/dashboard_paint.py --json benchmarks/results/dashboard_paint.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import dash
import machine_info
import optuna
import optuna_dashboard
import plotly.graph_objects as go
import read_path
import sqlalchemy as sa
from dash import Input, Output, dcc
from dash import html as h
from dashboard_server import (
    _cli_line,
    _server_line,
    median,
    poll_and_cli,
    server_costs,
)
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from werkzeug.serving import make_server

from dashboard.app import create_app
from studies import reads_sql as q
from studies.readonly import open_readonly
from studies.records import ATTR_SPACE
from studies.storage import open_storage

NAME = read_path.NAME
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FIGURES = ("fig-history", "fig-importance", "fig-curves", "fig-parallel", "fig-timeline")
FIGURES += ("fig-overhead",)
_MP = multiprocessing.get_context("forkserver")  # children: new interpreters, not forks

# Stamps performance.now() the first time each check holds. __CHECKS__: [[name, kind, id]].
PAINT_JS = """(() => {
  const checks = __CHECKS__;
  window.__paint = {};
  const plotOf = (id) => {
    const el = document.getElementById(id);
    if (!el) return null;
    return el.classList.contains('js-plotly-plot') ? el : el.querySelector('.js-plotly-plot');
  };
  const points = (gd) => {
    if (!gd.querySelector('.main-svg')) return false;
    if (gd.querySelector('.scatterlayer .point')) return true;
    // _fullData: the traces as drawn (typed arrays decoded from their base64 form)
    const gl = (gd._fullData || []).some(t => String(t.type).endsWith('gl') && t.x && t.x.length);
    return gl && !!gd.querySelector('.gl-container canvas');
  };
  const settled = (gd) => !!gd.querySelector('.main-svg') && ![...gd.querySelectorAll(
    '.annotation-text')].some(a => /Reading [0-9,]+ trials/.test(a.textContent));
  const check = () => {
    const now = performance.now();
    for (const [name, kind, id] of checks) {
      if (name in window.__paint) continue;
      const gd = plotOf(id);
      if (gd && (kind === 'points' ? points(gd) : settled(gd))) window.__paint[name] = now;
    }
  };
  new MutationObserver(check).observe(document, {childList: true, subtree: true,
                                                  characterData: true});
  setInterval(check, 100);
})();"""

# Where the time went before the first figure: navigation, scripts, Dash's and the API's
# requests (ttfb: request start to first byte, i.e. server time; end: ms from navigation).
RESOURCES_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const pick = (re) => res.filter(r => re.test(r.name)).sort((a, b) => a.startTime -
    b.startTime).slice(0, 3).map(r => ({name: new URL(r.name).pathname,
    ttfb_ms: r.responseStart - r.requestStart, end_ms: r.responseEnd,
    bytes: r.encodedBodySize}));
  const js = res.filter(r => /\\.js(\\?|$)/.test(r.name)).map(r => r.responseEnd);
  return {html_end_ms: nav ? nav.responseEnd : null,
          dom_ready_ms: nav ? nav.domContentLoadedEventEnd : null,
          scripts_end_ms: js.length ? Math.max(...js) : null,
          dash: pick(/_dash-(layout|dependencies|update-component)/),
          api: pick(/\\/api\\/studies\\/[0-9]+(\\?|$)/)};
}"""

# Clicks `selector` and resolves with the ms until the grid's first row shows another trial.
GRID_JS = """async ([selector, timeout]) => {
  const first = () => {
    const rows = [...document.querySelectorAll(
      '#trials-grid .ag-pinned-left-cols-container .ag-row')];
    if (!rows.length) return null;
    rows.sort((a, b) => a.getAttribute('row-index') - b.getAttribute('row-index'));
    const cell = rows[0].querySelector('[col-id="number"]');
    return cell ? cell.textContent.trim() : null;
  };
  const before = first();
  const target = document.querySelector(selector);
  if (!target) return {ms: null, before, after: null, error: 'no ' + selector};
  return await new Promise((resolve) => {
    const t0 = performance.now();
    const calls = () => performance.getEntriesByType('resource').filter(r =>
      r.startTime >= t0 && /_dash-update-component/.test(r.name)).map(r => ({
      sent_ms: r.startTime - t0, ttfb_ms: r.responseStart - r.requestStart,
      received_ms: r.responseEnd - t0, bytes: r.encodedBodySize}));
    const obs = new MutationObserver(() => {
      const now = first();
      if (now && now !== before) {
        obs.disconnect();
        resolve({ms: performance.now() - t0, before, after: now, calls: calls()});
      }
    });
    obs.observe(document.querySelector('#trials-grid'),
                {childList: true, subtree: true, characterData: true});
    setTimeout(() => { obs.disconnect(); resolve({ms: null, before, after: first()}); },
               timeout);
    target.click();
  });
}"""

_HEADER = '#trials-grid .ag-header-cell[col-id="v0"] .ag-header-cell-text'
_PAGING = '#trials-grid .ag-paging-button[data-ref="{}"]'
GRID_ACTIONS = (  # (name, what is clicked): sort asc, desc, none; pages
    *[("sort", _HEADER)] * 3,
    *[("next_page", _PAGING.format("btNext"))] * 3,
    ("last_page", _PAGING.format("btLast")),
    ("first_page", _PAGING.format("btFirst")),
)


@dataclass(frozen=True)
class Target:
    """One page to load.

    Attributes:
        kind: ``floor``, ``floor_routed``, ``ours`` or ``optuna`` (see :func:`wsgi_app`).
        url: The study database.
        path: The page's path.
        first: The id of the figure whose points are the first paint.
        rest: Ids of the other figures, all drawn at "all figures".
        timeout_s: How long to wait for the first figure (then for all figures).
        poll_ms: The dashboard's poll interval.
        warm: Whether to load it warm too, after the cold load.
    """

    kind: str
    url: str
    path: str
    first: str
    rest: tuple[str, ...] = ()
    timeout_s: float = 60.0
    poll_ms: int = 3000
    warm: bool = True


def study_db(n: int, epochs: int, cache_dir: str) -> tuple[str, float | None]:
    """The SQLite URL of a study of ``n`` trials (made by :func:`read_path.make_study`
    unless cached; its placeholder space removed) and the seconds making it took (None:
    cached)."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"dashboard_paint_{n}_e{epochs}.db")
    made = None
    if not os.path.exists(path):
        partial = path + ".partial"
        if os.path.exists(partial):
            os.remove(partial)
        storage = open_storage(f"sqlite:///{partial}")
        t0 = time.perf_counter()
        read_path.make_study(storage, n, epochs)
        made = time.perf_counter() - t0
        storage.optuna.engine.dispose()
        storage.engine.dispose()
        os.replace(partial, path)
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        attrs = q.study_user_attributes
        conn.execute(sa.delete(attrs).where(attrs.c.key == ATTR_SPACE))
    engine.dispose()
    return url, made


def study_id(url: str) -> int:
    """The Optuna study id of :data:`NAME` in the database at ``url``."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = conn.scalar(sa.select(q.studies.c.study_id).where(q.studies.c.study_name == NAME))
    engine.dispose()
    return int(found)


def floor_app(routed: bool) -> dash.Dash:
    """A Dash app whose only figure is a one-point scatter (in the layout, or returned by
    a callback on the URL as the dashboard's pages are)."""
    app = dash.Dash(__name__, serve_locally=True, title="floor", update_title=None)
    fig = go.Figure(go.Scatter(x=[0], y=[0], mode="markers"))
    graph = dcc.Graph(id="fig-floor", figure=fig, config={"displaylogo": False})
    if not routed:
        app.layout = h.Div([graph])
        return app
    app.layout = h.Div([dcc.Location(id="url"), h.Main(id="page")])

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def route(_path: str | None) -> Any:
        return graph

    return app


def wsgi_app(kind: str, url: str, poll_ms: int) -> Any:
    """A new (cold) WSGI app of ``kind`` over the database at ``url``."""
    if kind in ("floor", "floor_routed"):
        return floor_app(kind == "floor_routed").server
    if kind == "ours":
        return create_app(open_readonly(url), poll_ms=poll_ms).server
    if kind == "optuna":
        return optuna_dashboard.wsgi(url)
    raise ValueError(f"Unknown page kind {kind!r}; use floor, floor_routed, ours or optuna.")


def _serve(kind: str, url: str, poll_ms: int, conn: Any) -> None:
    """Child process: serve a new ``kind`` app until terminated; sends the port."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    server = make_server("127.0.0.1", 0, wsgi_app(kind, url, poll_ms), threaded=True)
    conn.send(server.port)
    conn.close()
    server.serve_forever()


def _call(fn: Callable[..., Any], args: tuple[Any, ...], conn: Any) -> None:
    """Child process: send ``fn(*args)`` (or the error it raised)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        conn.send(fn(*args))
    except Exception as e:  # the parent records it
        conn.send({"error": f"{type(e).__name__}: {e}"})


@contextlib.contextmanager
def child(target: Callable[..., None], *args: Any) -> Iterator[Any]:
    """Run ``target(*args, conn)`` in a child process; yields the receiving end of
    ``conn``; the child is terminated on exit."""
    receive, send = _MP.Pipe(duplex=False)
    proc = _MP.Process(target=target, args=(*args, send), daemon=True)
    proc.start()
    send.close()
    try:
        yield receive
    finally:
        proc.terminate()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def in_child(fn: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
    """``fn(*args)`` computed in a child process, or an error after ``timeout_s``."""
    with child(_call, fn, args) as receive:
        if receive.poll(timeout_s):
            return receive.recv()
        return {"error": f"not done within {timeout_s:.0f} s"}


def targets(url: str, n: int, args: argparse.Namespace) -> list[Target]:
    """The pages measured at one study size (optuna-dashboard up to ``--optuna-max``;
    with ``--quick``, only our page is loaded warm too)."""
    out = [
        Target("floor", url, "/", "fig-floor"),
        Target("floor_routed", url, "/", "fig-floor"),
        Target(
            "ours",
            url,
            f"/study/{quote(NAME, safe='')}",
            "fig-history",
            FIGURES[1:],
            args.all_timeout,
            args.poll_ms,
        ),
    ]
    if n <= args.optuna_max:
        path = f"/dashboard/studies/{study_id(url)}"
        out.append(Target("optuna", url, path, "plot-history", timeout_s=args.optuna_timeout))
    if args.quick:  # warm loads of our page only (they time the trials table)
        out = [t if t.kind == "ours" else replace(t, warm=False) for t in out]
    return out


def load_page(page: Page, port: int, target: Target) -> dict[str, Any]:
    """Load ``target``'s page; when its first figure and all its figures were drawn (ms
    from navigation start; None: not within the timeout), and its requests."""
    page.goto(f"http://127.0.0.1:{port}{target.path}", wait_until="commit")
    out: dict[str, Any] = {"first_ms": None, "all_ms": None}
    names = ["first", *target.rest]
    try:
        page.wait_for_function(
            "() => 'first' in (window.__paint || {})", timeout=target.timeout_s * 1000
        )
        if target.rest:
            page.wait_for_function(
                "names => names.every(n => n in window.__paint)",
                arg=names,
                timeout=target.timeout_s * 1000,
                polling=250,
            )
    except PlaywrightTimeout:
        out["timeout_s"] = target.timeout_s
    paint = page.evaluate("() => window.__paint || {}")
    out["first_ms"] = paint.get("first")
    if target.rest and all(k in paint for k in names):
        out["all_ms"] = max(paint[k] for k in names)
    out["figures_ms"] = paint
    out["resources"] = page.evaluate(RESOURCES_JS)
    out["load_1min"] = os.getloadavg()[0]  # other jobs on a shared machine
    return out


def grid_clicks(page: Page, timeout_ms: int = 30_000) -> dict[str, list[dict[str, Any]]]:
    """Time each of :data:`GRID_ACTIONS` on the loaded study page."""
    page.wait_for_function(
        "() => { const c = document.querySelector('#trials-grid .ag-pinned-left-cols-container"
        " [col-id=\"number\"]'); return c && c.textContent.trim() !== ''; }",
        timeout=timeout_ms,
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for name, selector in GRID_ACTIONS:
        found = page.evaluate(GRID_JS, [selector, timeout_ms])
        out.setdefault(name, []).append(found)
        page.wait_for_timeout(300)
    return out


def measure_target(browser: Browser, target: Target, grid: bool) -> dict[str, Any]:
    """One cold load (new server, new browser context) and one warm load of ``target``
    (the cold only, if it timed out)."""
    checks = [["first", "points", target.first]] + [[f, "settled", f] for f in target.rest]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(PAINT_JS.replace("__CHECKS__", json.dumps(checks)))
    out: dict[str, Any] = {}
    try:
        with child(_serve, target.kind, target.url, target.poll_ms) as receive:
            if not receive.poll(120):
                raise RuntimeError(f"the {target.kind} server did not start in 120 s")
            port = receive.recv()
            for phase in ("cold", "warm"):
                page = context.new_page()
                out[phase] = run = load_page(page, port, target)
                if grid and phase == "warm" and run["all_ms"] is not None:
                    run["grid"] = grid_clicks(page)
                page.close()
                if "timeout_s" in run or not target.warm:
                    break  # (timed out: the server is still busy, a warm load would wait)
    finally:
        context.close()
    return out


def browser_runs(
    browser: Browser, pages: list[Target], repeats: int
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``repeats`` rounds of cold+warm loads of every page, in a rotating order."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {t.kind: {} for t in pages}
    for rep in range(repeats):
        for target in pages[rep % len(pages) :] + pages[: rep % len(pages)]:
            found = measure_target(browser, target, grid=target.kind == "ours")
            for phase, run in found.items():
                out[target.kind].setdefault(phase, []).append(run)
            print(f"    {target.kind:<13} round {rep + 1}: {_runs_line(found)}", flush=True)
            time.sleep(1)
    return out


def _runs_line(found: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v:,.0f} ms"

    return "; ".join(
        f"{p} first {ms(r['first_ms'])}, all {ms(r['all_ms'])}" for p, r in found.items()
    )


def summarize(pages: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Medians of first / all figures per page and phase, the ratios to the floors and to
    optuna-dashboard, and the grid's click times."""
    out: dict[str, Any] = {}
    for name, phases in pages.items():
        for phase, runs in phases.items():
            out[f"{name}_{phase}_first_ms"] = median([r["first_ms"] for r in runs])
            if name == "ours":
                out[f"{name}_{phase}_all_ms"] = median([r["all_ms"] for r in runs])
    for phase in ("cold", "warm"):
        ours = out.get(f"ours_{phase}_first_ms")
        for base in ("floor", "floor_routed", "optuna"):
            other = out.get(f"{base}_{phase}_first_ms")
            if ours is not None and other:
                out[f"ours_over_{base}_{phase}"] = ours / other
    clicks: dict[str, list[float | None]] = {}
    for run in pages.get("ours", {}).get("warm", []):
        for action, found in run.get("grid", {}).items():
            if action == "sort":  # the first click meets a page that may still be busy
                clicks.setdefault("first_sort", []).append(found[0]["ms"])
                found = found[1:]
            clicks.setdefault(action, []).extend(f["ms"] for f in found)
    for action, values in clicks.items():
        out[f"grid_{action}_ms"] = median(values)
    return out


def optuna_try(browser: Browser, url: str, n: int, timeout_s: float) -> dict[str, Any]:
    """One cold load of optuna-dashboard at a size its maintainers do not support."""
    path = f"/dashboard/studies/{study_id(url)}"
    target = Target("optuna", url, path, "plot-history", timeout_s=timeout_s)
    found = measure_target(browser, target, grid=False)["cold"]
    if found["first_ms"] is None:
        found["note"] = f"did not draw within {timeout_s:.0f} s"
    print(f"    optuna at {n:,}: {found.get('note') or _runs_line({'cold': found})}", flush=True)
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--quick", action="store_true", help="2,000 trials, once, warm: ours")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="cold+warm loads of each page")
    p.add_argument("--polls", type=int, default=20, help="idle polls timed")
    p.add_argument("--poll-ms", type=int, default=3000, help="the dashboard's poll interval")
    p.add_argument("--all-timeout", type=float, default=300.0, help="s to wait for all figures")
    p.add_argument("--server-timeout", type=float, default=1200.0, help="s for server costs")
    p.add_argument("--optuna-max", type=int, default=10_000, help="largest size it is loaded")
    p.add_argument("--optuna-timeout", type=float, default=180.0, help="s to wait for it")
    p.add_argument(
        "--cache-dir",
        default=os.path.join(tempfile.gettempdir(), "archtune-bench"),
        help="generated study databases are kept here",
    )
    p.add_argument("--json", help="write results here")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.polls = [2000], 1, 5
    return args


def measure_size(browser: Browser, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Everything at one study size except optuna-dashboard above ``--optuna-max``."""
    url, made = study_db(n, args.epochs, args.cache_dir)
    print(f"{n:,} trials ({'cached' if made is None else f'made in {made:.0f} s'})")
    out: dict[str, Any] = {"trials": n, "make_s": made, "url": url}
    out["server"] = in_child(server_costs, url, n, args.repeats, timeout_s=args.server_timeout)
    print(f"  server: {_server_line(out['server'])}", flush=True)
    out["poll_cli"] = poll_and_cli(url, args.polls, args.repeats)
    print(f"  poll/cli: {_cli_line(out['poll_cli'])}", flush=True)
    out["pages"] = browser_runs(browser, targets(url, n, args), args.repeats)
    out["summary"] = summarize(out["pages"])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    modules = ["dash", "plotly", "dash_ag_grid", "optuna", "optuna_dashboard", "sqlalchemy"]
    result = machine_info.header(
        "dashboard_paint", argv, modules, ".venv/bin/python benchmarks/dashboard_paint.py"
    )
    result["settings"] = {k: v for k, v in vars(args).items() if k not in ("json", "cache_dir")}
    result["sizes"] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        result["machine"]["chromium"] = browser.version
        result["machine"]["playwright"] = importlib.metadata.version("playwright")
        for n in args.sizes:
            result["sizes"][str(n)] = measure_size(browser, n, args)
            _save(args, result)
        for n in args.sizes:  # last: a server reading 100,000 trials the old way is slow
            if n > args.optuna_max:
                url = result["sizes"][str(n)]["url"]
                found = optuna_try(browser, url, n, args.optuna_timeout)
                result["sizes"][str(n)]["optuna_try"] = found
                _save(args, result)
        browser.close()
    print_table(result)
    return result


def _save(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        machine_info.write_json(args.json, result, indent=1)


def print_table(result: dict[str, Any]) -> None:
    """Medians (ms from navigation start) of every page and phase, per size."""

    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v:,.0f}"

    rows = [
        ("floor: one-point figure", "floor", "first"),
        ("floor via a page callback", "floor_routed", "first"),
        ("ours: first figure (history)", "ours", "first"),
        ("ours: all figures", "ours", "all"),
        ("optuna-dashboard: history", "optuna", "first"),
    ]
    head = "".join(f"{n + ' cold':>14}{'warm':>8}" for n in result["sizes"])
    print(f"\n{'median ms from navigation':<32}{head}")
    for label, name, what in rows:
        cells = ""
        for size in result["sizes"].values():
            s = size.get("summary", {})
            for phase in ("cold", "warm"):
                value = s.get(f"{name}_{phase}_{what}_ms")
                if name == "optuna" and phase == "cold" and "optuna_try" in size:
                    value = size["optuna_try"]["first_ms"]
                cells += f"{ms(value):>{14 if phase == 'cold' else 8}}"
        print(f"{label:<32}{cells}")
    for n, size in result["sizes"].items():
        s = size.get("summary", {})
        ratios = {k: round(v, 2) for k, v in s.items() if k.startswith("ours_over")}
        grid = {k: None if v is None else round(v) for k, v in s.items() if k.startswith("grid")}
        print(f"{n}: {ratios}\n{n}: {grid}")


if __name__ == "__main__":
    main()
