"""CIFAR-10 from its "python version" files (``cifar-10-batches-py``).

The batch files are pickles; they are read with an unpickler that only builds what a
batch holds (dicts, lists, bytes and numpy arrays), since a pickle can otherwise run
code. The five ``data_batch_*`` files are the training data (a stratified share held out
for validation); ``test_batch`` is the test split. Nothing is downloaded.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainers.datasets import (
    Loaded,
    TensorSplit,
    channel_stats,
    normalise,
    split_bytes,
    stratified_split,
)

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_HOW = (
    "download the CIFAR-10 python version (cifar-10-python.tar.gz) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html and extract it there "
    "(tar xzf cifar-10-python.tar.gz); nothing is downloaded for you"
)


class _BatchUnpickler(pickle.Unpickler):
    """Builds only what a CIFAR-10 batch holds: dicts, lists, bytes and numpy arrays."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol 2
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a batch never does")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return super().find_class(module, name)


def cifar10_dir(data_dir: str | Path) -> Path:
    """The ``cifar-10-batches-py`` folder at or under ``data_dir``, with every file there.

    Raises:
        FileNotFoundError: naming what is missing and where to put the files.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 data_dir {root} is not a directory; {CIFAR_HOW}.")
    folder = root / CIFAR_DIR if (root / CIFAR_DIR).is_dir() else root
    missing = [f for f in (*CIFAR_TRAIN, "test_batch") if not (folder / f).is_file()]
    if missing:
        hint = ""
        if (root / "cifar-10-batches-bin").is_dir() or (folder / "data_batch_1.bin").exists():
            hint = " (found the binary version; this reader needs the python version)"
        raise FileNotFoundError(
            f"CIFAR-10 files {missing} are missing from {folder}{hint}; pass data_dir= the "
            f"{CIFAR_DIR} folder or its parent, or {CIFAR_HOW}."
        )
    return folder


def read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of one batch file."""
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch ({err}); replace it with the file from "
            "cifar-10-python.tar.gz."
        ) from None
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= set(batch):
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: expected a pickled dict with keys "
            "b'data' and b'labels'; replace it with the file from cifar-10-python.tar.gz."
        )
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{path}: b'data' must be uint8 of shape (N, 3072), got {data.dtype} "
            f"{data.shape}; replace it with the file from cifar-10-python.tar.gz."
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: b'labels' must hold one integer per image ({len(data)}), got "
            f"{labels.dtype} {labels.shape}."
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}.")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_cifar10(data_dir: str | Path, val_fraction: float, seed: int) -> Loaded:
    """CIFAR-10 from its python-version files, normalised per channel by train statistics.

    The validation split is a stratified ``val_fraction`` of the 50,000 training images;
    ``test_batch`` is the test split.
    """
    folder = cifar10_dir(data_dir)
    parts = [read_cifar10_batch(folder / f) for f in CIFAR_TRAIN]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    x_te, y_te = read_cifar10_batch(folder / "test_batch")
    tr, va = stratified_split(y, val_fraction, seed)
    raw_tr = torch.from_numpy(x[tr])
    mean, std = channel_stats(raw_tr)
    names = tuple(str(i) for i in range(10))
    if (folder / "batches.meta").is_file():
        with open(folder / "batches.meta", "rb") as f:
            meta = _BatchUnpickler(f, encoding="bytes").load()
        names = tuple(n.decode() for n in meta.get(b"label_names", ())) or names

    def split(raw: np.ndarray | torch.Tensor, labels: np.ndarray) -> TensorSplit:
        return TensorSplit(normalise(torch.as_tensor(raw), mean, std), torch.from_numpy(labels))

    n = len(y) + len(y_te)
    return Loaded(
        split(raw_tr, y[tr]),
        split(x[va], y[va]),
        split(x_te, y_te),
        10,
        (3, 32, 32),
        split_bytes(n, (3, 32, 32)),
        names,
    )
