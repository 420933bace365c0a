"""Image folders: ``data_dir/<class>/<image>``, or ``data_dir/train/<class>/...`` with
optional ``val/`` and ``test/`` siblings (see :func:`folder_index`).

An index reads every file's header only; pixels are decoded by :func:`read_folder`, all
at once when the images fit in memory (a :class:`~trainers.datasets.TensorSplit`), else
per item in DataLoader workers (an :class:`ImageFiles`). Pillow is imported on first read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from trainers.datasets import (
    Loaded,
    TensorSplit,
    channel_stats,
    normalise,
    split_bytes,
    stratified_split,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Pillow modes decoded as one channel; every other mode is decoded as RGB.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
# A large folder's normalisation statistics come from at most this many training images.
STATS_SAMPLE = 4096


class ImageFiles(Dataset):
    """Image files decoded, resized and normalised per item (for DataLoader workers).

    Args:
        paths: Image files.
        labels: Class index of each file.
        size: ``(height, width)`` every image is resized to.
        channels: 1 (decoded as grayscale) or 3 (RGB).
        mean: Per-channel mean on the 0-255 scale, shape ``(channels,)``.
        std: Per-channel standard deviation on the 0-255 scale.
    """

    def __init__(
        self,
        paths: tuple[str, ...],
        labels: tuple[int, ...],
        size: tuple[int, int],
        channels: int,
        mean: torch.Tensor,
        std: torch.Tensor,
    ) -> None:
        self.paths, self.labels, self.size, self.channels = paths, labels, size, channels
        self.mean, self.std = mean.view(-1, 1, 1), std.view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        raw = decode_image(self.paths[i], self.size, self.channels)
        return (raw.float() - self.mean) / self.std, self.labels[i]


@dataclass(frozen=True)
class FolderIndex:
    """The files of an image folder: class names, ``(paths, labels)`` per part, shape.

    ``parts`` has ``"all"`` (flat layout) or ``"train"`` with optional ``"val"`` and
    ``"test"`` (split layout).
    """

    class_names: tuple[str, ...]
    parts: dict[str, tuple[tuple[str, ...], tuple[int, ...]]]
    size: tuple[int, int]
    channels: int


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(path: Path) -> list[Path]:
    return sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _class_files(root: Path, classes: tuple[str, ...] | None) -> tuple[list[Path], list[int]]:
    dirs = _subdirs(root)
    if _images(root):
        raise ValueError(
            f"{root} holds image files directly; put each class's images in a subfolder "
            f"named after the class: {root}/<class_name>/<image>."
        )
    if classes is not None:
        extra = sorted(d.name for d in dirs if d.name not in classes)
        if extra:
            raise ValueError(
                f"{root} has classes {extra} that train/ lacks; train/ must have a folder "
                "for every class."
            )
    names = classes if classes is not None else tuple(d.name for d in dirs)
    paths: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        files = _images(d)
        if not files and classes is None:
            raise ValueError(
                f"Class folder {d} has no images (extensions {list(IMAGE_EXTENSIONS)}); "
                "add images or remove the folder."
            )
        paths += files
        labels += [names.index(d.name)] * len(files)
    return paths, labels


def _scan(paths: list[Path]) -> tuple[set[str], set[tuple[int, int]]]:
    from PIL import Image, UnidentifiedImageError

    modes, sizes = set(), set()
    for p in paths:
        try:
            with Image.open(p) as im:
                modes.add(im.mode)
                sizes.add((im.height, im.width))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{p} is not an image Pillow can read ({err}); remove it.") from None
    return modes, sizes


@functools.lru_cache(maxsize=8)
def folder_index(data_dir: str, image_size: tuple[int, int] | None = None) -> FolderIndex:
    """Index an image folder, reading every file's header (not its pixels).

    Layouts: ``data_dir/<class>/<image>`` (validation held out of it), or
    ``data_dir/train/<class>/<image>`` with optional ``val/`` and ``test/`` folders of the
    same classes (a missing ``val/`` is held out of ``train/``). Class names are the
    sorted folder names of the flat layout or of ``train/``. Images are RGB unless every
    image is grayscale (then one channel); alpha is dropped.

    Raises:
        FileNotFoundError: when ``data_dir`` is not a directory.
        ValueError: for an empty or mixed layout, an unreadable image, or differing
            image sizes without ``image_size``.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Image folder {root} is not a directory; pass data_dir= a folder laid out as "
            "<data_dir>/<class_name>/<image> or <data_dir>/train/<class_name>/<image>."
        )
    names = [d.name for d in _subdirs(root)]
    if "train" in names:
        extra = sorted(set(names) - {"train", "val", "test"})
        if extra:
            raise ValueError(
                f"{root} has a train/ folder, so its other folders must be val/ or test/; "
                f"rename or move {extra}."
            )
        classes = tuple(d.name for d in _subdirs(root / "train"))
        parts = {
            name: _class_files(root / name, None if name == "train" else classes)
            for name in ("train", "val", "test")
            if name in names
        }
    else:
        parts = {"all": _class_files(root, None)}
        classes = tuple(names)
    if len(classes) < 2:
        raise ValueError(
            f"{root} has {len(classes)} class folder(s) {list(classes)}; a classifier needs at "
            "least 2: <data_dir>/<class_name>/<image>."
        )
    modes, sizes = _scan([p for paths, _ in parts.values() for p in paths])
    if image_size is None and len(sizes) > 1:
        raise ValueError(
            f"Images in {root} have {len(sizes)} different sizes (e.g. {sorted(sizes)[:3]} as "
            "height x width); pass image_size=(height, width) to resize them all."
        )
    size = image_size or next(iter(sizes))
    channels = 1 if modes <= GRAY_MODES else 3
    return FolderIndex(
        classes,
        {k: (tuple(str(p) for p in ps), tuple(ls)) for k, (ps, ls) in parts.items()},
        (int(size[0]), int(size[1])),
        channels,
    )


def decode_image(path: str, size: tuple[int, int], channels: int) -> torch.Tensor:
    """One image file as uint8 ``(channels, height, width)``, resized bilinearly to ``size``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.array(im, dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"Cannot decode {path} ({err}); remove or replace the file.") from None
    arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _decode_all(paths: tuple[str, ...], index: FolderIndex) -> torch.Tensor:
    out = torch.empty(len(paths), index.channels, *index.size, dtype=torch.uint8)
    for i, p in enumerate(paths):
        out[i] = decode_image(p, index.size, index.channels)
    return out


def read_folder(
    data_dir: str,
    image_size: tuple[int, int] | None,
    val_fraction: float | None,
    seed: int,
    in_memory_limit: int,
) -> Loaded:
    """An image folder (see :func:`folder_index`), normalised per channel by train statistics.

    Within ``in_memory_limit`` bytes (float32) every image is decoded now and the
    statistics are exact; beyond it the splits are :class:`ImageFiles` and the statistics
    come from at most :data:`STATS_SAMPLE` training images drawn with ``seed``.

    Raises:
        ValueError: for ``val_fraction`` given while a ``val/`` folder exists, or the
            errors of :func:`folder_index`.
    """
    index = folder_index(data_dir, image_size)
    if "val" in index.parts and val_fraction is not None:
        raise ValueError(
            f"{data_dir} has a val/ folder, which is the validation split; leave "
            f"val_fraction=None (got {val_fraction})."
        )
    train_paths, train_labels = index.parts.get("train") or index.parts["all"]
    if "val" in index.parts:
        val_paths, val_labels = index.parts["val"]
    else:
        tr, va = stratified_split(np.array(train_labels), val_fraction or 0.2, seed)
        val_paths, val_labels = (
            tuple(train_paths[i] for i in va),
            tuple(train_labels[i] for i in va),
        )
        train_paths, train_labels = (
            tuple(train_paths[i] for i in tr),
            tuple(train_labels[i] for i in tr),
        )
    splits = {"train": (train_paths, train_labels), "val": (val_paths, val_labels)}
    if "test" in index.parts:
        splits["test"] = index.parts["test"]
    if not val_paths:
        raise ValueError(f"{data_dir}/val has no images; add some or remove the folder.")
    shape = (index.channels, *index.size)
    nbytes = split_bytes(sum(len(p) for p, _ in splits.values()), shape)
    if nbytes <= in_memory_limit:
        raw = {k: _decode_all(p, index) for k, (p, _) in splits.items()}
        mean, std = channel_stats(raw["train"])
        sets: dict[str, Dataset] = {
            k: TensorSplit(normalise(raw[k], mean, std), torch.tensor(labels))
            for k, (_, labels) in splits.items()
        }
    else:
        rng = np.random.default_rng(seed)
        n = len(train_paths)
        pick = np.sort(rng.choice(n, min(n, STATS_SAMPLE), replace=False))
        mean, std = channel_stats(_decode_all(tuple(train_paths[i] for i in pick), index))
        sets = {
            k: ImageFiles(p, labels, index.size, index.channels, mean, std)
            for k, (p, labels) in splits.items()
        }
    return Loaded(
        sets["train"],
        sets["val"],
        sets.get("test"),
        len(index.class_names),
        shape,
        nbytes,
        index.class_names,
    )
