"""The nested search space: a tree of parameters and sub-spaces.

A :class:`SearchSpace` maps names to parameters (:mod:`spaces.params`), constants, or
further spaces. Paths join names with ``/`` (``"model/depth"``); that flat view is what
controllers see, and :meth:`SearchSpace.unflatten` turns their flat proposal back into
the nested configuration a trainer reads.

Architecture families (``ResNetSpace``) and ``TrainingSpace`` are subclasses with a
registered ``kind``, so a whole space survives a JSON round trip.

Example:
    >>> from spaces import SearchSpace, Float, Int
    >>> space = SearchSpace({"a": Int(1, 3), "opt": {"lr": Float(1e-3, 1.0, log=True)}})
    >>> sorted(space.flatten())
    ['a', 'opt/lr']
    >>> space.unflatten({"a": 2, "opt/lr": 0.1})
    {'a': 2, 'opt': {'lr': 0.1}}
    >>> SearchSpace.from_json(space.to_json()) == space
    True
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from spaces.constraints import Constraint
from spaces.params import Fixed, Param, param_from_json

SEP = "/"
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

_KINDS: dict[str, type[SearchSpace]] = {}
# Where the built-in kinds live, for JSON read before their module was imported.
_KIND_MODULES = {
    "resnet": "spaces.resnet",
    "densenet": "spaces.densenet",
    "nni": "spaces.nni_model",
    "training": "spaces.training",
}


class SearchSpace(Mapping[str, "Param | SearchSpace"]):
    """A nested, immutable mapping of names to parameters and sub-spaces.

    Args:
        entries: Names (no ``/``) to a :class:`~spaces.params.Param`, a nested
            ``SearchSpace`` or plain dict, or a JSON scalar (stored as ``Fixed``).

        constraints: Bounds on model statistics (:class:`~spaces.Constraint`), checked
            on every proposal before it trains.

    Raises:
        TypeError: for a non-string name or a value that is none of the above.
        ValueError: for an empty name or one containing ``/``.
    """

    kind: ClassVar[str] = "space"
    # Architecture families set this: their decisions make up a configuration's arch_id.
    architecture: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is None:
            return
        if kind in _KINDS:
            raise ValueError(f"Space kind {kind!r} is already registered by {_KINDS[kind]}.")
        _KINDS[kind] = cls

    def __init__(self, entries: Mapping[str, Any], constraints: Sequence[Constraint] = ()) -> None:
        if not isinstance(entries, Mapping):
            raise TypeError(f"SearchSpace expects a dict of name -> parameter, got {entries!r}.")
        self._entries: dict[str, Param | SearchSpace] = {}
        for name, value in entries.items():
            if not isinstance(name, str):
                raise TypeError(f"SearchSpace: name {name!r} must be a string.")
            if not name or SEP in name:
                raise ValueError(
                    f"SearchSpace: name {name!r} must be non-empty and contain no '/'."
                )
            self._entries[name] = _coerce(name, value)
        self._order = self._check_conditions()
        self.constraints = tuple(constraints)
        for c in self.constraints:
            if not isinstance(c, Constraint):
                raise TypeError(f"constraints must be Constraint(...) objects, got {c!r}.")

    # Conditions --------------------------------------------------------------------
    def conditions(self) -> dict[str, dict[str, tuple[Any, ...]]]:
        """``{path: {parent path: allowed values}}`` of every conditional leaf."""
        out: dict[str, dict[str, tuple[Any, ...]]] = {}
        for name, value in self._entries.items():
            if isinstance(value, SearchSpace):
                for sub, cond in value.conditions().items():
                    out[f"{name}{SEP}{sub}"] = {f"{name}{SEP}{k}": v for k, v in cond.items()}
            elif value.when:
                out[name] = dict(value.when)
        return out

    def _check_conditions(self) -> list[str]:
        """Validate this level's conditions; return the leaf paths, parents first."""
        leaves = self.flatten_unordered()
        conditions = self.conditions()
        for path, cond in conditions.items():
            for parent, allowed in cond.items():
                if parent not in leaves:
                    raise ValueError(
                        f"Parameter {path!r} is conditioned on {parent!r}, which is not a "
                        f"parameter of the same space; valid names: {sorted(leaves)}."
                    )
                bad = [v for v in allowed if not leaves[parent].contains(v)]
                if bad:
                    raise ValueError(
                        f"Condition of {path!r} on {parent!r} lists {bad}, which "
                        f"{leaves[parent]!r} never takes."
                    )
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(path: str, trail: list[str]) -> None:
            if state.get(path) == 2:
                return
            if state.get(path) == 1:
                cycle = " -> ".join([*trail[trail.index(path) :], path])
                raise ValueError(f"Conditions form a cycle: {cycle}; remove one of them.")
            state[path] = 1
            for parent in conditions.get(path, {}):
                visit(parent, [*trail, path])
            state[path] = 2
            order.append(path)

        for path in leaves:
            visit(path, [])
        return order

    def assign(self, choose: Callable[[str, Param], Any]) -> dict[str, Any]:
        """Walk the active leaves, parents first, asking ``choose(path, param)`` for each value.

        ``Fixed`` leaves take their value without asking. This is how a proposal is
        built one decision at a time (Optuna's define-by-run, random sampling): a
        conditional leaf is visited only once its parents have values that activate it.
        ``choose`` may return :data:`MISSING` to leave a leaf (and what hangs on it) out.
        """
        conditions = self.conditions()
        values: dict[str, Any] = {}
        for path, param in self.flatten().items():
            cond = conditions.get(path, {})
            if all(p in values and _member(values[p], ok) for p, ok in cond.items()):
                value = param.value if isinstance(param, Fixed) else choose(path, param)
                if value is not MISSING:
                    values[path] = value
        return values

    def active(self, values: Mapping[str, Any]) -> list[str]:
        """The leaf paths active under the flat ``values``, parents before children.

        A conditional leaf is active when every parent it names is active and has one
        of the allowed values; leaves without conditions are always active.
        """
        on: list[str] = []

        def choose(path: str, _param: Param) -> Any:
            on.append(path)
            return values.get(path, MISSING)

        fixed = [p for p in self.assign(choose) if p not in on]
        order = list(self.flatten())
        return sorted([*on, *fixed], key=order.index)

    def arch_id(self, config: Mapping[str, Any]) -> str:
        """A canonical id of the architecture a configuration describes.

        The hash covers the active values of the architecture families only (not the
        training knobs, not inactive choices), so two proposals that build the same
        network share an id even when they differ in unused decisions.
        """
        normal = self.unflatten(self.flatten_config(config))
        keep = {k: v for k, v in normal.items() if getattr(self.get(k), "architecture", False)}
        payload = json.dumps(keep or normal, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A random configuration (nested), every active decision drawn from ``rng``."""
        return self.unflatten(self.assign(lambda _path, param: param.sample(rng)))

    # Mapping protocol -------------------------------------------------------------
    def __getitem__(self, name: str) -> Param | SearchSpace:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:  # constraints are part of to_json
        return isinstance(other, SearchSpace) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.dumps())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self._entries.items())
        return f"{type(self).__name__}({{{inner}}})"

    # Flat view --------------------------------------------------------------------
    def flatten_unordered(self) -> dict[str, Param]:
        """All leaves by their ``/``-joined path, in declaration order."""
        out: dict[str, Param] = {}
        for name, value in self._entries.items():
            if isinstance(value, SearchSpace):
                for sub, leaf in value.flatten_unordered().items():
                    out[f"{name}{SEP}{sub}"] = leaf
            else:
                out[name] = value
        return out

    def flatten(self) -> dict[str, Param]:
        """All leaves by their ``/``-joined path, constants included, parents first."""
        leaves = self.flatten_unordered()
        return {path: leaves[path] for path in self._order}

    def decisions(self) -> dict[str, Param]:
        """The leaves a controller chooses: every parameter except ``Fixed`` ones."""
        return {k: v for k, v in self.flatten().items() if not isinstance(v, Fixed)}

    def unflatten(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Nest a flat ``{path: value}`` proposal, filling in constants.

        Only active leaves enter the configuration; values given for inactive ones are
        dropped (they did not take part in the decision).

        Raises:
            ValueError: if an active decision is missing, a value lies outside its
                parameter, or a path is not in the space.
        """
        leaves = self.flatten()
        unknown = sorted(set(values) - set(leaves))
        if unknown:
            raise ValueError(
                f"Unknown parameter path(s) {unknown}; valid paths: {sorted(leaves)}."
            )
        full = {p: v.value for p, v in leaves.items() if isinstance(v, Fixed)}
        full.update(values)
        config: dict[str, Any] = {}
        for path in self.active(full):
            param = leaves[path]
            if path not in full:
                raise ValueError(f"Missing value for parameter {path!r} ({param!r}).")
            value = full[path]
            if not param.contains(value):
                raise ValueError(f"Value {value!r} for {path!r} lies outside {param!r}.")
            node = config
            *parents, leaf = path.split(SEP)
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        return config

    def flatten_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`unflatten`: nested configuration to ``{path: value}``.

        Raises:
            ValueError: if an active leaf has no value in ``config``.
        """
        flat: dict[str, Any] = {}
        for path in self.flatten():
            node: Any = config
            for part in path.split(SEP):
                if not isinstance(node, Mapping) or part not in node:
                    break
                node = node[part]
            else:
                flat[path] = node
        missing = [p for p in self.active(flat) if p not in flat]
        if missing:
            raise ValueError(f"Configuration has no value for {missing}.")
        return flat

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a nested configuration (e.g. read back from JSON); return it normalised.

        Raises:
            ValueError: for a missing, unknown, inactive or out-of-range value.
        """
        normal = self.unflatten(self.flatten_config(config))
        if _count_leaves(config) != _count_leaves(normal):
            raise ValueError(
                "Configuration has values the space does not use (unknown or inactive keys); "
                f"the space makes it {normal}."
            )
        return normal

    # JSON -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_json` turns back into an equal space."""
        data = {
            "type": "space",
            "kind": self.kind,
            "entries": {k: v.to_json() for k, v in self._entries.items()},
        }
        if self.constraints:
            data["constraints"] = [c.to_json() for c in self.constraints]
        return data

    def dumps(self) -> str:
        """The space as a canonical JSON string."""
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def _from_entries(cls, entries: dict[str, Param | SearchSpace]) -> SearchSpace:
        return cls(entries)

    @staticmethod
    def from_json(data: Mapping[str, Any] | str) -> SearchSpace:
        """Rebuild a space from :meth:`to_json` output (a dict or its JSON string)."""
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, Mapping) or data.get("type") != "space":
            raise ValueError(f"Expected a space dict with type 'space', got {data!r}.")
        kind = data.get("kind", "space")
        if kind not in _KINDS and kind in _KIND_MODULES:
            importlib.import_module(_KIND_MODULES[kind])  # registers the kind
        if kind not in _KINDS:
            raise ValueError(f"Unknown space kind {kind!r}; known kinds: {sorted(_KINDS)}.")
        entries = {
            k: SearchSpace.from_json(v) if v.get("type") == "space" else param_from_json(v)
            for k, v in data["entries"].items()
        }
        space = _KINDS[kind]._from_entries(entries)
        if data.get("constraints"):
            if kind != "space":
                raise ValueError(f"Constraints belong on a plain SearchSpace, not on {kind!r}.")
            space = SearchSpace(entries, [Constraint(**c) for c in data["constraints"]])
        return space


_KINDS["space"] = SearchSpace


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Nest ``{"a/b": x}`` into ``{"a": {"b": x}}``.

    Raises:
        ValueError: if a name is used both as a leaf and as a group.
    """
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *groups, leaf = path.split(SEP)
        for g in groups:
            node = node.setdefault(g, {})
            if not isinstance(node, dict):
                raise ValueError(f"Name {path!r} nests under the parameter {g!r}.")
        if leaf in node:
            raise ValueError(f"Name {path!r} is also used as a group name.")
        node[leaf] = value
    return tree


def _member(value: Any, allowed: tuple[Any, ...]) -> bool:
    return any(type(value) is type(a) and value == a for a in allowed)


def _count_leaves(config: Mapping[str, Any]) -> int:
    return sum(_count_leaves(v) if isinstance(v, Mapping) else 1 for v in config.values())


def _coerce(name: str, value: Any) -> Param | SearchSpace:
    if isinstance(value, (Param, SearchSpace)):
        return value
    if isinstance(value, Mapping):
        return SearchSpace(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return Fixed(value)
    raise TypeError(
        f"SearchSpace: {name!r} = {value!r} is not a parameter; use Float, Int, Categorical, "
        "Fixed, a nested dict, or a str/int/float/bool constant."
    )
