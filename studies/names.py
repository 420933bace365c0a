"""Study names: what a name may be, and the safe file name made from one.

A study name is checked once, where it enters (:meth:`Study.create
<studies.Study.create>`, :class:`~studies.Experiment`): a non-empty string of at most
:data:`MAX_NAME_LENGTH` characters (Optuna's ``study_name`` column), without control or
invisible formatting characters and without spaces at either end. Anything else is
allowed: ``cifar/resnet``, ``..``, ``run 3`` and ``<b>x</b>`` are names.

A name is therefore never a file name. Every path made from a study name (the default
``archtune report`` file, Ray Tune's run directory) goes through :func:`file_slug`,
which keeps ASCII letters, digits, ``-``, ``_`` and inner dots, in lower case, bounded
in length, and adds a short hash of the name whenever the slug differs from it: the slug
can never leave the directory it is joined to, and two names never share a slug (not even
on a case-insensitive file system).

Example:
    >>> check_study_name("digits-resnet")
    'digits-resnet'
    >>> file_slug("digits-resnet")
    'digits-resnet'
    >>> file_slug("../../etc/passwd")
    'etc-passwd-3754d6cb'
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

MAX_NAME_LENGTH = 512
"""The longest study name: Optuna stores it in ``studies.study_name``, a ``String(512)``
(``optuna.storages._rdb.models.MAX_INDEXED_STRING_LENGTH``; a test pins the two)."""

MAX_SLUG_LENGTH = 64
"""The longest readable part of a slug; with the hash a slug has at most 73 characters."""

_HASH_CHARS = 8
# Unicode categories a name may not hold: control characters (newlines, tabs, escape
# sequences), invisible formatting ones (right-to-left overrides, zero-width spaces), line
# and paragraph separators, and lone surrogates.
_FORBIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
# Device names Windows reserves whatever the extension (``con.html`` is the console).
_RESERVED = {"con", "prn", "aux", "nul", *(f"{d}{i}" for d in ("com", "lpt") for i in range(10))}


def check_study_name(name: Any) -> str:
    """Return ``name`` if it may name a study, else raise saying what is allowed.

    Args:
        name: The proposed study name.

    Raises:
        TypeError: if ``name`` is not a string.
        ValueError: if it is empty, longer than :data:`MAX_NAME_LENGTH` characters,
            starts or ends with a space, or holds a control or formatting character
            (a newline, a tab, an escape, a zero-width or right-to-left mark).

    Example:
        >>> check_study_name("cifar/resnet v2")
        'cifar/resnet v2'
        >>> check_study_name("a\\nb")
        Traceback (most recent call last):
        ...
        ValueError: Study name 'a\\nb' holds a control character ('\\n' at position 1); ...
    """
    allowed = (
        f"a study name is 1 to {MAX_NAME_LENGTH} characters, with no control characters "
        "(newlines, tabs) and no spaces at either end"
    )
    if not isinstance(name, str):
        raise TypeError(f"Study name must be a string, got {type(name).__name__} {name!r}.")
    if not name.strip():
        raise ValueError(f"Study name must be a non-empty string, got {name!r}; {allowed}.")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"Study name is {len(name)} characters long, starting {name[:40]!r}; {allowed}."
        )
    for i, char in enumerate(name):
        if unicodedata.category(char) in _FORBIDDEN:
            raise ValueError(
                f"Study name {name[:80]!r} holds a control character ({char!r} at position "
                f"{i}); {allowed}."
            )
    if name != name.strip():
        raise ValueError(f"Study name {name!r} starts or ends with a space; {allowed}.")
    return name


def file_slug(name: str, max_length: int = MAX_SLUG_LENGTH) -> str:
    """A file name made from a study name that is safe to join to any directory.

    It holds only ``a-z``, ``0-9``, ``-``, ``_`` and ``.``, never starts with a dot or a
    dash, and has at most ``max_length`` characters before the hash. When it differs from
    ``name`` (or is a device name Windows reserves, such as ``con``), ``-`` and the first
    8 hex digits of the name's SHA-256 follow, so distinct names get distinct slugs. Add
    an extension to it (``slug + ".html"``); never join a raw study name to a path.

    Args:
        name: A study name (any string).
        max_length: The longest readable part (at least 1).

    Example:
        >>> file_slug("digits_resnet.v2")
        'digits_resnet.v2'
        >>> file_slug("Digits ResNet")
        'digits-resnet-b0a77d58'
        >>> file_slug("<img src=x onerror=alert(1)>")
        'img-src-x-onerror-alert-1-63b586b4'
        >>> file_slug("..")
        'study-5ec1f7e7'
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}.")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _UNSAFE.sub("-", ascii_name.lower())
    slug = slug[:max_length].strip(".-")
    if slug == name and slug.split(".")[0] not in _RESERVED:
        return slug
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{slug or 'study'}-{digest}"
