"""``archtune dashboard``: a read-only Dash app over a study database.

Pages: ``/`` the studies, ``/study/<name>`` a study, ``/study/<name>/trial/<number>`` a
trial (names URL-quoted). Every read goes through :class:`~studies.reads.StudyReader` on a
database opened read-only (:func:`~studies.readonly.open_readonly`); figures are the same
pure functions the static report draws. A page refreshes by itself every ``poll_ms``
while it is open, fetching only what changed (:mod:`dashboard.live`).

Everything a user typed (study names, parameters, errors) reaches the page as text: Dash
renders strings as text nodes, the grid as text cells, and Plotly's hover labels get
escaped text (:func:`dashboard.figures._hover`); the server-side 404 page escapes with
``html.escape``. The storage URL is shown only with its password hidden.

Example:
    >>> import os, tempfile, optuna
    >>> from studies.readonly import open_readonly
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "d.db")
    >>> optuna.create_study(study_name="s", storage=url).optimize(lambda t: 1.0, n_trials=1)
    >>> app = create_app(open_readonly(url))
    >>> app.server.test_client().get("/study/nope").status_code
    404
"""

from __future__ import annotations

import csv
import html
import io
import pathlib
import sys
import threading
from collections.abc import Collection, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import dash
import flask
import optuna
from dash import Input, Output, State, dcc
from dash import html as h

from dashboard import page_home, page_study, page_trial
from dashboard.context import Context
from dashboard.paths import parse_path, study_path, trial_path
from dashboard.study_panels import columns, grid_row
from studies.readonly import ReadOnlyStorage
from studies.reads import StudyReader
from studies.storage import StorageError

__all__ = ["create_app"]

_ASSETS = pathlib.Path(__file__).with_name("assets")


def create_app(
    storage: ReadOnlyStorage, *, poll_ms: int = 3000, hosts: Collection[str] | None = None
) -> dash.Dash:
    """The dashboard over ``storage``: a Dash app (``app.server`` is its Flask server).

    Args:
        storage: The database, opened with :func:`~studies.readonly.open_readonly`.
        poll_ms: How often an open page looks for changes, in milliseconds.
        hosts: The host names a request may be addressed to (None: any). A server on
            127.0.0.1 answers only ``localhost`` and loopback addresses, so a web page
            elsewhere cannot read it through a DNS name rebound to 127.0.0.1.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # importance's in-memory studies
    app = dash.Dash(
        __name__,
        index_string=_INDEX,
        assets_folder=str(_ASSETS),
        title="archtune",
        update_title=None,
        suppress_callback_exceptions=True,
        serve_locally=True,
        on_error=_callback_failed,
    )
    ctx = Context(StudyReader(storage), storage.shown, poll_ms)
    app.server.config["archtune"] = ctx  # serve() closes it
    app.layout = lambda: _frame(ctx)

    @app.callback(
        Output("page", "children"),
        Output("drawn-path", "data"),
        Input("url", "pathname"),
        State("drawn-path", "data"),
    )
    def route(pathname: str | None, drawn: str | None) -> Any:
        forget = dash.no_update if drawn is None else None
        if drawn is not None and pathname == drawn:
            return dash.no_update, forget  # the layout came with this page in it
        return render(ctx, parse_path(pathname)), forget

    threading.Thread(target=page_study.warm, daemon=True).start()
    page_home.register(app, ctx)
    page_study.register(app, ctx)
    page_trial.register(app, ctx)
    _server_routes(app.server, ctx, hosts)
    return app


# Dash's page, and one script: plotly.js (4.8 MB) starts loading with the page, beside
# the layout's request, instead of when the first figure mounts: 0.3 to 0.6 s sooner here
# (the studies list draws none, but the browser then has it for the next page). dcc.Graph
# waits on ``window.Plotly`` when it is set (a thenable here, until plotly.js replaces it
# with itself), else appends the same script once it mounts.
_INDEX = """<!DOCTYPE html>
<html>
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            <script>
            (function () {
                var config = JSON.parse(document.getElementById("_dash-config").textContent);
                var src = (config.requests_pathname_prefix || "/") +
                    "_dash-component-suites/plotly/package_data/plotly.min.js";
                window.Plotly = new Promise(function (resolve, reject) {
                    var script = document.createElement("script");
                    script.src = src;
                    script.onload = function () { resolve(); };
                    script.onerror = reject;
                    document.head.appendChild(script);
                });
            })();
            </script>
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""


def _frame(ctx: Context) -> h.Div:
    """The app's layout: the header, and the page the browser asked for already in it.

    The layout is fetched by the page the browser loaded, so its ``Referer`` names that
    page: rendering it here saves the round trip of the routing callback (a page load
    then needs one request, not two, before anything is drawn). Without a ``Referer``
    (a browser set to send none) the page comes from the routing callback as after any
    link.
    """
    path = _loaded_path() if flask.has_request_context() else None
    page = None
    if path is not None:
        try:
            page = render(ctx, parse_path(path))
        except Exception as e:  # the routing callback tries again, and reports it
            _report(f"{type(e).__name__}: {e}" if not isinstance(e, StorageError) else str(e))
            path = None
    return h.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Store(id="drawn-path", data=path),
            h.Header(
                [
                    dcc.Link("archtune", href="/", className="brand"),
                    h.Span(ctx.shown, className="storage", title="study database"),
                ],
                className="top",
            ),
            h.Main(page, id="page"),
        ]
    )


def _loaded_path() -> str | None:
    """The (still quoted) path of the page whose layout is asked, from the ``Referer``
    of the request, if it is this server's own page."""
    referrer = flask.request.headers.get("Referer")
    if not referrer:
        return None
    parts = urlsplit(referrer)
    if parts.netloc != flask.request.host or parts.scheme not in ("http", "https"):
        return None
    return parts.path or "/"


_last_error: list[str] = [""]


def _report(message: str) -> None:
    """One line on stderr, not repeated while the same error recurs (each poll)."""
    if message != _last_error[0]:
        _last_error[0] = message
        print(f"archtune dashboard: {message}", file=sys.stderr, flush=True)


def _callback_failed(error: Exception) -> None:
    """A callback that raised (the database went away, a study was deleted): one line on
    stderr, and the page keeps what it shows; the next poll tries again."""
    _report(
        f"{type(error).__name__}: {error}" if not isinstance(error, StorageError) else str(error)
    )


def render(ctx: Context, where: tuple[str, ...]) -> h.Div:
    """The page ``where`` (of :func:`parse_path`) names, or the 404 page."""
    try:
        if where[0] == "home":
            return page_home.layout(ctx)
        if where[0] == "study":
            return page_study.layout(ctx, where[1])
        if where[0] == "trial":
            return page_trial.layout(ctx, where[1], where[2])
    except KeyError as e:
        study = where[1] if where[0] == "trial" and where[1] in ctx.reader.names() else None
        return not_found(ctx, str(e.args[0]) if e.args else str(e), study)
    return not_found(ctx, f"No page at {where[1]!r}.")


def not_found(ctx: Context, message: str, study: str | None = None) -> h.Div:
    """The 404 page: what was not found, and links to what exists."""
    if study is None:
        names = ctx.reader.names()
        links = [h.Li(dcc.Link(n, href=study_path(n))) for n in names]
        what = f"The studies in {ctx.shown}:" if names else f"{ctx.shown} holds no study yet."
    else:
        n = ctx.reader.summary(study).n_trials
        links = [
            h.Li(dcc.Link(f"trial {i}", href=trial_path(study, i))) for i in range(min(n, 50))
        ]
        what = f"Study {study!r} has {n} trials" + (" (the first 50):" if n > 50 else ":")
    return h.Div(
        [h.H1("Not found"), h.P(message, className="err"), h.P(what), h.Ul(links)],
        className="card notfound",
    )


def _missing(ctx: Context, where: tuple[str, ...]) -> str | None:
    """Why the page ``where`` names does not exist, or None if it does."""
    if where[0] == "unknown":
        return f"No page at {where[1]!r}."
    if where[0] == "home":
        return None
    names = ctx.reader.names()
    if where[1] not in names:
        return f"No study named {where[1]!r}."
    if where[0] == "trial":
        try:
            ctx.reader.trial(where[1], int(where[2]))
        except (KeyError, ValueError):
            return f"Study {where[1]!r} has no trial {where[2]!r}."
    return None


def _server_routes(server: flask.Flask, ctx: Context, hosts: Collection[str] | None) -> None:
    @server.before_request
    def _known_host() -> flask.Response | None:
        if hosts is None:
            return None
        name = (
            flask.request.host.rsplit(":", 1)[0]
            if "]" not in flask.request.host
            else (flask.request.host.split("]")[0].lstrip("["))
        )
        if name in hosts:
            return None
        return flask.Response("Unknown host.", 403, mimetype="text/plain")

    @server.before_request
    def _not_found() -> flask.Response | None:
        """A page load of a study or trial that does not exist gets a real 404."""
        request = flask.request
        if request.method != "GET" or request.path.startswith(("/_", "/assets/", "/export/")):
            return None
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
        where = parse_path((raw or quote(request.path)).split("?")[0])
        why = _missing(ctx, where)
        if why is None:
            return None
        return flask.Response(_not_found_html(ctx, why), 404, mimetype="text/html")

    @server.errorhandler(StorageError)
    def _unreadable(error: StorageError) -> flask.Response:
        _report(str(error))
        return flask.Response(html.escape(str(error)), 503, mimetype="text/plain")

    @server.get("/export/trials.csv")
    def _trials_csv() -> flask.Response:
        name = flask.request.args.get("study", "")
        if name not in ctx.reader.names():
            return flask.Response(_not_found_html(ctx, f"No study named {name!r}."), 404)
        disposition = (
            f"attachment; filename=trials.csv; filename*=UTF-8''{quote(name, safe='')}.csv"
        )
        headers = {"Content-Disposition": disposition}
        return flask.Response(_csv_rows(ctx, name), mimetype="text/csv", headers=headers)


def _not_found_html(ctx: Context, why: str) -> str:
    items = "".join(
        f'<li><a href="{html.escape(study_path(n))}">{html.escape(n)}</a></li>'
        for n in ctx.reader.names()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Not found · archtune"
        "</title><link rel='stylesheet' href='/assets/style.css'></head><body><main>"
        f"<div class='card notfound'><h1>Not found</h1><p class='err'>{html.escape(why)}</p>"
        f"<p>The studies in {html.escape(ctx.shown)}:</p><ul>{items}</ul>"
        "<p><a href='/'>All studies</a></p></div></main></body></html>"
    )


def _csv_rows(ctx: Context, name: str, chunk: int = 5000) -> Iterator[str]:
    """The trials table of study ``name`` as CSV (every column, every trial), read a page
    at a time."""
    cols = columns(ctx, name)
    header = cols.headers()
    yield _line(list(header.values()))
    offset = 0
    while True:
        page = ctx.reader.page(name, offset=offset, limit=chunk)
        for trial in page.record.trials:
            row = grid_row(cols, trial)
            yield _line([row.get(k, "") for k in header])
        offset += chunk
        if offset >= page.total:
            return


def _line(cells: list[object]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([_cell(c) for c in cells])
    return out.getvalue()


def _cell(value: object) -> object:
    """A CSV cell; text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``)
    is quoted with ``'`` (numbers stay numbers).

    Example:
        >>> _cell("=HYPERLINK(1)"), _cell("-0.5"), _cell(None)
        ("'=HYPERLINK(1)", '-0.5', '')
    """
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value
