"""A controller as data: what a study stores so that a resume rebuilds the same search.

A :class:`ControllerSpec` names a controller (a name from
:func:`search.list_controllers`, or the import path of any Optuna sampler class), its
seed and its options. :func:`search.make_controller` remembers the spec of every sampler
it makes (in a weak table; nothing is written onto the sampler), so a study run with
that sampler stores exactly how to make it again. A sampler that archtune did not make
is stored by its class's import path (:func:`controller_spec`): its options are not
known, so a resume rebuilds it with its defaults, unless a spec with options is given.

One rule decides the seed of a run that continues a study (:meth:`ControllerSpec.
continued`): a *rebuildable* controller (its state is a function of the study's trials
and its randomness is drawn per trial number: ``evolution``, ``rl``, the NNI adapters)
keeps its seed and continues the same search; any other (Optuna's samplers keep a random
generator in memory) would replay its first proposals with the old seed, so it gets
``seed + trials already in the study``: different from the first run, yet reproducible.

Example:
    >>> spec = ControllerSpec("tpe", seed=0, options={"n_startup_trials": 5})
    >>> ControllerSpec.from_json(spec.to_json()) == spec
    True
    >>> spec.continued(12).seed, ControllerSpec("evolution", seed=0).continued(12).seed
    (12, 0)
"""

from __future__ import annotations

import importlib
import inspect
import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import optuna

# The spec of each sampler make_controller made, without writing onto the sampler.
_MADE: weakref.WeakKeyDictionary[optuna.samplers.BaseSampler, ControllerSpec] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class ControllerSpec:
    """How to make a controller: a registered name or an import path, seed and options.

    Attributes:
        name: A name from :func:`search.list_controllers`, or the import path of an
            :class:`optuna.samplers.BaseSampler` subclass (``"optuna.samplers.CmaEsSampler"``
            or ``"package.module:Class"``).
        seed: The seed; None draws one (a rebuildable controller's drawn seed is
            recorded by :func:`search.make_controller`).
        options: The controller's own keyword options, JSON-able.

    Raises:
        TypeError: for a name that is not a string, a bad seed, or options that are not
            a JSON-able mapping.
    """

    name: str
    seed: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"A controller name must be a non-empty string, got {self.name!r}.")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise TypeError(f"A controller seed must be an int or None, got {self.seed!r}.")
        if not isinstance(self.options, Mapping):
            raise TypeError(
                f"Controller options must be a dict, got {type(self.options).__name__}."
            )
        try:
            json.dumps(dict(self.options))
        except TypeError as e:
            raise TypeError(
                f"Controller {self.name!r} options {dict(self.options)!r} are not JSON-able "
                f"({e}); a study stores them to resume. Pass plain numbers, strings and lists."
            ) from None
        object.__setattr__(self, "options", dict(self.options))

    @property
    def registered(self) -> bool:
        """Whether :attr:`name` is a registered controller (not an import path)."""
        from search.registry import list_controllers

        return self.name in list_controllers()

    def build(self) -> optuna.samplers.BaseSampler:
        """Make the sampler.

        Raises:
            ValueError: for an unknown name, or an import path that does not resolve to a
                sampler class.
            TypeError: for an option the controller does not take.
        """
        from search.registry import make_controller

        if self.registered:
            return make_controller(self.name, seed=self.seed, **self.options)
        cls = _import_sampler(self.name)
        params = inspect.signature(cls).parameters
        unknown = sorted(k for k in self.options if k not in params)
        if unknown:
            raise TypeError(
                f"{self.name} takes no option(s) {unknown}; its options: {sorted(params)}."
            )
        kwargs = dict(self.options)
        if "seed" in params and self.seed is not None:
            kwargs["seed"] = self.seed
        sampler = cls(**kwargs)
        _MADE[sampler] = self
        return sampler

    def continued(self, trials_before: int) -> ControllerSpec:
        """The spec for a run that continues a study already holding ``trials_before`` trials.

        A rebuildable controller keeps its seed (it continues the same search); any other
        with a seed gets ``seed + trials_before``, so it does not replay its first proposals.
        """
        if self.seed is None or trials_before <= 0 or self.rebuildable():
            return self
        return replace(self, seed=self.seed + trials_before)

    def rebuildable(self) -> bool:
        """Whether the controller rebuilds its whole state from the study (class attribute
        ``rebuildable`` of archtune's samplers)."""
        if self.registered:
            from search.registry import controller_class_rebuildable

            return controller_class_rebuildable(self.name)
        try:
            return bool(getattr(_import_sampler(self.name), "rebuildable", False))
        except ValueError:
            return False

    def to_json(self) -> dict[str, Any]:
        """``{"name", "seed", "options"}``, as a study stores it."""
        return {"name": self.name, "seed": self.seed, "options": dict(self.options)}

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> ControllerSpec:
        """The spec stored by :meth:`to_json` (or, as studies stored it once, a bare name)."""
        if isinstance(data, str):
            return cls(data)
        return cls(data["name"], data.get("seed"), data.get("options") or {})


def controller_spec(sampler: optuna.samplers.BaseSampler) -> tuple[ControllerSpec, bool]:
    """The spec of ``sampler`` and whether it is exact.

    Exact for a sampler :func:`search.make_controller` or :meth:`ControllerSpec.build`
    made. Otherwise the spec is the sampler's class by import path, with no options and
    no seed (Optuna's samplers do not expose the arguments they were made with): a resume
    rebuilds it with its defaults.

    Raises:
        TypeError: if ``sampler`` is not an Optuna sampler.
    """
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise TypeError(
            "controller must be an Optuna sampler, a controller name or a ControllerSpec, "
            f"got {sampler!r}."
        )
    made = _MADE.get(sampler)
    if made is not None:
        return made, True
    return ControllerSpec(class_path(type(sampler))), False


def class_path(cls: type) -> str:
    """The shortest import path of ``cls``: ``optuna.samplers.CmaEsSampler``, not the
    private module it is defined in, when a package above re-exports it.

    Example:
        >>> class_path(optuna.samplers.CmaEsSampler)
        'optuna.samplers.CmaEsSampler'
    """
    parts = cls.__module__.split(".")
    if parts[0] == "__main__" or "<locals>" in cls.__qualname__:
        parts = []  # another process cannot import it
    for end in range(1, len(parts) + 1):
        module = ".".join(parts[:end])
        try:
            obj: Any = importlib.import_module(module)
            for attr in cls.__qualname__.split("."):
                obj = getattr(obj, attr)
        except (ImportError, AttributeError):
            continue
        if obj is cls:
            return f"{module}.{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"  # not importable (e.g. from __main__)


def importable(spec: ControllerSpec) -> bool:
    """Whether ``spec`` names a registered controller or a sampler class another process
    (``archtune resume``) can import."""
    if spec.registered:
        return True
    try:
        _import_sampler(spec.name)
    except ValueError:
        return False
    return True


def remember(sampler: optuna.samplers.BaseSampler, spec: ControllerSpec) -> None:
    """Record ``spec`` as how ``sampler`` was made (for :func:`search.make_controller`)."""
    _MADE[sampler] = spec


def _import_sampler(path: str) -> type[optuna.samplers.BaseSampler]:
    from search.registry import list_controllers

    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    hint = (
        f"Unknown controller {path!r}; choose one of {sorted(list_controllers())} or give "
        "the import path of an Optuna sampler class (e.g. 'optuna.samplers.CmaEsSampler')"
    )
    if not module_name or not attr:
        raise ValueError(hint + ".")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{hint}; importing it failed: {type(e).__name__}: {e}.") from None
    if not (isinstance(obj, type) and issubclass(obj, optuna.samplers.BaseSampler)):
        raise ValueError(f"{hint}; {path!r} is {obj!r}.")
    return obj
