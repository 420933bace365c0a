"""NNI 3 model spaces as archtune architecture families.

:func:`from_nni` turns an NNI 3 ``ModelSpace`` (class or instance) into an
:class:`NniModelSpace`: its mutables (``simplify()``) become archtune parameters
(``Categorical``, ``LayerChoice`` and ``Repeat`` as categoricals, uniform and log-uniform
``Numerical`` as floats), and ``build`` freezes the model space with a sampled
configuration, so an existing NNI space trains in archtune's ``ImageClassifier``.
NNI 3.0 is no longer developed: it is imported here only, when :func:`from_nni` is called
(``pip install nni==3.0 pytorch-lightning``). The JSON search-space format is in
:mod:`spaces.nni_adapter`.

The family stores the class as ``"module:qualname"`` and its constructor's keyword
arguments as JSON, so a study can rebuild it; a class that cannot be imported back by
that name (a local class) is refused.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

from spaces.family import Family, check_build_args
from spaces.nni_adapter import grid_bounds
from spaces.params import Categorical, Fixed, Float, Param
from spaces.space import SearchSpace, nest

_CLASS = "nni_model_space"
_KWARGS = "nni_kwargs"
_SUPPLIED = ("input_shape", "num_classes")


def _import_nni() -> Any:
    try:
        with warnings.catch_warnings():
            # NNI 3.0 scans torch.nn for module classes and warns about newer torch
            # classes that are not modules (torch.nn.Buffer, ...); it works regardless.
            warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
            import nni.mutable
            import nni.nas.nn.pytorch
    except ImportError as e:
        raise ImportError(
            "NNI 3 is needed to read an NNI model space: pip install nni==3.0 "
            f"pytorch-lightning (NNI's NAS modules import it). Import failed with: {e}"
        ) from e
    return nni


def _import_class(path: str) -> type:
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class NniModelSpace(Family):
    """An NNI 3 ``ModelSpace`` as an archtune architecture family; make one with :func:`from_nni`.

    Its decisions are the model space's mutables, named by their NNI labels (a label
    ``"net/width"`` nests as ``{"net": {"width": ...}}``). Two constants identify the
    model space: ``nni_model_space`` (``"module:qualname"`` of the class) and
    ``nni_kwargs`` (its constructor's keyword arguments, as JSON). ``build`` constructs
    the class, passing ``input_shape`` and ``num_classes`` to the constructor when it
    takes them, checks that its mutables still match this space, freezes it with the
    sampled labels, and checks the network's output shape.

    Args:
        entries: Parameters by name, the two constants included.

    Raises:
        ValueError: if the two constants are missing.
    """

    kind = "nni"
    architecture = True

    def __init__(self, entries: Mapping[str, Any]) -> None:
        for key in (_CLASS, _KWARGS):
            value = entries.get(key)
            if not (isinstance(value, Fixed) and isinstance(value.value, str)):
                raise ValueError(f"NniModelSpace needs a Fixed string {key!r}; use from_nni().")
        SearchSpace.__init__(self, entries)

    @classmethod
    def _from_entries(cls, entries: dict[str, Param | SearchSpace]) -> SearchSpace:
        return cls(entries)

    def resolve(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The NNI sample ``{label: value}`` of a configuration of this family.

        Raises:
            ValueError: for a configuration that does not fit the space.
        """
        constants = {k: self[k].value for k in (_CLASS, _KWARGS)}  # type: ignore[union-attr]
        normal = self.check_config({**constants, **config})
        sample = self.flatten_config(normal)
        if any(sample.pop(k) != v for k, v in constants.items()):
            raise ValueError(f"Configuration {dict(config)} is for another NNI model space.")
        return sample

    def build(
        self, config: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int
    ) -> Any:
        """Freeze the NNI model space at ``config``; return the ``torch.nn.Module``.

        Raises:
            ValueError: if the model space changed since the conversion, or the network's
                output is not ``(batch, num_classes)``.
        """
        import torch

        shape = check_build_args(input_shape, num_classes)
        sample = self.resolve(config)
        cls = _import_class(self[_CLASS].value)  # type: ignore[union-attr]
        kwargs = json.loads(self[_KWARGS].value)  # type: ignore[union-attr]
        init = getattr(cls, "_init_wrapped", None) or cls.__init__
        accepted = inspect.signature(init).parameters
        supplied = {"input_shape": shape, "num_classes": num_classes}
        kwargs.update({k: v for k, v in supplied.items() if k in accepted})
        nni = _import_nni()
        model_space = cls(**kwargs)
        if _params(model_space, nni) != self._decisions_by_label():
            raise ValueError(
                f"{cls.__qualname__}({kwargs}) has other mutables than this space; convert "
                "it again with from_nni()."
            )
        model = model_space.freeze(sample)
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *shape))
        model.train()
        if tuple(out.shape) != (2, num_classes):
            raise ValueError(
                f"{cls.__qualname__} gives outputs of shape {tuple(out.shape)} for inputs "
                f"{(2, *shape)}, not (2, {num_classes}); let its __init__ take num_classes "
                "(and input_shape) so that build can pass them."
            )
        return model

    def _decisions_by_label(self) -> dict[str, Param]:
        return {k: v for k, v in self.flatten().items() if k not in (_CLASS, _KWARGS)}


def from_nni(model_space: Any) -> NniModelSpace:
    """An archtune family from an NNI 3 ``ModelSpace`` class (built without arguments) or instance.

    Mutables map as follows: ``Categorical`` (``nni.choice``, ``LayerChoice`` (its
    indices or names), ``Repeat`` depths) with uniform weights and scalar values ->
    ``Categorical``; ``Numerical`` uniform / log-uniform -> ``Float``, quantised ->
    ``Float(step=q)`` under :func:`grid_bounds`' rule. NNI defaults are not carried over.

    Raises:
        ImportError: if NNI 3 cannot be imported.
        TypeError: if ``model_space`` is no ``ModelSpace``.
        ValueError: for a mutable with no exact archtune parameter (``InputChoice`` /
            ``CategoricalMultiple``, a normal or custom distribution, weighted or
            non-scalar choices), constructor arguments that are positional or not
            JSON-able, or a class that cannot be imported back by its name.

    Example:
        A model space class defined at module level of an importable module::

            family = from_nni(MyModelSpace)
            space = SearchSpace({"model": family, "train": TrainingSpace()})
    """
    nni = _import_nni()
    base = nni.nas.nn.pytorch.ModelSpace
    if isinstance(model_space, type) and issubclass(model_space, base):
        cls = model_space
        try:
            instance = cls()
        except TypeError as e:
            raise TypeError(f"{cls.__qualname__}() failed ({e}); pass an instance instead.") from e
    elif isinstance(model_space, base):
        cls, instance = type(model_space), model_space
    else:
        raise TypeError(
            f"from_nni expects an NNI ModelSpace class or instance, got {model_space!r}."
        )
    path = f"{cls.__module__}:{cls.__qualname__}"
    try:
        importable = _import_class(path) is cls
    except (ImportError, AttributeError):
        importable = False
    if not importable:
        raise ValueError(
            f"{cls.__qualname__} cannot be imported back as {path!r} (defined inside a "
            "function?); define it at module level so that the space can be stored as JSON "
            "and rebuilt in Ray workers."
        )
    if instance.trace_args:
        raise ValueError(f"Construct {cls.__qualname__} with keyword arguments only.")
    kwargs = {k: v for k, v in instance.trace_kwargs.items() if k not in _SUPPLIED}
    try:
        kwargs_json = json.dumps(kwargs, sort_keys=True)
    except TypeError as e:
        raise ValueError(f"{cls.__qualname__}'s arguments {kwargs} are not JSON-able: {e}") from e
    params = _params(instance, nni)
    reserved = sorted(set(params) & {_CLASS, _KWARGS})
    if reserved:
        raise ValueError(f"NNI labels {reserved} clash with NniModelSpace's own constants.")
    return NniModelSpace({**nest(params), _CLASS: Fixed(path), _KWARGS: Fixed(kwargs_json)})


def _params(model_space: Any, nni: Any) -> dict[str, Param]:
    return {
        label: _param_from_mutable(label, m, nni) for label, m in model_space.simplify().items()
    }


def _param_from_mutable(label: str, mutable: Any, nni: Any) -> Param:
    def refuse(why: str) -> ValueError:
        return ValueError(f"NNI mutable {label!r} ({mutable!r}): {why}.")

    if isinstance(mutable, nni.mutable.Categorical):
        if any(not math.isclose(w, mutable.weights[0]) for w in mutable.weights):
            raise refuse("archtune choices are uniform; drop the weights")
        try:
            return Categorical(list(mutable.values))
        except (TypeError, ValueError) as e:
            raise refuse(str(e).rstrip(".")) from e
    if isinstance(mutable, nni.mutable.Numerical):
        dist = mutable.distribution
        log = mutable.log_distributed
        expected = (
            {"a": mutable.low, "b": mutable.high}
            if log
            else {"loc": mutable.low, "scale": mutable.high - mutable.low}
        )
        if (
            mutable.mu is not None
            or dist.dist.name not in ("uniform", "loguniform")
            or (dist.kwds != expected)
        ):
            raise refuse(
                "only uniform and log-uniform Numerical map (archtune ranges are bounded)"
            )
        if mutable.quantize is None:
            return Float(mutable.low, mutable.high, log=log)
        if log:
            raise refuse("archtune has no log scale with a step")
        try:
            low, high = grid_bounds(mutable.low, mutable.high, mutable.quantize)
        except ValueError as e:
            raise refuse(str(e)) from e
        return Fixed(low) if low == high else Float(low, high, step=mutable.quantize)
    raise refuse(
        f"a {type(mutable).__name__} has no archtune parameter (InputChoice and "
        "CategoricalMultiple choose several values; archtune maps Categorical and Numerical)"
    )
