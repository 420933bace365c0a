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
actor does not read the files again); that part lives in :mod:`trainers.sources` and its
names are re-exported here.

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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from trainers.sources import (
    DATASETS,
    DEFAULT_IN_MEMORY_LIMIT,
    DEFAULT_VAL_FRACTION,
    SOURCES,
    check_source,
    clear_cache,
    describe_source,
    load_data,
    load_dataset,
)

__all__ = [
    "DATASETS",
    "DEFAULT_IN_MEMORY_LIMIT",
    "DEFAULT_VAL_FRACTION",
    "SOURCES",
    "Batch",
    "LoaderData",
    "TensorData",
    "batches",
    "check_source",
    "clear_cache",
    "describe_source",
    "load_data",
    "load_dataset",
]

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
