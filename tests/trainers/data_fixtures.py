"""Data sources written in their real formats at test time, and module-level data functions.

The functions here are what a user passes as ``load_data(source=...)``: module-level, so
that their import path (``tests.trainers.data_fixtures:arrays_source``) names them.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog"]
CIFAR_NAMES += [b"horse", b"ship", b"truck"]


def cifar_batch(n: int, seed: int) -> dict[bytes, object]:
    """One batch as the real files hold it: bytes keys, (n, 3072) uint8 channel-major."""
    rng = np.random.default_rng(seed)
    labels = [(i + seed) % 10 for i in range(n)]
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[:, :1024] //= 2  # red darker than green and blue: channels differ
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def write_cifar10(root: Path, per_batch: int = 20, test: int = 20) -> Path:
    """A tiny ``cifar-10-batches-py`` folder under ``root``; returns the folder."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(cifar_batch(per_batch, i), f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(cifar_batch(test, 0), f, protocol=2)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": CIFAR_NAMES, b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


def write_image(path: Path, size: tuple[int, int], value: int, mode: str = "RGB") -> None:
    """An image of ``size`` (height, width) around grey level ``value`` with seeded noise."""
    rng = np.random.default_rng(value + size[0])
    shape = (size[0], size[1], 3) if mode == "RGB" else size
    pixels = np.clip(value + rng.integers(-20, 21, size=shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels, mode).save(path)


def write_folder(
    root: Path,
    classes: tuple[str, ...] = ("dog", "cat", "ant"),
    per_class: int = 6,
    mode: str = "RGB",
) -> Path:
    """``root/<class>/<images>``: PNG and JPEG files of three sizes; returns ``root``."""
    sizes = [(10, 12), (8, 8), (12, 10)]
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            ext = ".png" if i % 2 else ".JPG"
            write_image(root / name / f"{i}{ext}", sizes[i % 3], 40 + 60 * c + i, mode)
    return root


def arrays_source() -> tuple[torch.Tensor, ...]:
    """Train (30), validation (10) and test (6) tensors of 1x4x4 images in 3 classes."""
    gen = torch.Generator().manual_seed(0)
    return tuple(
        t
        for n in (30, 10, 6)
        for t in (torch.randn(n, 1, 4, 4, generator=gen), torch.arange(n) % 3)
    )


def numpy_source() -> tuple[np.ndarray, ...]:
    """Numpy arrays without a test split."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 2, 3, 3))
    return x[:8], np.arange(8) % 2, x[8:], np.arange(4) % 2


def npz_source(data_dir: str) -> tuple[np.ndarray, ...]:
    """Arrays read from ``data_dir/data.npz`` (what a function given ``data_dir`` does)."""
    with np.load(Path(data_dir) / "data.npz") as f:
        return f["x_train"], f["y_train"], f["x_val"], f["y_val"]


class Squares(Dataset):
    """``n`` 3x5x5 images whose every pixel is ``i / n``, labelled ``i % classes``."""

    def __init__(self, n: int, classes: int = 4, declare: bool = True, shift: int = 0) -> None:
        self.n, self.classes_, self.shift = n, classes, shift
        if declare:
            self.num_classes = classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((3, 5, 5), i / self.n), i % self.classes_ + self.shift


def datasets_source() -> tuple[Dataset, ...]:
    """Train, validation and test Datasets with ``num_classes``."""
    return Squares(24), Squares(8), Squares(8)


def undeclared_datasets_source() -> tuple[Dataset, ...]:
    """Datasets that do not say how many classes they have."""
    return Squares(24, declare=False), Squares(8, declare=False)


def out_of_range_source() -> tuple[Dataset, ...]:
    """Datasets declaring 4 classes whose labels reach 5."""
    return Squares(24, shift=2), Squares(8)


def mismatched_source() -> tuple[np.ndarray, ...]:
    """x_train with one example more than y_train."""
    return np.zeros((10, 1, 2, 2)), np.zeros(9, int), np.zeros((2, 1, 2, 2)), np.zeros(2, int)


def uint8_source() -> tuple[np.ndarray, ...]:
    """Raw uint8 images, not normalised floats."""
    x = np.zeros((4, 1, 2, 2), np.uint8)
    return x, np.arange(4) % 2, x, np.arange(4) % 2


def negative_label_source() -> tuple[np.ndarray, ...]:
    """A label of -1."""
    x = np.zeros((4, 1, 2, 2), np.float32)
    return x, np.array([0, 1, -1, 0]), x, np.arange(4) % 2


def dict_source() -> dict[str, np.ndarray]:
    """Neither accepted form."""
    return {"x": np.zeros((4, 1, 2, 2))}
