"""Where a distillation teacher comes from, and loading it frozen.

A :class:`TeacherSource` names the teacher in a trainer's JSON spec: an archtune
checkpoint file (or a Ray checkpoint directory), or a trial of an earlier study, whose
checkpoint directory the driver recorded in the trial's user attribute
``archtune:checkpoint`` (:data:`trainers.base.ATTR_CHECKPOINT`). The driver resolves a
source once; :func:`load_teacher` rebuilds the frozen network with
:func:`trainers.checkpoint.model_from_checkpoint`, and :func:`check_teacher` says how it
differs from the data, if it does. Distillation itself is in :mod:`trainers.distill`.

A trial may be named ``"best"`` and the storage left out (the database of the study that
distils): that shortcut needs the study being run, so :mod:`studies.teacher` resolves it
in the driver before the run, to a trial number the study stores with its trainer.

Example:
    >>> TeacherSource.parse({"study": "digits", "trial": 3, "storage": "sqlite:///a.db"}).trial
    3
    >>> TeacherSource.parse({"study": "digits", "trial": "best"}).to_json()
    {'study': 'digits', 'trial': 'best'}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainers.base import ATTR_CHECKPOINT
from trainers.checkpoint import CHECKPOINT_FILE, load_checkpoint, model_from_checkpoint

_CHECKPOINT_KEYS = frozenset({"checkpoint"})
_STUDY_KEYS = frozenset({"study", "trial", "storage"})
BEST = "best"
"""The trial name of a study's best trial (see :mod:`studies.teacher`)."""


@dataclass(frozen=True)
class TeacherSource:
    """Where the teacher's weights come from; JSON-able, for a trainer's spec.

    Exactly one of two forms:

    - ``checkpoint``: an archtune checkpoint file, or a Ray checkpoint directory that
      holds one (``checkpoint.pt``);
    - ``study``, ``trial`` and optionally ``storage``: trial number ``trial`` (or
      ``"best"``) of study ``study`` in the Optuna database at URL ``storage`` (None:
      the database of the study that distils); the checkpoint is the directory stored
      in that trial's user attribute :data:`ATTR_CHECKPOINT`.

    Resolve in the driver: relative paths are taken from the current directory, and Ray
    workers run elsewhere and never open the database. A study run resolves every study
    form (:func:`studies.teacher.resolve_teacher`); :meth:`resolve` alone finds only a
    trial given by number in a database given by URL.

    Example:
        >>> TeacherSource.parse("runs/best/checkpoint.pt").to_json()
        {'checkpoint': 'runs/best/checkpoint.pt'}
    """

    checkpoint: str | None = None
    study: str | None = None
    trial: int | str | None = None
    storage: str | None = None

    def __post_init__(self) -> None:
        if self.checkpoint is not None:
            if not isinstance(self.checkpoint, str) or not self.checkpoint:
                raise TypeError(
                    f"TeacherSource checkpoint must be a non-empty path string, "
                    f"got {self.checkpoint!r}."
                )
            if (self.study, self.trial, self.storage) != (None, None, None):
                raise ValueError(
                    "Give a TeacherSource either checkpoint=... or study=..., trial=..., "
                    "storage=..., not both."
                )
            return
        missing = [k for k in ("study", "trial") if getattr(self, k) is None]
        if missing:
            raise ValueError(
                f"TeacherSource needs checkpoint=PATH, or study and trial (and storage when "
                f"the study is in another database; missing {missing})."
            )
        if not isinstance(self.study, str) or not self.study:
            raise TypeError(f"TeacherSource study must be a study name, got {self.study!r}.")
        if self.storage is not None and (not isinstance(self.storage, str) or not self.storage):
            raise TypeError(
                f"TeacherSource storage must be a database URL string (or None: the "
                f"database of the study that distils), got {self.storage!r}."
            )
        if self.storage is not None and _has_password(self.storage):
            raise ValueError(
                "A teacher's storage URL must not hold a password: it is stored with the "
                "study (and shown by the dashboard and model cards). Leave storage out to "
                "use the distilling study's database, or give the password to libpq "
                "(PGPASSWORD or ~/.pgpass) and drop it from the URL."
            )
        if self.trial == BEST:
            return
        if isinstance(self.trial, bool) or not isinstance(self.trial, int) or self.trial < 0:
            raise TypeError(
                f"TeacherSource trial must be a trial number (an int >= 0) or {BEST!r}, "
                f"got {self.trial!r}."
            )

    @classmethod
    def parse(
        cls, value: TeacherSource | str | os.PathLike[str] | Mapping[str, Any]
    ) -> TeacherSource:
        """A source from a path, a dict as :meth:`to_json` writes, or a source.

        Raises:
            ValueError: for a dict with unknown or missing keys.
            TypeError: for any other kind of value.
        """
        if isinstance(value, TeacherSource):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls(checkpoint=os.fspath(value))
        if isinstance(value, Mapping):
            keys = frozenset(value)
            by_study = {"study", "trial"} <= keys <= _STUDY_KEYS
            if keys != _CHECKPOINT_KEYS and not by_study:
                raise ValueError(
                    f"A teacher is {{'checkpoint': PATH}} or {{'study': NAME, 'trial': N or "
                    f"'best'}} (with 'storage': URL for another database); got keys "
                    f"{sorted(keys)}."
                )
            return cls(**value)
        raise TypeError(
            "A teacher is a checkpoint path, a dict {'checkpoint': PATH} or "
            "{'study': NAME, 'trial': N or 'best'[, 'storage': URL]}, or a TeacherSource; "
            f"got {type(value).__name__}."
        )

    def to_json(self) -> dict[str, Any]:
        """The dict :meth:`parse` reads back (no ``storage`` key when it is None)."""
        if self.checkpoint is not None:
            return {"checkpoint": self.checkpoint}
        out: dict[str, Any] = {"study": self.study, "trial": self.trial}
        if self.storage is not None:
            out["storage"] = self.storage
        return out

    def resolve(self) -> str:
        """The absolute path of the teacher's checkpoint (a file or a Ray checkpoint dir).

        The study database is only read (no tables are created, nothing is written).

        Raises:
            FileNotFoundError: when the checkpoint, or a SQLite database, does not exist.
            ValueError: for an unknown study (the message lists the known ones), trial
                number, a trial that is not COMPLETE, or one without a recorded checkpoint;
                and for the ``"best"`` / no-storage shortcut, which a study run resolves.
            RuntimeError: when the database cannot be read.
        """
        if self.checkpoint is None and (self.trial == BEST or self.storage is None):
            what = "the best trial" if self.trial == BEST else "no storage"
            raise ValueError(
                f"The teacher {self.to_json()} names {what}: a study run resolves it "
                "(studies.teacher.resolve_teacher, called by Study.run and `archtune run`). "
                "Outside a study, give trial=N and storage=URL, or the checkpoint path."
            )
        if self.checkpoint is not None:
            path = self.checkpoint
            where = "TeacherSource checkpoint"
        else:
            path = _trial_checkpoint(self.study, self.trial, self.storage)  # type: ignore[arg-type]
            where = f"The checkpoint recorded for trial {self.trial} of study {self.study!r}"
        path = os.path.abspath(os.path.expanduser(path))
        target = os.path.join(path, CHECKPOINT_FILE) if os.path.isdir(path) else path
        if not os.path.isfile(target):
            raise FileNotFoundError(
                f"{where}, {target!r}, does not exist; give an archtune checkpoint file or "
                f"the Ray checkpoint directory that holds its {CHECKPOINT_FILE}."
            )
        return path


def _trial_checkpoint(study: str, trial: int, url: str) -> str:
    """The checkpoint path stored in a COMPLETE trial's :data:`ATTR_CHECKPOINT`."""
    import optuna
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError(
            "Malformed storage URL of the teacher's study; use e.g. sqlite:///archtune.db or "
            "postgresql://user:password@host:5432/dbname."
        ) from None
    shown = parsed.render_as_string(hide_password=True)  # never a password in a message
    db = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if db and db != ":memory:" and not os.path.isfile(db):
        raise FileNotFoundError(f"No study database at {os.path.abspath(db)!r} (from {shown!r}).")
    try:
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, RuntimeError) as e:
        raise RuntimeError(f"Cannot read the study database {shown!r}: {e}") from e
    try:
        try:
            study_id = storage.get_study_id_from_name(study)
        except KeyError:
            known = sorted(s.study_name for s in storage.get_all_studies())
            raise ValueError(f"No study {study!r} in {shown!r}; known studies: {known}.") from None
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial)
        except KeyError:
            count = len(storage.get_all_trials(study_id, deepcopy=False))
            raise ValueError(
                f"Study {study!r} has no trial {trial}; its trials are numbered 0 to {count - 1}."
                if count
                else f"Study {study!r} has no trials."
            ) from None
        frozen = storage.get_trial(trial_id)
    except sa.exc.SQLAlchemyError as e:
        raise RuntimeError(f"Cannot read the study database {shown!r}: {e}") from e
    finally:
        storage.engine.dispose()
    if frozen.state != optuna.trial.TrialState.COMPLETE:
        raise ValueError(
            f"Trial {trial} of study {study!r} is {frozen.state.name}, not COMPLETE; "
            "distil from a trial that finished its training."
        )
    path = frozen.user_attrs.get(ATTR_CHECKPOINT)
    if not isinstance(path, str) or not path:
        raise ValueError(
            f"Trial {trial} of study {study!r} has no recorded checkpoint (user attribute "
            f"{ATTR_CHECKPOINT!r}); give TeacherSource(checkpoint=PATH) instead."
        )
    return path


def check_teacher(
    state_or_model: Mapping[str, Any] | nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int,
) -> None:
    """Raise ``ValueError`` saying what differs when the teacher does not fit the data.

    Args:
        state_or_model: A checkpoint dict (its recorded ``input_shape`` and
            ``num_classes`` are compared) or a network (run on a zero batch).
        input_shape: ``(channels, height, width)`` of the data.
        num_classes: Classes of the data.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if isinstance(state_or_model, Mapping):
        teacher_shape = tuple(int(s) for s in state_or_model["input_shape"])
        teacher_classes = int(state_or_model["num_classes"])
    else:
        teacher_shape = input_shape
        teacher_classes = _output_width(state_or_model, input_shape)
    diffs = []
    if teacher_shape != input_shape:
        diffs.append(f"input shape {teacher_shape} vs the data's {input_shape}")
    if teacher_classes != num_classes:
        diffs.append(f"{teacher_classes} classes vs the data's {num_classes}")
    if diffs:
        raise ValueError(
            f"The teacher does not fit the data: {'; '.join(diffs)}. Distil from a teacher "
            "trained on the same dataset."
        )


def _output_width(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Classes a network outputs for a zero batch of ``input_shape`` (-1 if it fails)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape, device=device))
    except RuntimeError as e:
        raise ValueError(
            f"The teacher does not fit the data: it fails on inputs of shape {input_shape} "
            f"({e}). Distil from a teacher trained on the same dataset."
        ) from None
    finally:
        model.train(was_training)
    return int(out.shape[-1]) if out.dim() == 2 else -1


def load_teacher(
    source: TeacherSource | str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device = "cpu",
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """The frozen teacher network: eval mode, no parameter requires a gradient.

    Args:
        source: Anything :meth:`TeacherSource.parse` accepts.
        device: Where to put the network.
        input_shape: When given with ``num_classes``, the data the teacher must fit
            (checked with :func:`check_teacher` before the network is built).
        num_classes: Classes of the data.
    """
    state = load_checkpoint(TeacherSource.parse(source).resolve())
    if input_shape is not None and num_classes is not None:
        check_teacher(state, input_shape, num_classes)
    model = model_from_checkpoint(state, device)
    model.requires_grad_(False)
    return model.eval()


def _has_password(url: str) -> bool:
    """Whether a database URL carries a password (``user:secret@host``)."""
    from sqlalchemy.engine import make_url

    try:
        return bool(make_url(url).password)
    except Exception:  # not a URL: resolving it says why
        return False
