"""What a benchmark records about where it ran: hardware, versions, the code measured.

Example:
    >>> info = machine(".", ["optuna"])
    >>> sorted(info)[:3]
    ['archtune_commit', 'cores', 'cpu_model']
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the archtune checkout


def machine(root: str, modules: Sequence[str]) -> dict[str, Any]:
    """CPU model, cores, memory, platform, the git commit at ``root``, module versions.

    Args:
        root: The archtune checkout that was measured.
        modules: Modules whose ``__version__`` to record (None when not installed).
    """
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        ram_gib = float("nan")
    try:
        commit = subprocess.run(
            ["git", "-C", root, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    info: dict[str, Any] = {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram_gib, 1),
        "platform": platform.platform(),
        "archtune_commit": commit,
        "python": platform.python_version(),
    }
    for name in modules:
        try:
            info[name] = importlib.import_module(name).__version__
        except ImportError:
            info[name] = None
    return info


def attach_and_save(
    result: dict[str, Any], path: str | None, modules: Sequence[str], **facts: Any
) -> None:
    """Put :func:`machine` (for this repository, plus ``facts``) in ``result["machine"]``,
    then write ``result`` as JSON to ``path`` when one is given."""
    result["machine"] = {**machine(ROOT, modules), **facts}
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


def header(
    benchmark: str,
    argv: Sequence[str] | None,
    modules: Sequence[str],
    rerun: str,
) -> dict[str, Any]:
    """The opening keys of a results file: name, UTC date, the command, :func:`machine`.

    Args:
        benchmark: The benchmark's name.
        argv: The script's arguments (None: ``sys.argv[1:]``).
        modules: Modules whose versions to record.
        rerun: How the script is run from the repository root, e.g.
            ``"nice .venv/bin/python benchmarks/synthetic.py"``; the arguments follow it.

    Example:
        >>> header("x", ["--seeds", "3"], [], "python x.py")["command"]
        'python x.py --seeds 3'
    """
    args = sys.argv[1:] if argv is None else list(argv)
    return {
        "benchmark": benchmark,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": f"{rerun} {shlex.join(args)}".strip(),
        "machine": machine(ROOT, modules),
    }


def chosen_methods(requested: Sequence[str] | None, valid: Sequence[str]) -> list[str]:
    """The methods a run measures: ``requested`` (all of ``valid`` when None or empty).

    Raises:
        ValueError: for a name not in ``valid`` (the message lists the valid ones).

    Example:
        >>> chosen_methods(None, ["a", "b"]), chosen_methods(["b"], ["a", "b"])
        (['a', 'b'], ['b'])
    """
    chosen = list(requested or valid)
    unknown = sorted(set(chosen) - set(valid))
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; choose from {list(valid)}.")
    return chosen


def write_json(path: str, result: Any, indent: int | None = None) -> None:
    """Write ``result`` as JSON to ``path`` through a temporary file, so a crash mid-write
    leaves the previous file whole. Compact separators when ``indent`` is None."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        if indent is None:
            json.dump(result, f, separators=(",", ":"))
        else:
            json.dump(result, f, indent=indent)
    os.replace(tmp, path)
