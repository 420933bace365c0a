"""Data sources: JSON-able specs, early checks, and loading once per process.

A source (bundled ``"digits"``, ``"cifar10"`` files, an image ``"folder"``, or a user's
function) is described by a spec (:func:`describe_source`), checked on the driver
without reading pixels (:func:`check_source`), and loaded by :func:`load_data` into one
of the two forms of :mod:`trainers.data`, at most once per process and spec (a reused
Ray actor does not read the files again). Every name here is also importable from
:mod:`trainers.data`.

Example:
    >>> spec = describe_source("digits", seed=3)
    >>> spec["source"], spec["val_fraction"], spec["seed"]
    ('digits', 0.2, 3)
    >>> load_data(**spec).num_train
    1437
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainers import datasets as ds
from trainers.cifar10 import cifar10_dir, read_cifar10
from trainers.imagefolder import folder_index, read_folder
from trainers.userdata import callable_path, is_import_path, read_callable, resolve_callable

if TYPE_CHECKING:  # trainers.data imports this module; its forms are imported when used
    from trainers.data import LoaderData, TensorData

DATASETS = ("digits",)  # bundled with the package (no files needed)
SOURCES = ("digits", "cifar10", "folder")  # named sources; a function is the fourth kind
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_IN_MEMORY_LIMIT = 1 << 30  # 1 GiB of float32 images: CIFAR-10 (0.74 GB) fits


def _int_at_least(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


def _image_size(image_size: Any) -> list[int] | None:
    if image_size is None:
        return None
    size = [image_size, image_size] if isinstance(image_size, int) else image_size
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size)
    ):
        raise ValueError(f"image_size must be an int or (height, width) ints, got {image_size!r}.")
    return [int(size[0]), int(size[1])]


def _source_name(source: Any) -> str:
    if callable(source):
        return callable_path(source)
    if not isinstance(source, str):
        raise TypeError(
            f"source must be one of {list(SOURCES)}, a function or 'package.module:function', "
            f"got {type(source).__name__}."
        )
    if source not in SOURCES and ":" not in source:
        raise ValueError(
            f"Unknown dataset {source!r}; use one of {list(SOURCES)}, a module-level "
            "function, or its import path 'package.module:function'."
        )
    if source not in SOURCES and not is_import_path(source):
        raise ValueError(f"{source!r} is not an import path; write 'package.module:function'.")
    return source


def describe_source(
    source: str | Callable[..., Any],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    val_fraction: float | None = None,
    seed: int = 0,
    image_size: int | tuple[int, int] | list[int] | None = None,
    in_memory_limit: int = DEFAULT_IN_MEMORY_LIMIT,
    num_workers: int | None = None,
) -> dict[str, Any]:
    """The JSON-able spec of a data source; ``load_data(**spec)`` loads it. No file is read.

    Args:
        source: ``"digits"``, ``"cifar10"``, ``"folder"``, a module-level function, or its
            import path ``"package.module:function"`` (see
            :func:`trainers.userdata.read_callable`; called with ``data_dir`` when given).
        data_dir: The CIFAR-10 folder (``cifar-10-batches-py`` or its parent) or image
            folder (see :func:`trainers.imagefolder.folder_index`); made absolute, since Ray
            workers run in other directories.
        val_fraction: Share of the training data held out for validation, in (0, 1);
            ``None`` means 0.2. Must stay ``None`` where the source brings its own
            validation split (a function; a folder with ``val/``).
        seed: Seed of the split (and of a large folder's statistics sample).
        image_size: ``(height, width)`` (or one int for square) images of a folder are
            resized to; ``None`` where all have one size.
        in_memory_limit: Bytes (float32) up to which the data is held as tensors
            (:class:`TensorData`); beyond, it is read through a DataLoader. 0 forces that.
        num_workers: DataLoader workers; ``None`` means up to 4, leaving one CPU free.

    Example:
        >>> describe_source("digits")["val_fraction"]
        0.2

    Raises:
        ValueError: for an unknown source, a lambda or local function, or an argument
            that does not apply to the source.
        TypeError: when ``source`` is neither a string nor callable.
    """
    source = _source_name(source)
    is_fn = source not in SOURCES
    if source in ("cifar10", "folder") and data_dir is None:
        raise ValueError(f"Source {source!r} reads files; pass data_dir= their folder.")
    if source == "digits" and data_dir is not None:
        raise ValueError("'digits' is bundled with scikit-learn; leave data_dir=None.")
    if image_size is not None and source != "folder":
        raise ValueError(f"image_size applies to 'folder' only; leave it None for {source!r}.")
    if is_fn and val_fraction is not None:
        raise ValueError(
            "A data function returns its own validation split; leave val_fraction=None."
        )
    if val_fraction is not None and not (
        isinstance(val_fraction, float) and 0.0 < val_fraction < 1.0
    ):
        raise ValueError(f"val_fraction must be a float in (0, 1), got {val_fraction!r}.")
    if source in ("digits", "cifar10") and val_fraction is None:
        val_fraction = DEFAULT_VAL_FRACTION
    workers = None if num_workers is None else _int_at_least(num_workers, "num_workers", 0)
    return {
        "source": source,
        "data_dir": None if data_dir is None else os.path.abspath(os.path.expanduser(data_dir)),
        "val_fraction": val_fraction,
        "seed": _int_at_least(seed, "seed", 0),
        "image_size": _image_size(image_size),
        "in_memory_limit": _int_at_least(in_memory_limit, "in_memory_limit", 0),
        "num_workers": workers,
    }


def check_source(
    source: str | Callable[..., Any],
    data_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """:func:`describe_source`, then the checks that need no pixels, for the driver.

    A CIFAR-10 folder must hold every batch file; an image folder is indexed (layout,
    classes, every image's header, sizes); a function's module is imported (it is not
    called). ``options`` are :func:`describe_source`'s keywords.

    Example:
        >>> check_source("digits", seed=1)["seed"]
        1

    Raises:
        FileNotFoundError: for missing files, saying where they belong.
        ValueError: as :func:`describe_source`, or for a folder that does not fit.
        ImportError: when the function's module or name does not exist.
    """
    spec = describe_source(source, data_dir, **options)
    if spec["source"] == "cifar10":
        cifar10_dir(spec["data_dir"])
    elif spec["source"] == "folder":
        size = spec["image_size"]
        index = folder_index(spec["data_dir"], tuple(size) if size else None)
        if "val" in index.parts and spec["val_fraction"] is not None:
            raise ValueError(
                f"{spec['data_dir']} has a val/ folder, which is the validation split; "
                f"leave val_fraction=None (got {spec['val_fraction']})."
            )
    elif spec["source"] not in SOURCES:
        resolve_callable(spec["source"])
    return spec


def _num_workers(requested: int | None) -> int:
    if requested is not None:
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(4, max(0, (cpus or 1) - 1))


def _read(spec: dict[str, Any]) -> ds.Loaded:
    source, limit = spec["source"], spec["in_memory_limit"]
    if source == "digits":
        return ds.read_digits(spec["val_fraction"], spec["seed"])
    if source == "cifar10":
        return read_cifar10(spec["data_dir"], spec["val_fraction"], spec["seed"])
    if source == "folder":
        size = tuple(spec["image_size"]) if spec["image_size"] else None
        return read_folder(spec["data_dir"], size, spec["val_fraction"], spec["seed"], limit)
    return read_callable(source, spec["data_dir"], limit)


@functools.lru_cache(maxsize=4)
def _load(key: str) -> TensorData | LoaderData:
    from trainers.data import LoaderData, TensorData

    spec = json.loads(key)
    loaded = _read(spec)
    if loaded.nbytes <= spec["in_memory_limit"]:
        splits = [loaded.train, loaded.val, loaded.test]
        if all(isinstance(s, ds.TensorSplit) for s in splits if s is not None):
            test = loaded.test
            return TensorData(
                loaded.train.x,  # type: ignore[attr-defined]
                loaded.train.y,  # type: ignore[attr-defined]
                loaded.val.x,  # type: ignore[attr-defined]
                loaded.val.y,  # type: ignore[attr-defined]
                loaded.num_classes,
                None if test is None else test.x,  # type: ignore[attr-defined]
                None if test is None else test.y,  # type: ignore[attr-defined]
                loaded.class_names,
            )
    return LoaderData(
        loaded.train,
        loaded.val,
        loaded.test,
        loaded.num_classes,
        loaded.input_shape,
        _num_workers(spec["num_workers"]),
        class_names=loaded.class_names,
    )


def load_data(
    source: str | Callable[..., Any],
    data_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> TensorData | LoaderData:
    """Load a data source on the CPU: :class:`TensorData` within ``in_memory_limit``,
    else :class:`LoaderData`. Call ``.to(device)`` on the result.

    Arguments are :func:`describe_source`'s (so ``load_data(**spec)`` works). The result
    is cached per process by spec (four specs at most); treat it as read-only.

    Example:
        >>> load_data("digits") is load_data(**describe_source("digits"))
        True
        >>> type(load_data("digits", in_memory_limit=0)).__name__
        'LoaderData'

    Raises:
        FileNotFoundError: for missing files, saying where they belong.
        ValueError: for a source or argument that does not fit, with how to fix it.
        TypeError: for a data function whose result has neither accepted form.
    """
    spec = describe_source(source, data_dir, **options)
    return _load(json.dumps(spec, sort_keys=True))


def clear_cache() -> None:
    """Forget the data loaded in this process (and the image folders indexed)."""
    _load.cache_clear()
    folder_index.cache_clear()


def load_dataset(name: str, val_fraction: float = 0.2, seed: int = 0) -> TensorData:
    """A bundled dataset as tensors: ``load_data(name, ...)`` kept for existing callers.

    Args:
        name: One of :data:`DATASETS`. ``"digits"`` is scikit-learn's bundled 8x8
            handwritten digits (1,797 images, 10 classes), shipped with the package.
        val_fraction: Share of examples held out for validation, in (0, 1).
        seed: Seed of the split; the same for every trial of a study.

    Example:
        >>> load_dataset("digits", 0.2, 0).input_shape
        (1, 8, 8)

    Raises:
        ValueError: for an unknown name or a fraction outside (0, 1).
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; available: {list(DATASETS)}.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}.")
    from trainers.data import TensorData

    data = load_data(name, val_fraction=float(val_fraction), seed=seed)
    if not isinstance(data, TensorData):  # a bundled dataset always fits
        raise TypeError(f"{name!r} did not load as tensors.")
    return data
