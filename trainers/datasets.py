"""Readers of the data sources :func:`trainers.data.load_data` accepts.

Each reader validates its source at the boundary and returns a :class:`Loaded`: the
train, validation and (optional) test splits as torch ``Dataset`` objects plus the shape
facts. A split that fits in memory is a :class:`TensorSplit` (tensors already decoded
and normalised); a large image folder is an :class:`ImageFiles` (decoded per item in
DataLoader workers). :mod:`trainers.data` decides which form the trainer gets.

- ``digits``: scikit-learn's bundled 8x8 digits, scaled by one train mean and std.
- ``cifar10``: the "python version" files, read with an unpickler that only builds
  numpy arrays (a pickle can otherwise run code); the test batch is the test split.
- ``folder``: ``data_dir/<class>/<images>``, or ``data_dir/train/<class>/...`` with
  optional ``val/`` and ``test/`` siblings (see :func:`folder_index`).
- a user callable: a module-level function returning arrays or ``Dataset`` objects
  (see :func:`read_callable`), named in specs by its import path.

Example:
    >>> loaded = read_digits(val_fraction=0.2, seed=0)
    >>> loaded.input_shape, loaded.num_classes, len(loaded.train) + len(loaded.val)
    ((1, 8, 8), 10, 1797)
"""

from __future__ import annotations

import functools
import importlib
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Pillow modes decoded as one channel; every other mode is decoded as RGB.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
# A large folder's normalisation statistics come from at most this many training images.
STATS_SAMPLE = 4096
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_HOW = (
    "download the CIFAR-10 python version (cifar-10-python.tar.gz) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html and extract it there "
    "(tar xzf cifar-10-python.tar.gz); nothing is downloaded for you"
)


class TensorSplit(Dataset):
    """A split held as tensors: ``x`` (N, C, H, W) float32 and ``y`` (N,) int64."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


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


def _normalise(raw: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
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


# --- CIFAR-10 -------------------------------------------------------------------------


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
        return TensorSplit(_normalise(torch.as_tensor(raw), mean, std), torch.from_numpy(labels))

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


# --- Image folders ---------------------------------------------------------------------


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
            k: TensorSplit(_normalise(raw[k], mean, std), torch.tensor(labels))
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


# --- User callables --------------------------------------------------------------------

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
