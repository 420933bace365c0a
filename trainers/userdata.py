"""A user's data function: naming it by import path, resolving it, checking its result.

A source may be a module-level function returning arrays or ``Dataset`` objects (see
:func:`read_callable`); specs name it by its path ``"package.module:function"`` so Ray
workers can import it.

Example:
    >>> from trainers.datasets import read_digits
    >>> resolve_callable(callable_path(read_digits)) is read_digits
    True
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from trainers.datasets import Loaded, TensorSplit, split_bytes

_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_CALLABLE_HOW = (
    "define the function at the top level of an importable module (not __main__, so that "
    "Ray workers can import it) and pass it, or its path 'package.module:function'"
)


def is_import_path(text: str) -> bool:
    """Whether ``text`` has the form ``"package.module:function"``."""
    return bool(_PATH.match(text))


def callable_path(fn: Callable[..., Any]) -> str:
    """The ``"module:qualname"`` import path of a module-level function or class.

    Example:
        >>> from trainers.datasets import read_digits
        >>> callable_path(read_digits)
        'trainers.datasets:read_digits'

    Raises:
        ValueError: for a lambda, a local function, a function of ``__main__``, or any
            object that its path does not import back.
    """
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ValueError(
            f"Cannot name the data source {fn!r} by an import path (a lambda, a local or "
            f"__main__ function, or a callable object); {_CALLABLE_HOW}."
        )
    path = f"{module}:{qualname}"
    try:
        found = resolve_callable(path)
    except (ImportError, ValueError):
        found = None
    if found is not fn and found != fn:
        raise ValueError(f"{path} does not import back to {fn!r}; {_CALLABLE_HOW}.")
    return path


def resolve_callable(path: str) -> Callable[..., Any]:
    """Import the callable named ``"package.module:function"``.

    Example:
        >>> from trainers.datasets import read_digits
        >>> resolve_callable("trainers.datasets:read_digits") is read_digits
        True

    Raises:
        ValueError: for a malformed path or a name that is not callable.
        ImportError: when the module or the name does not exist.
    """
    if not _PATH.match(path):
        raise ValueError(f"{path!r} is not an import path; write it 'package.module:function'.")
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise ImportError(f"Module {module!r} has no {qualname!r} (from {path!r}).")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{path!r} names {type(obj).__name__}, not a callable.")
    return obj


def _is_array(obj: Any) -> bool:
    return isinstance(obj, (torch.Tensor, np.ndarray))


def _is_dataset(obj: Any) -> bool:
    return not _is_array(obj) and hasattr(obj, "__getitem__") and hasattr(obj, "__len__")


def _as_split(x: Any, y: Any, name: str) -> TensorSplit:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.ndim != 4:
        raise ValueError(
            f"x_{name} must have shape (N, C, H, W), got {tuple(x.shape)}; add a channel "
            "axis to grayscale images (x[:, None])."
        )
    if not x.is_floating_point():
        raise ValueError(
            f"x_{name} has dtype {x.dtype}; return float images normalised as the network "
            "should see them (e.g. (x / 255 - mean) / std)."
        )
    if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"y_{name} must be 1-D integer labels, got {y.dtype} {tuple(y.shape)}.")
    if len(x) != len(y):
        raise ValueError(f"x_{name} has {len(x)} examples but y_{name} has {len(y)}.")
    if len(y) == 0:
        raise ValueError(f"The {name} split is empty; return at least one example.")
    if int(y.min()) < 0:
        raise ValueError(f"y_{name} has label {int(y.min())}; labels must lie in 0..classes-1.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"x_{name} holds NaN or infinite values.")
    return TensorSplit(x.float().contiguous(), y.long().contiguous())


def _declared_classes(ds: Any) -> int | None:
    n = getattr(ds, "num_classes", None)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    classes = getattr(ds, "classes", None)
    return len(classes) if classes is not None else None


def _first_item(ds: Any, name: str) -> torch.Tensor:
    if len(ds) == 0:
        raise ValueError(f"The {name} Dataset is empty; return at least one example.")
    item = ds[0]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(f"{name}[0] must be an (image, label) pair, got {type(item).__name__}.")
    x, y = item
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or not x.is_floating_point():
        desc = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}[0]'s image must be a float tensor (C, H, W), got {desc}.")
    if not isinstance(y, (int, np.integer, torch.Tensor)) or isinstance(y, bool):
        raise ValueError(f"{name}[0]'s label must be an int, got {type(y).__name__}.")
    return x


def _materialise(ds: Any, name: str, shape: tuple[int, ...]) -> TensorSplit:
    xs, ys = [], []
    for i in range(len(ds)):
        x, y = ds[i]
        if tuple(x.shape) != shape:
            raise ValueError(f"{name}[{i}] has shape {tuple(x.shape)}, {name}[0] has {shape}.")
        xs.append(x)
        ys.append(int(y))
    return _as_split(torch.stack(xs), torch.tensor(ys), name)


def read_callable(path: str, data_dir: str | None, in_memory_limit: int) -> Loaded:
    """Call the user's data function: ``fn()``, or ``fn(data_dir)`` when one is given.

    It returns either arrays or tensors ``(x_train, y_train, x_val, y_val)`` with an
    optional ``x_test, y_test`` (images float ``(N, C, H, W)``, labels int), or torch
    ``Dataset`` objects ``(train, val)`` or ``(train, val, test)`` whose items are
    ``(float image (C, H, W), int label)``. The data is used as given (normalise it in the
    function). The classes are the Dataset's ``num_classes`` or ``len(classes)`` when it
    has one, else the largest label plus one; a Dataset beyond ``in_memory_limit`` must
    say (its labels are not scanned).

    Raises:
        TypeError: when the result has neither form.
        ValueError: for mismatched lengths or shapes, non-float images, bad labels.
    """
    out = resolve_callable(path)(*([data_dir] if data_dir is not None else []))
    names: tuple[str, ...] = ("train", "val", "test")
    if isinstance(out, (tuple, list)) and len(out) in (4, 6) and all(map(_is_array, out)):
        sets: list[Dataset] = [
            _as_split(out[2 * i], out[2 * i + 1], names[i]) for i in range(len(out) // 2)
        ]
    elif isinstance(out, (tuple, list)) and len(out) in (2, 3) and all(map(_is_dataset, out)):
        sets = list(out)
    else:
        raise TypeError(
            f"{path} returned {type(out).__name__}; return (x_train, y_train, x_val, y_val"
            "[, x_test, y_test]) as arrays or tensors, or (train, val[, test]) torch Datasets."
        )
    names = names[: len(sets)]
    firsts = [_first_item(ds, n) for ds, n in zip(sets, names, strict=True)]
    shape = tuple(int(s) for s in firsts[0].shape)
    for x, n in zip(firsts, names, strict=True):
        if tuple(x.shape) != shape:
            raise ValueError(f"The {n} images have shape {tuple(x.shape)}, train's {shape}.")
    nbytes = split_bytes(sum(len(ds) for ds in sets), shape)
    declared = _declared_classes(sets[0])
    if nbytes <= in_memory_limit:
        sets = [
            ds if isinstance(ds, TensorSplit) else _materialise(ds, n, shape)
            for ds, n in zip(sets, names, strict=True)
        ]
    if all(isinstance(ds, TensorSplit) for ds in sets):
        top = max(int(ds.y.max()) for ds in sets) + 1  # type: ignore[attr-defined]
        if declared is not None and top > declared:
            raise ValueError(
                f"{path} has label {top - 1} but declares {declared} classes; labels must "
                f"lie in 0..{declared - 1}."
            )
        declared = declared or top
    elif declared is None:
        raise ValueError(
            f"The train Dataset of {path} is too large to scan its labels; give it a "
            "num_classes (int) or classes (list of names) attribute."
        )
    return Loaded(
        sets[0],
        sets[1],
        sets[2] if len(sets) > 2 else None,
        declared,  # type: ignore[arg-type]  # an int here: None raised above
        shape,
        nbytes,
    )
