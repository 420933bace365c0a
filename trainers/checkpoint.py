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
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from spaces import SearchSpace

CHECKPOINT_VERSION = 2
CHECKPOINT_FILE = "checkpoint.pt"


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
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(dict(state), tmp)
    os.replace(tmp, path)


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
    state = torch.load(path, map_location="cpu", weights_only=False)
    check_version(state, path)
    return state


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
