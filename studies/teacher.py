"""Find a distillation teacher named by study and trial, in the driver, before a run.

A trainer's teacher may be a trial of an earlier study (see
:class:`trainers.teacher.TeacherSource`)::

    ImageClassifier(teacher={"study": "digits-resnet", "trial": "best"})   # or "trial": 7
    ImageClassifier(teacher={"study": "big", "trial": 3, "storage": "postgresql://..."})

Without ``"storage"`` the teacher's study is in the database of the study that distils.
:func:`resolve_teacher` runs in :func:`studies.plan.plan_run`, so before anything is
written: it reads the teacher's study through the one read path
(:class:`~studies.reads.StudyReader` over a read-only connection), turns ``"best"`` into
that study's best trial (the complete, feasible trial with the best value; ``"best"``
of a multi-objective study is refused, naming the front), checks that the trial is
COMPLETE and its checkpoint directory (user attribute :data:`trainers.base.ATTR_CHECKPOINT`)
still holds a checkpoint, and reads the architecture from that checkpoint. The trainer
then names the trial by number (:meth:`trainers.ImageClassifier.use_teacher`): that is what
the study stores with its trainer, so ``archtune resume`` distils from the same trial
even when the earlier study has found a better one since. Workers get the checkpoint's
path and never open a database.

Example:
    >>> from trainers import ImageClassifier
    >>> resolve_teacher(ImageClassifier(epochs=1), "sqlite:///archtune.db") is None
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spaces import SearchSpace
from studies.readonly import open_readonly
from studies.reads import StudyReader
from studies.records import TrialRecord
from studies.storage import StorageError, shown_url
from trainers import Trainer
from trainers.base import ATTR_CHECKPOINT

if TYPE_CHECKING:  # trainers.teacher imports torch: only once a teacher is named
    from trainers.teacher import TeacherSource

__all__ = ["ResolvedTeacher", "find_teacher", "resolve_teacher"]

# A study's trials listed in a message, at most.
_LISTED = 20


@dataclass(frozen=True)
class ResolvedTeacher:
    """A teacher trial found in its study.

    Attributes:
        study: The teacher's study.
        trial: Its trial number (``"best"`` resolved).
        storage: The URL of the teacher's database (shown without a password by repr).
        checkpoint: The absolute path of the checkpoint directory (or file) it left.
        architecture: The network it trained: ``{"family": "resnet", **config}``, the
            family's kind and the model part of the trial's configuration.
        values: The trial's objective values.
        source: What the trainer stores: the study and the trial number, and the
            storage only when the teacher was given one.
    """

    study: str
    trial: int
    storage: str
    checkpoint: str
    architecture: dict[str, Any]
    values: tuple[float, ...]
    source: TeacherSource

    def __repr__(self) -> str:
        return (
            f"ResolvedTeacher(study={self.study!r}, trial={self.trial}, "
            f"storage={shown_url(self.storage)!r}, checkpoint={self.checkpoint!r}, "
            f"architecture={self.architecture!r}, values={self.values!r})"
        )


def resolve_teacher(trainer: Trainer, storage: str | None) -> ResolvedTeacher | None:
    """Find the trainer's teacher trial and hand its checkpoint to the trainer.

    Only a trainer whose ``teacher`` attribute is a :class:`TeacherSource` naming a study
    has anything to resolve; a checkpoint path is left to the trainer. The trainer must
    take the result through ``use_teacher(source, checkpoint, state)`` (as
    :class:`~trainers.ImageClassifier` does).

    Args:
        trainer: The run's trainer.
        storage: The URL of the database of the study being run: where a teacher
            without ``"storage"`` is looked for.

    Returns:
        The teacher found, or None when the trainer names no study trial.

    Raises:
        ValueError / FileNotFoundError / StorageError: as :func:`find_teacher`.
        TypeError: for a trainer with a study teacher but no ``use_teacher`` method.
    """
    source = getattr(trainer, "teacher", None)
    if source is None:
        return None
    from trainers.teacher import TeacherSource

    if not isinstance(source, TeacherSource) or source.study is None:
        return None
    use = getattr(trainer, "use_teacher", None)
    if not callable(use):
        raise TypeError(
            f"{type(trainer).__name__} names its teacher by study, but has no "
            "use_teacher(source, checkpoint, state) method to receive the checkpoint the "
            "driver finds; give the checkpoint path instead, or subclass ImageClassifier."
        )
    found, state = _find(source, storage)
    use(found.source, found.checkpoint, state)
    return found


def find_teacher(
    source: TeacherSource | Mapping[str, Any], storage: str | None = None
) -> ResolvedTeacher:
    """The trial a study teacher names, its checkpoint and architecture; reads only.

    Args:
        source: ``{"study": NAME, "trial": N or "best"[, "storage": URL]}`` or the
            equivalent :class:`TeacherSource`.
        storage: The database URL to use when ``source`` names none.

    Raises:
        ValueError: for no storage at all, an unknown study (the message lists those
            there are) or trial (it says how they are numbered), ``"best"`` of a study
            with no COMPLETE trial or with several objectives (the message names the
            front), a trial that is not COMPLETE, one without a recorded checkpoint, or
            a checkpoint that is not archtune's.
        FileNotFoundError: when the recorded checkpoint is gone (the message says where
            it was expected).
        StorageError: when the teacher's database cannot be opened or read.

    Example:
        >>> find_teacher({"study": "s", "trial": "best"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: The teacher {'study': 's', 'trial': 'best'} names no storage, ...
    """
    from trainers.teacher import TeacherSource

    return _find(TeacherSource.parse(source), storage)[0]


def _find(source: TeacherSource, storage: str | None) -> tuple[ResolvedTeacher, dict[str, Any]]:
    """:func:`find_teacher`, with the checkpoint it read."""
    if source.study is None:
        raise ValueError(f"The teacher {source.to_json()} names a checkpoint, not a study trial.")
    url = source.storage or storage
    if not url:
        raise ValueError(
            f"The teacher {source.to_json()} names no storage, and there is no study "
            "database to look in; add 'storage': URL."
        )
    record, recorded = _teacher_trial(source.study, source.trial, url)
    path = _checkpoint_of(source.study, record.number, recorded)
    from trainers.checkpoint import load_checkpoint
    from trainers.teacher import TeacherSource

    try:
        state = load_checkpoint(path)
    except ValueError as e:
        raise ValueError(
            f"The checkpoint of trial {record.number} of study {source.study!r} cannot be a "
            f"teacher: {e}"
        ) from None
    found = ResolvedTeacher(
        study=source.study,
        trial=record.number,
        storage=url,
        checkpoint=path,
        architecture=_architecture(state),
        values=tuple(record.values or ([] if record.value is None else [record.value])),
        source=TeacherSource(study=source.study, trial=record.number, storage=source.storage),
    )
    return found, state


def _teacher_trial(study: str, trial: int | str | None, url: str) -> tuple[TrialRecord, str]:
    """The COMPLETE trial ``trial`` (a number or ``"best"``) of ``study`` at ``url``, and
    the checkpoint recorded for it."""
    try:
        db = open_readonly(url)
    except StorageError as e:
        raise StorageError(f"Cannot read the teacher's study {study!r}: {e}") from None
    try:
        reader = StudyReader(db)
        try:
            number = _number(reader, study, trial)
            detail = reader.trial(study, number)
        except KeyError as e:
            raise ValueError(f"Cannot find the teacher: {e.args[0]}") from None
        record, checkpoint = detail.record, detail.checkpoint
        if record.state != "COMPLETE":
            done = reader.outline(study).numbers("COMPLETE").tolist()
            raise ValueError(
                f"Trial {number} of study {study!r} is {record.state}, not COMPLETE; distil "
                f"from a trial that finished its training (COMPLETE: {_listed(done)})."
            )
        if checkpoint is None and record.repeat_of is not None:
            # Answered from the record: the trial it repeats trained the network.
            checkpoint = reader.trial(study, record.repeat_of).checkpoint
    finally:
        db.engine.dispose()
    if not checkpoint:
        raise ValueError(
            f"Trial {number} of study {study!r} has no recorded checkpoint (user attribute "
            f"{ATTR_CHECKPOINT!r}: its trainer saved none); name a checkpoint file instead."
        )
    return record, checkpoint


def _number(reader: StudyReader, study: str, trial: int | str | None) -> int:
    """The trial number ``trial`` names: itself, or the study's best trial's."""
    from trainers.teacher import BEST

    if trial != BEST:
        return int(trial)  # type: ignore[arg-type]
    objectives = reader.study(study).objectives
    if len(objectives) > 1:
        front = [t.number for t in reader.front(study)]
        raise ValueError(
            f"Study {study!r} has {len(objectives)} objectives {list(objectives)}, so no "
            f"single best trial; name one of its front by number, 'trial': N (front: "
            f"{_listed(front)})."
        )
    best = reader.best(study)
    if best is None:
        raise ValueError(
            f"Study {study!r} has no COMPLETE trial to distil from yet; run it first, or "
            "name a checkpoint."
        )
    return best.number


def _checkpoint_of(study: str, number: int, recorded: str) -> str:
    """The absolute checkpoint path of a trial, checked to hold a checkpoint."""
    from trainers.checkpoint import CHECKPOINT_FILE

    path = os.path.abspath(os.path.expanduser(recorded))
    target = path if path.endswith(".pt") else os.path.join(path, CHECKPOINT_FILE)
    if not os.path.isfile(target):
        raise CheckpointGone(
            f"The checkpoint of trial {number} of study {study!r} is gone: expected "
            f"{target} (the directory recorded in {ATTR_CHECKPOINT!r}; Ray's run directory "
            "was moved or deleted). Name another trial, or the checkpoint where it is now."
        )
    return path


def _architecture(state: Mapping[str, Any]) -> dict[str, Any]:
    """``{"family": kind, **model config}`` of an archtune checkpoint."""
    try:
        family = SearchSpace.from_json(state["space"])["model"]
        model = state["config"]["model"]
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"The teacher's checkpoint holds no archtune architecture (no {e} in it): give "
            "a checkpoint an archtune trial wrote, or the study and trial that wrote it."
        ) from None
    return {"family": getattr(family, "kind", type(family).__name__), **model}


class CheckpointGone(ValueError, FileNotFoundError):
    """A trial's recorded checkpoint is not where it was written (the CLI shows one line)."""


def _listed(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_LISTED])
    more = f", ... ({len(numbers)} in all)" if len(numbers) > _LISTED else ""
    return f"[{shown}{more}]" if numbers else "none"
