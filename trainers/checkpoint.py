"""Trial checkpoints: explicit versioned dicts, the architecture apart from the weights.

A checkpoint is a plain dict that ``torch.save`` writes (as nanoGPT's are): the
architecture as data (the whole search space as JSON, the trial's configuration, the
input shape and class count), and beside it the weights of the *un-compiled,
un-wrapped* network, the optimizer and scheduler states, the batch-order generator and,
after structural pruning, the pruned channel counts. :func:`model_from_checkpoint`
rebuilds a network that runs from the file alone, which is how a teacher for
distillation or a deployment script loads a trial's result.

Keys of version 2 (``CHECKPOINT_VERSION``):

- ``version``, ``epoch`` (last finished epoch), ``phase`` (``"train"`` or
  ``"finetune"`` after pruning);
- ``space`` (:meth:`spaces.SearchSpace.to_json`), ``config`` (the trial's
  configuration), ``input_shape``, ``num_classes``;
- ``model`` (``state_dict``), ``pruned`` (a structure from
  :func:`trainers.pruning.pruned_structure`, or None);
- ``optimizer``, ``scheduler``, ``scaler`` (fp16 only, else None), ``generator``.

Every value is a tensor or a plain value (None, bool, int, float, str, bytes) in dicts,
lists and tuples: the generator state is a byte tensor, the scaler state and the pruned
structure plain dicts. :func:`save_checkpoint` refuses anything else, and
:func:`load_checkpoint` reads with ``torch.load(..., weights_only=True)``, so a checkpoint
from someone else (a teacher, an exported model) cannot run code when it is loaded: a
file that carries a pickled object raises :class:`UnsafeCheckpointError`.
:func:`slim_state` keeps only the part that rebuilds the network (what an export
writes).

Example:
    >>> import os, tempfile
    >>> from spaces import ResNetSpace, SearchSpace
    >>> space = SearchSpace({"model": ResNetSpace(stages=1, depth=1, width=8)})
    >>> config = space.unflatten({})
    >>> net = space["model"].build(config["model"], input_shape=(1, 8, 8), num_classes=10)
    >>> state = model_state(net, space, config, input_shape=(1, 8, 8), num_classes=10)
    >>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.pt")
    >>> save_checkpoint(state, path)
    >>> model_from_checkpoint(path)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from spaces import SearchSpace

CHECKPOINT_VERSION = 2
CHECKPOINT_FILE = "checkpoint.pt"
# The keys of model_state: what rebuilds the network (a slim checkpoint holds only these).
MODEL_KEYS = ("version", "space", "config", "input_shape", "num_classes", "model", "pruned")
# What torch.load(weights_only=True) reads back, besides dicts, lists and tuples of them:
# these exact types (a numpy float64 is a float, but is refused), and tensors.
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, torch.Size, torch.dtype})


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds a pickled object, which archtune refuses to unpickle."""


def unwrap(model: nn.Module) -> nn.Module:
    """The network under ``torch.compile`` and ``DistributedDataParallel`` wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def model_state(
    model: nn.Module,
    space: SearchSpace,
    config: Mapping[str, Any],
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    pruned: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the network (no optimizer state)."""
    return {
        "version": CHECKPOINT_VERSION,
        "space": space.to_json(),
        "config": dict(config),
        "input_shape": tuple(input_shape),
        "num_classes": int(num_classes),
        "model": unwrap(model).state_dict(),
        "pruned": dict(pruned) if pruned is not None else None,
    }


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file, then ``os.replace``)."""
    check_plain(state)
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(dict(state), tmp)
    os.replace(tmp, path)


def check_plain(value: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` unless ``value`` holds only tensors and plain values.

    Plain values are None, bools, ints, floats, strings and bytes, in dicts, lists and
    tuples: what ``torch.load(..., weights_only=True)`` reads back.

    Example:
        >>> check_plain({"step": 3, "rng": torch.zeros(2, dtype=torch.uint8)})
        >>> check_plain({"stats": {"params": range(3)}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: checkpoint['stats']['params'] is a range, which torch.load(weights_only...
    """
    if type(value) in (dict, OrderedDict):
        for k, v in value.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where} has a key {k!r} of type {type(k).__name__}; use str.")
            check_plain(v, f"{where}[{k!r}]")
    elif type(value) in (list, tuple):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]")
    elif type(value) not in _PLAIN and not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{where} is a {type(value).__name__}, which torch.load(weights_only=True) will "
            "not read; store it as a tensor or a plain value (list, int, float, str)."
        )


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint file (or the ``checkpoint.pt`` in a Ray checkpoint directory).

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: when the file is not an archtune checkpoint of a supported version.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No checkpoint at {path!r}; give the checkpoint.pt a trial wrote (it is in the "
            "trial's directory under the run directory) or the directory that holds it."
        )
    state = safe_load(path)
    check_version(state, path)
    return state


def safe_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with a clear error.

    Raises:
        UnsafeCheckpointError: when the file holds a pickled object (a class or function
            other than tensors and plain values): unpickling it could run any code.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        what = f"a pickled object ({found.group(1)})" if found else "something not a tensor"
        raise UnsafeCheckpointError(
            f"{os.fspath(path)!r} holds {what}; archtune loads checkpoints with "
            "torch.load(weights_only=True) and will not unpickle it, since that could run "
            "code. Only if you trust its author: load it with weights_only=False and save "
            "its tensors and plain values again."
        ) from None


def check_version(state: Any, where: str = "checkpoint") -> None:
    """Raise ``ValueError`` unless ``state`` is a checkpoint dict of this version."""
    version = state.get("version") if isinstance(state, Mapping) else None
    if version != CHECKPOINT_VERSION:
        raise ValueError(
            f"{where} is not an archtune checkpoint of version {CHECKPOINT_VERSION} "
            f"(found version {version!r}); retrain the trial with this archtune version."
        )


def model_from_checkpoint(
    state: Mapping[str, Any] | str | os.PathLike[str], device: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild the trained network of a checkpoint, in eval mode, on ``device``.

    Args:
        state: A checkpoint dict, a checkpoint file, or a Ray checkpoint directory.
        device: Where to put the network.
    """
    if not isinstance(state, Mapping):
        state = load_checkpoint(state)
    check_version(state)
    space = SearchSpace.from_json(state["space"])
    model = space["model"].build(  # type: ignore[union-attr]
        state["config"]["model"],
        input_shape=tuple(state["input_shape"]),
        num_classes=state["num_classes"],
    )
    if state.get("pruned"):
        from trainers.pruning import restore_pruned

        model = restore_pruned(model, state["pruned"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def slim_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the network: architecture and weights,
    without the optimizer, scaler and generator states (the keys of :func:`model_state`).

    Example:
        >>> sorted(slim_state({**dict.fromkeys(MODEL_KEYS), "optimizer": {}, "epoch": 3}))
        ['config', 'input_shape', 'model', 'num_classes', 'pruned', 'space', 'version']
    """
    return {k: state[k] for k in MODEL_KEYS if k in state}
