"""What every reader of a data source returns, and the pieces they share.

A reader validates its source at the boundary and returns a :class:`Loaded`: the train,
validation and (optional) test splits as torch ``Dataset`` objects plus the shape facts.
A split that fits in memory is a :class:`TensorSplit` (tensors already decoded and
normalised); a large image folder is an :class:`~trainers.imagefolder.ImageFiles`
(decoded per item in DataLoader workers). :mod:`trainers.data` decides which form the
trainer gets. The readers:

- ``digits`` (here): scikit-learn's bundled 8x8 digits, scaled by one train mean and std.
- ``cifar10`` (:mod:`trainers.cifar10`): the "python version" files, read with an
  unpickler that only builds numpy arrays; the test batch is the test split.
- ``folder`` (:mod:`trainers.imagefolder`): ``data_dir/<class>/<images>``, or
  ``data_dir/train/<class>/...`` with optional ``val/`` and ``test/`` siblings.
- a user callable (:mod:`trainers.userdata`): a module-level function returning arrays
  or ``Dataset`` objects, named in specs by its import path.

The public names of those modules can still be imported from here.

Example:
    >>> loaded = read_digits(val_fraction=0.2, seed=0)
    >>> loaded.input_shape, loaded.num_classes, len(loaded.train) + len(loaded.val)
    ((1, 8, 8), 10, 1797)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class TensorSplit(Dataset):
    """A split held as tensors: ``x`` (N, C, H, W) float32 and ``y`` (N,) int64."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


@dataclass(frozen=True)
class Loaded:
    """A source read: its splits, shape facts and float32 size in bytes."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    num_classes: int
    input_shape: tuple[int, int, int]
    nbytes: int
    class_names: tuple[str, ...] = ()


def split_bytes(n: int, input_shape: tuple[int, ...]) -> int:
    """Bytes of ``n`` float32 images of ``input_shape`` and their int64 labels."""
    return n * (4 * int(np.prod(input_shape)) + 8)


def stratified_split(
    y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices of ``y``, stratified by class and seeded.

    Example:
        >>> tr, va = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0)
        >>> sorted(np.array([0, 0, 0, 0, 1, 1, 1, 1])[va].tolist())
        [0, 0, 1, 1]
    """
    from sklearn.model_selection import train_test_split

    try:
        tr, va = train_test_split(
            np.arange(len(y)), test_size=val_fraction, random_state=seed, stratify=y
        )
    except ValueError as err:
        raise ValueError(
            f"Cannot hold out a stratified val_fraction={val_fraction} of {len(y)} examples "
            f"in {len(np.unique(y))} classes ({err}); use a larger val_fraction, more "
            "examples per class, or give the source its own validation split."
        ) from None
    return tr, va


def channel_stats(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (float32) of uint8 images ``(N, C, H, W)``; std 0 -> 1.

    Example:
        >>> channel_stats(torch.tensor([[[[0, 2]]], [[[4, 6]]]], dtype=torch.uint8))[0]
        tensor([3.])
    """
    c = raw.shape[1]
    total, squares = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
    for chunk in raw.split(max(1, 2**22 // max(1, raw[0].numel()))):
        chunk = chunk.double()
        total += chunk.sum((0, 2, 3))
        squares += chunk.square().sum((0, 2, 3))
    count = raw.numel() // c
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return mean.float(), torch.where(std > 0, std, torch.ones_like(std)).float()


def normalise(raw: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``raw`` images ``(N, C, H, W)`` as float32, less ``mean`` over ``std`` per channel."""
    return (raw.float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def read_digits(val_fraction: float, seed: int) -> Loaded:
    """scikit-learn's 8x8 digits, split as :func:`trainers.data.load_dataset` always has.

    Example:
        >>> read_digits(0.5, seed=1).val.y.shape
        torch.Size([899])
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None, :, :] / 16.0
    y = digits.target.astype(np.int64)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=val_fraction, random_state=seed, stratify=y
    )
    mean, std = float(x_tr.mean()), float(x_tr.std())
    train = TensorSplit(torch.from_numpy((x_tr - mean) / std), torch.from_numpy(y_tr))
    val = TensorSplit(torch.from_numpy((x_va - mean) / std), torch.from_numpy(y_va))
    names = tuple(str(i) for i in range(10))
    return Loaded(train, val, None, 10, (1, 8, 8), split_bytes(len(y), (1, 8, 8)), names)


# The readers moved to their own modules; their names still import from here. Resolved
# on first use, since those modules import this one.
_MOVED = {
    **dict.fromkeys(
        (
            "CIFAR_DIR",
            "CIFAR_HOW",
            "CIFAR_TRAIN",
            "cifar10_dir",
            "read_cifar10",
            "read_cifar10_batch",
        ),
        "trainers.cifar10",
    ),
    **dict.fromkeys(
        (
            "GRAY_MODES",
            "IMAGE_EXTENSIONS",
            "STATS_SAMPLE",
            "FolderIndex",
            "ImageFiles",
            "decode_image",
            "folder_index",
            "read_folder",
        ),
        "trainers.imagefolder",
    ),
    **dict.fromkeys(
        ("callable_path", "is_import_path", "read_callable", "resolve_callable"),
        "trainers.userdata",
    ),
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
