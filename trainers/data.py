"""Datasets as tensors kept on the training device (the fast path for small data).

Small image datasets fit in memory many times over, so there is no DataLoader: a split
is a pair of tensors, and batches are slices of a seeded ``randperm`` (as airbench and
hlb-CIFAR10 do).

Example:
    >>> from trainers.data import load_dataset
    >>> data = load_dataset("digits", val_fraction=0.2, seed=0)
    >>> data.input_shape, data.num_classes
    ((1, 8, 8), 10)
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

DATASETS = ("digits",)


@dataclass(frozen=True)
class TensorData:
    """Train and validation tensors with their shape facts."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def to(self, device: torch.device | str) -> TensorData:
        """The same data on ``device``."""
        return TensorData(
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_val.to(device),
            self.y_val.to(device),
            self.num_classes,
        )


def batches(
    n: int, batch_size: int, generator: torch.Generator, drop_last: bool = True
) -> Iterator[torch.Tensor]:
    """Index tensors of a seeded random permutation of ``range(n)``, ``batch_size`` at a time."""
    order = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


@functools.lru_cache(maxsize=4)
def load_dataset(name: str, val_fraction: float = 0.2, seed: int = 0) -> TensorData:
    """Load a bundled dataset as normalised float tensors, split stratified by ``seed``.

    Args:
        name: One of :data:`DATASETS`. ``"digits"`` is scikit-learn's bundled 8x8
            handwritten digits (1,797 images, 10 classes), shipped with the package.
        val_fraction: Share of examples held out for validation, in (0, 1).
        seed: Seed of the split; the same for every trial of a study.

    Raises:
        ValueError: for an unknown name or a fraction outside (0, 1).
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; available: {list(DATASETS)}.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}.")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None, :, :] / 16.0
    y = digits.target.astype(np.int64)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=val_fraction, random_state=seed, stratify=y
    )
    mean, std = float(x_tr.mean()), float(x_tr.std())
    return TensorData(
        torch.from_numpy((x_tr - mean) / std),
        torch.from_numpy(y_tr),
        torch.from_numpy((x_va - mean) / std),
        torch.from_numpy(y_va),
        10,
    )
