"""Serve the dashboard: ``archtune dashboard [--storage URL] [--host H] [--port P]``.

The database is opened read-only first and the port bound next, so an unreachable or
non-Optuna database and a port already in use each end with one line (and exit status
2 from the CLI) before anything is served. The server is Werkzeug's threaded one, which
Dash runs on (as optuna-dashboard does with wsgiref): a viewer for a few people, on
127.0.0.1 unless ``--host`` says otherwise.

Example:
    >>> serve("sqlite:////nowhere/at/all.db")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    studies.errors.StorageError: No study database at '/nowhere/at/all.db' ...
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
import sys
import threading
from typing import Any, TextIO

from werkzeug.serving import make_server

from dashboard.app import create_app
from studies.readonly import open_readonly

__all__ = ["DashboardError", "serve"]


class DashboardError(RuntimeError):
    """The dashboard cannot be served (the message says why and what to do)."""


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    url: str,
    host: str = "127.0.0.1",
    port: int = 8050,
    *,
    poll_ms: int = 3000,
    out: TextIO | None = None,
) -> None:
    """Serve the dashboard over the database at ``url`` until interrupted (Ctrl-C).

    Raises:
        StorageError: the database cannot be opened, or holds no Optuna study tables.
        DashboardError: the address cannot be bound (a port in use, a host not here).
    """
    out = out or sys.stderr
    if not 0 <= port <= 65535:
        raise DashboardError(f"--port must be between 0 and 65535, got {port}.")
    storage = open_readonly(url)
    sock = _bind(host, port)  # here, not in Werkzeug: it prints and exits on a taken port
    local = _loopback(host)
    app = create_app(storage, poll_ms=poll_ms, hosts=LOOPBACK_NAMES if local else None)
    server = make_server(host, port, app.server, threaded=True, fd=sock.fileno())
    sock.close()  # the server holds its own duplicate of the socket
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    shown = f"http://{host if ':' not in host else f'[{host}]'}:{server.port}/"
    print(f"archtune dashboard on {shown} reading {storage.shown} (Ctrl-C stops it)", file=out)
    if not local:
        print(
            f"archtune: note: on {host}, anyone who reaches this machine can read these "
            "studies (read-only, no login).",
            file=out,
        )
    out.flush()
    previous = _stop_on_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.server_close()
        context = app.server.config.get("archtune")
        if context is not None:
            context.close()
        storage.engine.dispose()


def _stop_on_signals() -> dict[int, Any]:
    """SIGINT and SIGTERM stop the server (as Ctrl-C), even where the process was started
    with SIGINT ignored (a background job of a shell script); the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    return {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (as Werkzeug would make it)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise DashboardError(f"Cannot serve on {host!r}: {e.strerror}; check --host.") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        hint = (
            "Pass another --port (or stop what listens there)."
            if e.errno in (errno.EADDRINUSE, errno.EACCES)
            else "Check --host: it must be an address of this machine (0.0.0.0: all of them)."
        )
        raise DashboardError(
            f"Cannot serve on {host}:{port}: {(e.strerror or str(e)).lower()}. {hint}"
        ) from None
    return sock
