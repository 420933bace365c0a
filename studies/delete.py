"""Deleting a study: Optuna's record of it and every row archtune keeps for it.

Checkpoints and Ray's files under the run directory are left where they are (a user may
still want a model from them); :class:`DeletedStudy` says where they are. While it
deletes, the process holds the study's driver lease, so no run starts on it half-way.

Example:
    >>> import os, tempfile
    >>> from spaces import Float, SearchSpace
    >>> from studies import Study
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "archtune.db")
    >>> _ = Study.create("old", SearchSpace({"x": Float(0, 1)}), "score", storage=url)
    >>> delete_study("old", url).trials
    0
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna

from studies.lease import DriverAlive, Lease, live_drivers
from studies.records import ATTR_RUN
from studies.storage import DEFAULT_STORAGE, Storage, open_storage, writing
from trainers.base import ATTR_CHECKPOINT


def delete_study(
    name: str,
    storage: str = DEFAULT_STORAGE,
    confirm: Callable[[int], bool] | None = None,
) -> DeletedStudy | None:
    """:meth:`studies.Study.delete`, whose docstring says what it does."""
    from search.optuna_access import study_id  # `import search` loads every controller

    db = open_storage(storage)
    names = optuna.get_all_study_names(db.optuna)
    if name not in names:
        raise KeyError(f"No study {name!r} in {db.shown}; studies there: {sorted(names)}.")
    inner = optuna.load_study(study_name=name, storage=db.optuna)
    sid = study_id(inner)
    _refuse_delete_if_driven(db, sid, name)
    if confirm is not None and not confirm(len(inner.get_trials(deepcopy=False))):
        return None
    _refuse_delete_if_driven(db, sid, name)  # one may have started while confirm asked
    with writing(db, f"delete study {name!r}"):
        lease = Lease.acquire(db, sid, name)  # no run starts on it from here on
    try:
        trials = inner.get_trials(deepcopy=False)
        run = json.loads(inner.user_attrs.get(ATTR_RUN, "{}"))
        with writing(db, f"delete study {name!r}"):
            metric_rows = db.delete_study_rows(sid, keep_driver=lease.id)
            optuna.delete_study(study_name=name, storage=db.optuna)
    finally:
        lease.release()
    return DeletedStudy(
        name=name,
        trials=len(trials),
        metric_rows=metric_rows,
        run_dirs=_run_dirs(trials),
        run_dir=run.get("run_dir"),
    )


@dataclass(frozen=True)
class DeletedStudy:
    """What :meth:`Study.delete` deleted, and what it left in place.

    Attributes:
        name: The study.
        trials: How many trials it had.
        metric_rows: How many per-epoch metric rows of archtune's went with them.
        run_dirs: Ray's run directories its trials' checkpoints are in (left in place).
        run_dir: The ``run_dir`` its last run was given, if any (None: the default).
    """

    name: str
    trials: int
    metric_rows: int
    run_dirs: tuple[str, ...] = ()
    run_dir: str | None = None


def _refuse_delete_if_driven(storage: Storage, sid: int, name: str) -> None:
    live = live_drivers(storage, sid)
    if live:
        raise DriverAlive(
            f"Study {name!r} is being run by a live driver, {live[0].describe()}; "
            "cannot delete it while it runs. Wait for it to finish, or stop it "
            "(Ctrl-C), then delete it."
        )


def _run_dirs(trials: Sequence[optuna.trial.FrozenTrial]) -> tuple[str, ...]:
    """Ray's run directories of the trials' recorded checkpoints (``RUN/TRIAL/checkpoint_N``)."""
    found = {
        os.path.dirname(os.path.dirname(str(t.user_attrs[ATTR_CHECKPOINT]).rstrip("/")))
        for t in trials
        if t.user_attrs.get(ATTR_CHECKPOINT)
    }
    return tuple(sorted(found))
