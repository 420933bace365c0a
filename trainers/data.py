"""The data a trial trains on: one entry point, two forms behind one interface.

:func:`load_data` reads a source (bundled ``"digits"``, ``"cifar10"`` files, an image
``"folder"``, or a user's function; readers in :mod:`trainers.datasets`) and returns

- :class:`TensorData` when the splits fit in ``in_memory_limit`` bytes (float32): the
  fast path for small data (airbench, hlb-CIFAR10), every split a tensor moved to the
  device once, batches indexed from a seeded ``randperm``, no DataLoader;
- :class:`LoaderData` otherwise: a ``torch.utils.data.DataLoader`` with workers (and
  pinned memory on CUDA) decodes each batch; the batch order is drawn exactly as
  :class:`TensorData` draws it, so both forms train on the same batches.

Both give ``input_shape``, ``num_classes``, ``num_train``, ``num_val``, ``has_test``,
``to(device)``, ``train_batches(batch_size, generator)`` yielding ``(idx, x, y)`` and
``eval_batches(split, batch_size)`` yielding ``(x, y)``. A source is described by a
JSON-able spec (:func:`describe_source`), checked early on the driver
(:func:`check_source`), and loaded at most once per process and spec (a reused Ray
actor does not read the files again).

Example:
    >>> data = load_data("digits", val_fraction=0.2, seed=0)
    >>> data.input_shape, data.num_classes, data.num_train, data.num_val, data.has_test
    ((1, 8, 8), 10, 1437, 360, False)
    >>> gen = torch.Generator().manual_seed(0)
    >>> idx, x, y = next(data.train_batches(64, gen))
    >>> bool((x == data.x_train[idx]).all()), tuple(x.shape)
    (True, (64, 1, 8, 8))
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from trainers import datasets as ds

DATASETS = ("digits",)  # bundled with the package (no files needed)
SOURCES = ("digits", "cifar10", "folder")  # named sources; a function is the fourth kind
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_IN_MEMORY_LIMIT = 1 << 30  # 1 GiB of float32 images: CIFAR-10 (0.74 GB) fits
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")


def _order(n: int, generator: torch.Generator | None, shuffle: bool) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            "Shuffled batches need a seeded torch.Generator, e.g. "
            f"torch.Generator().manual_seed(seed); got {generator!r}."
        )
    return torch.randperm(n, generator=generator, device=generator.device)


def _slices(order: torch.Tensor, batch_size: int, drop_last: bool) -> Iterator[torch.Tensor]:
    n = len(order)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def batches(
    n: int, batch_size: int, generator: torch.Generator, drop_last: bool = True
) -> Iterator[torch.Tensor]:
    """Index tensors of a seeded random permutation of ``range(n)``, ``batch_size`` at a time.

    With ``drop_last`` the last partial batch is dropped, unless it is the only one.

    Example:
        >>> [len(b) for b in batches(10, 4, torch.Generator().manual_seed(0))]
        [4, 4]
    """
    yield from _slices(_order(n, generator, True), batch_size, drop_last)


@dataclass(frozen=True)
class TensorData:
    """Every split as tensors on one device: the fast path for small data.

    ``x_*`` are float32 ``(N, C, H, W)``, ``y_*`` int64 ``(N,)``; the test split is
    ``None`` where the source has none.

    Example:
        >>> data = TensorData(torch.zeros(6, 1, 2, 2), torch.arange(6) % 2,
        ...                   torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), 2)
        >>> [len(y) for _, _, y in data.train_batches(4, None, shuffle=False, drop_last=False)]
        [4, 2]
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    class_names: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_train(self) -> int:
        return len(self.y_train)

    @property
    def num_val(self) -> int:
        return len(self.y_val)

    @property
    def has_test(self) -> bool:
        return self.y_test is not None

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @property
    def nbytes(self) -> int:
        """Bytes of all the tensors."""
        tensors = (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def to(self, device: torch.device | str) -> TensorData:
        """The same data with every tensor on ``device``."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_val=self.x_val.to(device),
            y_val=self.y_val.to(device),
            x_test=move(self.x_test),
            y_test=move(self.y_test),
        )

    def train_batches(
        self,
        batch_size: int,
        generator: torch.Generator | None,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> Iterator[Batch]:
        """``(idx, x, y)`` training batches on the data's device; ``x == x_train[idx]``.

        The permutation is drawn from ``generator`` at the first ``next()`` (as
        :func:`batches` does); ``shuffle=False`` gives index order and needs no generator.
        """
        _check_batch_size(batch_size)
        order = _order(self.num_train, generator, shuffle).to(self.device)
        for idx in _slices(order, batch_size, drop_last):
            yield idx, self.x_train[idx], self.y_train[idx]

    def eval_batches(
        self, split: str, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` batches of the ``"val"`` or ``"test"`` split in order, all examples."""
        _check_batch_size(batch_size)
        _check_split(split, self.has_test)
        x, y = (self.x_val, self.y_val) if split == "val" else (self.x_test, self.y_test)
        if x is None or y is None:  # for the type checker; _check_split raised already
            return
        for start in range(0, len(y), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]


def _check_split(split: str, has_test: bool) -> None:
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}.")
    if split == "test" and not has_test:
        raise ValueError("This data has no test split (has_test is False); evaluate on 'val'.")


class _Indexed(Dataset):
    """Items ``(i, x, y)`` of a dataset, so a batch carries its indices."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[int, Any, Any]:
        x, y = self.dataset[i]
        return i, x, y


class _BatchPlan(Sampler[list[int]]):
    """A batch sampler whose batches are set before each pass, so one DataLoader (and its
    persistent workers) serves every epoch while the order still comes from our draws."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _worker_generator(generator: torch.Generator | None) -> torch.Generator:
    """A generator for the DataLoader's worker seeds, derived from ``generator`` without
    advancing it (a DataLoader without one would draw from torch's global RNG)."""
    if generator is None:
        return torch.Generator().manual_seed(0)
    clone = torch.Generator(device=generator.device)
    clone.set_state(generator.get_state())
    seed = int(torch.randint(2**62, (1,), generator=clone, device=generator.device))
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class LoaderData:
    """Splits as ``Dataset`` objects read through a DataLoader: the path for large data.

    The batch order comes from the same draws as :class:`TensorData`'s; workers decode
    items; batches are pinned (on CUDA) and moved to :attr:`device` without blocking.
    Each split's DataLoader is made once per instance, and its workers persist between
    epochs (``.to()`` gives a new instance with its own loaders).

    Example:
        >>> from trainers.datasets import TensorSplit
        >>> split = TensorSplit(torch.zeros(6, 1, 2, 2), torch.arange(6) % 2)
        >>> data = LoaderData(split, split, None, 2, (1, 2, 2))
        >>> [idx.tolist() for idx, _, _ in data.train_batches(4, None, shuffle=False)]
        [[0, 1, 2, 3]]
    """

    train: Dataset
    val: Dataset
    test: Dataset | None
    num_classes: int
    input_shape: tuple[int, int, int]
    num_workers: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    class_names: tuple[str, ...] = ()

    @property
    def num_train(self) -> int:
        return len(self.train)  # type: ignore[arg-type]

    @property
    def num_val(self) -> int:
        return len(self.val)  # type: ignore[arg-type]

    @property
    def has_test(self) -> bool:
        return self.test is not None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_loaders", {})

    def to(self, device: torch.device | str) -> LoaderData:
        """The same data, delivering batches on ``device``."""
        return dataclasses.replace(self, device=torch.device(device))

    def _loader(self, split: str, batches: list[list[int]], gen: torch.Generator) -> Any:
        """The split's DataLoader, made on first use, set to yield ``batches`` this pass.

        The workers' seeds come from ``gen`` when the loader is made (the first pass).
        """
        loaders: dict[str, tuple[DataLoader, _BatchPlan]] = self._loaders  # type: ignore[attr-defined]
        if split not in loaders:
            dataset = {"train": _Indexed(self.train), "val": self.val, "test": self.test}[split]
            plan = _BatchPlan()
            loader = DataLoader(
                dataset,  # type: ignore[arg-type]
                batch_sampler=plan,
                num_workers=self.num_workers,
                pin_memory=self.device.type == "cuda",
                generator=gen,
                persistent_workers=self.num_workers > 0,
            )
            loaders[split] = (loader, plan)
        loader, plan = loaders[split]
        plan.batches = batches
        return loader

    def _move(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True)

    def _check(self, x: torch.Tensor, y: torch.Tensor, split: str) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"A {split} batch has images of shape {tuple(x.shape[1:])}, the data "
                f"{self.input_shape}; every item must have the same shape."
            )
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(
                f"A {split} batch has labels {int(y.min())}..{int(y.max())}; they must lie in "
                f"0..{self.num_classes - 1}."
            )

    def train_batches(
        self,
        batch_size: int,
        generator: torch.Generator | None,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> Iterator[Batch]:
        """``(idx, x, y)`` training batches on :attr:`device`, as :class:`TensorData` gives."""
        _check_batch_size(batch_size)
        order = _order(self.num_train, generator, shuffle)
        sampler = [s.tolist() for s in _slices(order, batch_size, drop_last)]
        gen = _worker_generator(generator if shuffle else None)
        for idx, x, y in self._loader("train", sampler, gen):
            self._check(x, y, "train")
            yield self._move(idx), self._move(x), self._move(y)

    def eval_batches(
        self, split: str, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` batches of the ``"val"`` or ``"test"`` split in order, all examples."""
        _check_batch_size(batch_size)
        _check_split(split, self.has_test)
        n = len(self.val if split == "val" else self.test)  # type: ignore[arg-type]
        sampler = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
        for x, y in self._loader(split, sampler, _worker_generator(None)):
            self._check(x, y, split)
            yield self._move(x), self._move(y)


# --- Sources, specs and loading ---------------------------------------------------------


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
        return ds.callable_path(source)
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
    if source not in SOURCES and not ds.is_import_path(source):
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
            :func:`trainers.datasets.read_callable`; called with ``data_dir`` when given).
        data_dir: The CIFAR-10 folder (``cifar-10-batches-py`` or its parent) or image
            folder (see :func:`trainers.datasets.folder_index`); made absolute, since Ray
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
        ds.cifar10_dir(spec["data_dir"])
    elif spec["source"] == "folder":
        size = spec["image_size"]
        index = ds.folder_index(spec["data_dir"], tuple(size) if size else None)
        if "val" in index.parts and spec["val_fraction"] is not None:
            raise ValueError(
                f"{spec['data_dir']} has a val/ folder, which is the validation split; "
                f"leave val_fraction=None (got {spec['val_fraction']})."
            )
    elif spec["source"] not in SOURCES:
        ds.resolve_callable(spec["source"])
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
        return ds.read_cifar10(spec["data_dir"], spec["val_fraction"], spec["seed"])
    if source == "folder":
        size = tuple(spec["image_size"]) if spec["image_size"] else None
        return ds.read_folder(spec["data_dir"], size, spec["val_fraction"], spec["seed"], limit)
    return ds.read_callable(source, spec["data_dir"], limit)


@functools.lru_cache(maxsize=4)
def _load(key: str) -> TensorData | LoaderData:
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
    ds.folder_index.cache_clear()


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
    data = load_data(name, val_fraction=float(val_fraction), seed=seed)
    if not isinstance(data, TensorData):  # a bundled dataset always fits
        raise TypeError(f"{name!r} did not load as tensors.")
    return data
