"""What a trained network expects of its input: the preprocessing of each data source.

A deployed network needs its inputs prepared as they were in training. Every bundled
reader feeds the network float32 ``(N, C, H, W)`` images normalised per channel by the
mean and standard deviation of the training split::

    x = (pixels * scale - mean) / std        # per channel

- ``digits``: scikit-learn's 8x8 digits, one grey channel, pixels 0..16, ``scale`` 1/16
  (one mean and std over the whole training split);
- ``cifar10``: RGB planes in that order, pixels 0..255, ``scale`` 1;
- ``folder``: RGB (or one grey channel when every image is grey), pixels 0..255,
  resized bilinearly to the study's size first;
- a data function: its arrays are used as returned, so the card names the function.

The readers (:mod:`trainers.datasets`, :mod:`trainers.cifar10`,
:mod:`trainers.imagefolder`) do not keep the statistics they normalise with, so
:func:`preprocessing` computes them again from the same source spec, the same way; the
tests apply the result to the raw images and compare with what :func:`trainers.load_data`
gives the network.

Example:
    >>> from trainers.data import describe_source
    >>> card = preprocessing(describe_source("digits"))
    >>> card["channel_order"], card["pixel_range"], card["scale"], len(card["mean"])
    ('gray', [0, 16], 0.0625, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from trainers.datasets import channel_stats, split_bytes, stratified_split

FORMULA = "x = (pixels * scale - mean) / std, per channel"


def preprocessing(source: Mapping[str, Any]) -> dict[str, Any]:
    """The preprocessing a network trained on ``source`` expects, as a JSON-able dict.

    Args:
        source: A source spec, as :func:`trainers.data.describe_source` returns it (an
            ``ImageClassifier``'s ``source``).

    Returns:
        ``layout``, ``dtype``, ``channel_order`` (``"gray"`` or ``"RGB"``), ``size``
        (height, width), ``pixel_range``, ``scale``, ``mean`` and ``std`` (one per
        channel, on the scaled pixels), ``formula``, ``resize`` (folders) and
        ``statistics`` (how mean and std were computed); for a data function only
        ``layout``, ``dtype``, ``function`` and ``note``.

    Raises:
        FileNotFoundError: when the files of a ``cifar10`` or ``folder`` source are gone.
    """
    kind = source["source"]
    if kind == "digits":
        return _digits(source["val_fraction"], source["seed"])
    if kind == "cifar10":
        return _cifar10(source["data_dir"], source["val_fraction"], source["seed"])
    if kind == "folder":
        return _folder(source)
    return {
        "layout": "NCHW",
        "dtype": "float32",
        "function": kind,
        "note": f"Inputs are used as the data function {kind!r} returns them (archtune "
        "applies no normalisation); prepare new inputs with the same code.",
    }


def _card(
    channels: int,
    size: tuple[int, int],
    top: int,
    scale: float,
    mean: list[float],
    std: list[float],
    statistics: str,
) -> dict[str, Any]:
    return {
        "layout": "NCHW",
        "dtype": "float32",
        "channel_order": "gray" if channels == 1 else "RGB",
        "size": [int(size[0]), int(size[1])],
        "pixel_range": [0, top],
        "scale": scale,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "formula": FORMULA,
        "statistics": statistics,
    }


def _digits(val_fraction: float, seed: int) -> dict[str, Any]:
    """As :func:`trainers.datasets.read_digits` normalises (one mean and std)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None, :, :] / 16.0
    x_tr, _ = train_test_split(
        x, test_size=val_fraction, random_state=seed, stratify=digits.target
    )
    stats = f"over the training split (val_fraction={val_fraction}, seed={seed})"
    return _card(1, (8, 8), 16, 1 / 16, [float(x_tr.mean())], [float(x_tr.std())], stats)


def _cifar10(data_dir: str, val_fraction: float, seed: int) -> dict[str, Any]:
    """As :func:`trainers.cifar10.read_cifar10` normalises (per channel, 0..255)."""
    from trainers.cifar10 import CIFAR_TRAIN, cifar10_dir, read_cifar10_batch

    folder = cifar10_dir(data_dir)
    parts = [read_cifar10_batch(folder / f) for f in CIFAR_TRAIN]
    x = np.concatenate([p[0] for p in parts])
    tr, _ = stratified_split(np.concatenate([p[1] for p in parts]), val_fraction, seed)
    mean, std = channel_stats(torch.from_numpy(x[tr]))
    stats = f"per channel over the training split (val_fraction={val_fraction}, seed={seed})"
    return _card(3, (32, 32), 255, 1.0, mean.tolist(), std.tolist(), stats)


def _folder(source: Mapping[str, Any]) -> dict[str, Any]:
    """As :func:`trainers.imagefolder.read_folder` normalises: exact statistics when the
    images fit in memory, else those of a seeded sample of the training images."""
    from trainers.imagefolder import STATS_SAMPLE, decode_image, folder_index

    size = tuple(source["image_size"]) if source["image_size"] else None
    index = folder_index(source["data_dir"], size)
    paths, labels = index.parts.get("train") or index.parts["all"]
    if "val" not in index.parts:
        tr, _ = stratified_split(np.array(labels), source["val_fraction"] or 0.2, source["seed"])
        paths = tuple(paths[i] for i in tr)
    total = sum(len(p) for p, _ in index.parts.values())
    shape = (index.channels, *index.size)
    stats = "per channel over the training split"
    if split_bytes(total, shape) > source["in_memory_limit"]:
        rng = np.random.default_rng(source["seed"])
        pick = np.sort(rng.choice(len(paths), min(len(paths), STATS_SAMPLE), replace=False))
        paths = tuple(paths[i] for i in pick)
        stats = f"per channel over {len(paths)} training images drawn with seed {source['seed']}"
    raw = torch.stack([decode_image(p, index.size, index.channels) for p in paths])
    mean, std = channel_stats(raw)
    card = _card(index.channels, index.size, 255, 1.0, mean.tolist(), std.tolist(), stats)
    card["resize"] = "bilinear (Pillow), to size, after conversion to the channel order"
    return card
