"""What a benchmark records about where it ran: hardware, versions, the code measured.

Example:
    >>> info = machine(".", ["optuna"])
    >>> sorted(info)[:3]
    ['archtune_commit', 'cores', 'cpu_model']
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from typing import Any


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
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result["machine"] = {**machine(root, modules), **facts}
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
