"""The dashboard's URL paths: a study's and a trial's, and what a path names.

Study names may hold any character, ``/`` included: a path quotes the name as one
segment, and :func:`parse_path` reads the path as the browser has it (still quoted).
"""

from __future__ import annotations

from urllib.parse import quote, unquote

__all__ = ["parse_path", "study_path", "trial_path"]


def study_path(name: str) -> str:
    """The URL path of study ``name``'s page (the name quoted, ``/`` included)."""
    return "/study/" + quote(name, safe="")


def trial_path(name: str, number: int) -> str:
    """The URL path of trial ``number`` of study ``name``."""
    return f"{study_path(name)}/trial/{int(number)}"


def parse_path(path: str | None) -> tuple[str, ...]:
    """What a (still quoted) URL path names: ``("home",)``, ``("study", name)``,
    ``("trial", name, number)`` or ``("unknown", path)``.

    Example:
        >>> parse_path(study_path("a/b <c>"))
        ('study', 'a/b <c>')
        >>> parse_path(trial_path("x", 3))
        ('trial', 'x', '3')
        >>> parse_path("/nowhere")
        ('unknown', '/nowhere')
    """
    parts = [p for p in (path or "/").split("/") if p]
    if not parts:
        return ("home",)
    if parts[0] == "study" and len(parts) == 2:
        return ("study", unquote(parts[1]))
    if parts[0] == "study" and len(parts) == 4 and parts[2] == "trial":
        return ("trial", unquote(parts[1]), parts[3])
    return ("unknown", unquote(path or ""))
