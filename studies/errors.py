"""The errors ``archtune`` reports as one line, in a module that imports nothing heavy.

The command line (:mod:`studies.cli`) catches these around every command; defined here,
catching them costs a reading command (``ls``, ``show``) no import of Ray Tune, pandas
or the database layer. Each is still importable from where it is raised:
:class:`StorageError` from :mod:`studies.storage`, :class:`StudyFileError` from
:mod:`studies.experiment`, :class:`InfeasibleSearch` from :mod:`studies.recorder`.

Example:
    >>> from studies.storage import StorageError as Raised
    >>> Raised is StorageError, issubclass(StudyFileError, ValueError)
    (True, True)
"""

from __future__ import annotations

__all__ = ["InfeasibleSearch", "StorageError", "StudyFileError"]


class StorageError(RuntimeError):
    """The storage URL is malformed, or the database cannot be reached or read."""


class StudyFileError(ValueError):
    """A study file cannot be loaded or defines no single experiment."""


class InfeasibleSearch(RuntimeError):
    """The search stopped because :data:`~studies.recorder.MAX_INFEASIBLE` proposals in a
    row broke the space's constraints. The trials the run recorded (the rejected ones
    included, FAIL with their reason) stay recorded; ``archtune run`` and ``resume`` exit
    with status 2.
    """
