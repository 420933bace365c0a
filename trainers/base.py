"""The trainer contract: what runs inside one trial.

A :class:`Trainer` receives a sampled configuration and the space it came from, trains,
and calls ``session.report`` once per epoch. The session hides where the trial runs: on
Ray Tune (``studies`` passes a session that forwards to ``ray.tune.report``) or in this
process (:meth:`Trainer.fit`, for debugging and tests). Trainers never touch the study
database: only the driver records.

Call order: ``check_space(space)`` once in the driver before any trial starts, then
``prepare()`` once in the driver when Ray is up (work shared by every trial, such as a
teacher's logits put in Ray's object store); then, in each trial,
``run(config, space, session)``. ``run`` may call ``session.restore()``
first, and resumes from the returned checkpoint when it is not ``None``. A trainer must
be picklable (it is shipped to Ray workers) and rebuildable from :meth:`Trainer.spec`.

A study stores its trainer as :meth:`Trainer.to_json` gives it: the registered name, the
constructor arguments and, for any trainer but the built-in ones, where its class is
(``"module:qualname"``, and the file when the class was defined in a study file that
``archtune run`` loaded, or in a script run as ``__main__``). :func:`trainer_from_json`
finds the class again from there, so ``archtune resume`` in a new process rebuilds a
trainer defined in the user's study file. A script's ``__main__`` is not run again
(its top-level code may start a run): pass it as ``study_file`` to load it on purpose.

Example:
    >>> from trainers import ImageClassifier
    >>> data = ImageClassifier(epochs=2).to_json()
    >>> sorted(data), type(trainer_from_json(data)).__name__
    (['kwargs', 'trainer'], 'ImageClassifier')
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar, Protocol

from spaces import SearchSpace

# The trial user attribute where the driver records the directory of a trial's last
# checkpoint (a teacher for distillation can be named by study and trial number).
ATTR_CHECKPOINT = "archtune:checkpoint"

_TRAINERS: dict[str, type[Trainer]] = {}
_TRAINER_MODULES = {"image_classifier": "trainers.image_classifier"}
STUDY_FILE_MODULE = "archtune_study_file"
"""The module name a study file is executed under (:func:`import_study_file`)."""
# Every module executed from a study file in this process, by the file's absolute path:
# where Trainer.to_json finds the file of a class defined in one.
_STUDY_FILES: dict[str, list[ModuleType]] = {}


class TrialSession(Protocol):
    """Where a trainer sends its per-epoch metrics and gets its last checkpoint."""

    def report(
        self, metrics: Mapping[str, float], checkpoint: dict[str, Any] | None = None
    ) -> None:
        """Record one epoch's metrics, and a checkpoint dict to resume from."""

    def restore(self) -> dict[str, Any] | None:
        """The last checkpoint reported by this trial before a restart, if any."""

    @property
    def workers(self) -> int:
        """Data-parallel workers the trial runs on (1: the trial's own process)."""


class LocalSession:
    """A session that keeps everything in memory: used by :meth:`Trainer.fit`."""

    workers = 1  # data-parallel workers of the trial

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.checkpoint: dict[str, Any] | None = None

    def report(
        self, metrics: Mapping[str, float], checkpoint: dict[str, Any] | None = None
    ) -> None:
        self.history.append(dict(metrics))
        if checkpoint is not None:
            self.checkpoint = checkpoint

    def restore(self) -> dict[str, Any] | None:
        return self.checkpoint


class Trainer(abc.ABC):
    """Base class of trial trainers; see the module docstring for the contract.

    Subclasses set ``name`` (registry key used by :func:`trainer_from_spec`),
    ``max_epochs`` (the budget a scheduler such as ASHA may cut short),
    ``metrics`` (names of what every epoch's report holds) and, if the last epoch's
    report adds more (the final network's cost, a test score), ``final_metrics``. A
    study's objectives must be among :meth:`reported_metrics`.
    """

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    final_metrics: ClassVar[tuple[str, ...]] = ()
    max_epochs: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return
        known = _TRAINERS.get(name)
        same = known is not None and (known.__module__, known.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if known is not None and not same:  # the same class defined again is a reload
            raise ValueError(f"Trainer {name!r} is already registered by {known}.")
        _TRAINERS[name] = cls

    @abc.abstractmethod
    def check_space(self, space: SearchSpace) -> None:
        """Raise ``ValueError`` if this trainer cannot train configurations of ``space``."""

    @abc.abstractmethod
    def run(
        self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession
    ) -> dict[str, float]:
        """Train one configuration, reporting every epoch; return the final metrics."""

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON-able constructor arguments; ``type(self)(**spec())`` rebuilds the trainer."""

    def reported_metrics(self) -> tuple[str, ...]:
        """Every metric a finished trial has reported by its last epoch: the per-epoch
        :attr:`metrics`, then the :attr:`final_metrics` (this trainer's, as configured)."""
        return (*self.metrics, *(m for m in self.final_metrics if m not in self.metrics))

    def prepare(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Driver-side work shared by every trial, run once Ray is up (default: none).

        What it computes must travel with the pickled trainer, not in :meth:`spec`.
        """

    def epochs_for(self, config: Mapping[str, Any]) -> int:
        """Epochs a full run of ``config`` trains; fewer at its end means a scheduler cut it."""
        return self.max_epochs

    def model_stats(
        self, config: Mapping[str, Any], space: SearchSpace, metrics: set[str]
    ) -> dict[str, float]:
        """Statistics of the network ``config`` builds (``params``, ``flops``, ...).

        Needed when the space has constraints; computed in the driver, without training.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot compute model statistics, so it cannot check "
            "the space's constraints; remove them or use a trainer that can."
        )

    def fit(self, config: Mapping[str, Any], space: SearchSpace) -> dict[str, float]:
        """Train one configuration in this process, without Ray; return the final metrics."""
        self.check_space(space)
        self.prepare()
        return self.run(config, space, LocalSession())

    def to_json(self) -> dict[str, Any]:
        """What a study stores to resume: ``{"trainer": name, "kwargs": spec()}``, plus
        ``"class"`` (``"module:qualname"``) for any trainer but the built-in ones, and
        ``"file"`` (an absolute path) when that module is a study file or ``__main__``.

        Example:
            >>> from trainers import ImageClassifier
            >>> ImageClassifier(epochs=2).to_json()["trainer"]
            'image_classifier'
        """
        return {"trainer": self.name, "kwargs": self.spec(), **_class_location(type(self))}

    def identity(self) -> dict[str, Any]:
        """:meth:`to_json` without where the class was loaded from: what decides how the
        trainer trains. A study file moved, or a ``__main__`` class loaded from its file,
        is the same trainer. The built-in trainers' identity is their :meth:`to_json`.

        Example:
            >>> from trainers import ImageClassifier
            >>> ImageClassifier(epochs=2).identity() == ImageClassifier(epochs=2).to_json()
            True
        """
        data = self.to_json()
        where, file = data.pop("class", None), data.pop("file", None)
        if where is not None:
            data["class"] = where.partition(":")[2] if file is not None else where
        return data


def _class_location(cls: type[Trainer]) -> dict[str, str]:
    """``{"class": ..., "file": ...}`` of a trainer class; ``{}`` for a built-in one,
    which its name finds (so its stored form is what it always was)."""
    if _TRAINER_MODULES.get(cls.__dict__.get("name", "")) == cls.__module__:
        return {}
    out = {"class": f"{cls.__module__}:{cls.__qualname__}"}
    for path, modules in _STUDY_FILES.items():
        # Defined there, not only imported there (a study file imports trainers too).
        if any(
            m.__name__ == cls.__module__ and _resolve(m, cls.__qualname__) is cls for m in modules
        ):
            out["file"] = path
            return out
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if cls.__module__ == "__main__" and main_file:
        out["file"] = os.path.abspath(main_file)
    return out


def _resolve(module: ModuleType, qualname: str) -> Any:
    """The object ``qualname`` names in ``module``, or None."""
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def import_study_file(path: str) -> ModuleType:
    """Execute the Python file at ``path`` as a new module and return it.

    The module is named :data:`STUDY_FILE_MODULE` and left out of ``sys.modules`` (Ray
    pickles its classes by value, so workers need not import it); the file's directory
    is on ``sys.path`` while it runs, so it imports its neighbours. The trainer classes
    it defines are stored with this file (:meth:`Trainer.to_json`).

    Raises:
        ImportError: if ``path`` is not a Python file, or running it raised (the
            message names the error).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "study.py")
        >>> _ = open(path, "w").write("x = 6 * 7\\n")
        >>> import_study_file(path).x
        42
    """
    full = os.path.abspath(path)
    spec = importlib.util.spec_from_file_location(STUDY_FILE_MODULE, full)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path!r} is not a Python file; give a .py study file.")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(full))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ImportError(f"Importing {path!r} failed: {type(e).__name__}: {e}") from e
    finally:
        sys.path.remove(os.path.dirname(full))
    _STUDY_FILES.setdefault(full, []).append(module)
    return module


def trainer_from_json(data: Mapping[str, Any], study_file: str | None = None) -> Trainer:
    """Rebuild a trainer from :meth:`Trainer.to_json` output.

    The class comes from its stored ``"class"`` (its module imported, or its study file
    executed once per process), else from the registered names (records written
    before classes were stored, and the built-in trainers).

    Args:
        data: What :meth:`Trainer.to_json` returned.
        study_file: A study file to execute first and look the class up in: the
            script a class defined in ``__main__`` came from, or a study file that
            moved (``archtune resume --study-file``).

    Raises:
        ValueError: for an unknown trainer name (the message lists the known ones), or
            a class that cannot be found again (the message says how to fix it).

    Example:
        >>> trainer_from_json({"trainer": "image_classifier", "kwargs": {"epochs": 2}}).max_epochs
        2
    """
    return _trainer_class(data, study_file)(**data.get("kwargs", {}))


def _trainer_class(data: Mapping[str, Any], study_file: str | None) -> type[Trainer]:
    name, where = data.get("trainer"), data.get("class")
    module = _study_module(study_file) if study_file is not None else None
    if where is None:
        if name not in _TRAINERS and name in _TRAINER_MODULES:
            importlib.import_module(_TRAINER_MODULES[name])  # registers the trainer
        if name not in _TRAINERS:
            raise ValueError(
                f"Unknown trainer {name!r}; known trainers: {sorted(_TRAINERS)}. If a study "
                "file defines it, pass the file (archtune resume NAME --study-file FILE); "
                "else import the module that defines it first."
            )
        return _TRAINERS[name]
    module_name, _, qualname = str(where).partition(":")
    found = _resolve(module, qualname) if module is not None else None
    if found is None:
        found = _resolve(_class_module(module_name, qualname, data.get("file")), qualname)
    if not (isinstance(found, type) and issubclass(found, Trainer)):
        raise ValueError(
            f"The study's trainer class {where} is not a Trainer in its module now; "
            "restore it there, or pass the study file that defines it (--study-file)."
        )
    return found


def _study_module(path: str) -> ModuleType:
    """The module of study file ``path``: executed once per process, then reused."""
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise ValueError(f"Study file {path!r} does not exist.")
    loaded = _STUDY_FILES.get(full)
    return loaded[-1] if loaded else import_study_file(full)


def _class_module(module_name: str, qualname: str, file: str | None) -> ModuleType:
    """The module a stored trainer class lives in (see :func:`trainer_from_json`)."""
    what = f"The study's trainer class {qualname}"
    if "<locals>" in qualname:
        raise ValueError(
            f"{what} was defined inside a function, so no other process can find it; "
            "define it at the top level of a module."
        )
    if file is not None and module_name == "__main__":
        main = sys.modules.get("__main__")
        main_file = getattr(main, "__file__", None)
        if main is not None and main_file and os.path.abspath(main_file) == file:
            return main  # the script that defined it resumes its own study
        raise ValueError(
            f"{what} was defined in the script {file!r} run as __main__, which `archtune "
            "resume` does not run again (its top-level code may start a run). Move the "
            "trainer into an importable module, or pass the script with --study-file "
            "(Study.resume(study_file=...)) once a run in it is guarded by "
            "`if __name__ == '__main__':`."
        )
    if file is not None:
        if not os.path.isfile(file):
            raise ValueError(
                f"{what} was defined in the study file {file!r}, which is gone; pass "
                "where it is now with --study-file (Study.resume(study_file=...))."
            )
        return _study_module(file)
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"{what} is in module {module_name!r}, which cannot be imported here ({e}); "
            "put it on PYTHONPATH, or pass the study file that imports it (--study-file)."
        ) from e
