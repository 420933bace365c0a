"""The model card of an exported network: what it is, expects, gives, and how it was made.

:func:`build_card` assembles the JSON that :func:`trainers.export.export_model` writes as
``model_card.json``: the caller's entries first (a study's export adds the study, the
trial and its results), then the files, the network (:func:`model_facts`: family,
configuration, pruning, parameters, FLOPs, CPU latency), its input and output, the data
entries of :func:`data_facts` (data source, preprocessing, classes, training
configuration), the verification, the ``int8`` entry of an int8 export, and the
versions. :func:`write_json` writes strict
JSON (NaN and infinities as strings).

Example:
    >>> import json, math, tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "card.json"
    >>> write_json(path, {"val_loss": math.nan, "shape": (1, 8, 8)})
    >>> json.loads(path.read_text())
    {'val_loss': 'nan', 'shape': [1, 8, 8]}
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import json
import math
import os
import platform
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spaces import SearchSpace

CARD_FILE = "model_card.json"
CARD_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "images", "logits"
VERIFY_BATCH = 64  # real images the exported file is checked on
# Training images an int8 export is calibrated on, as a trial's int8 figures are: 8
# shuffled batches of 64 (here drawn with seed 0).
CALIBRATION_BATCHES, CALIBRATION_BATCH = 8, 64


class ExportError(ValueError):
    """An export cannot be done as asked (the message says why, in one line).

    Defined here, where the card's checks raise it too; import it from
    :mod:`trainers.export`.
    """


def build_card(
    net: nn.Module,
    slim: Mapping[str, Any],
    *,
    files: Mapping[str, Any],
    check: Mapping[str, Any],
    facts: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    int8: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of ``net``, rebuilt from the slim checkpoint ``slim``.

    Args:
        net: The network (CPU, eval mode); it is measured again.
        slim: Its slim checkpoint (:func:`trainers.checkpoint.slim_state`).
        files: What was written (format, file names, ONNX opset ...).
        check: The verification (:func:`trainers.export.verify`).
        facts: What :func:`data_facts` returned.
        extra: Entries the card starts with.
        int8: The ``int8`` entry (the int8 model, how it was quantized and checked, or
            why there is none), when an int8 model was asked for.
    """
    facts = dict(facts)
    return {
        "card_version": CARD_VERSION,
        **(extra or {}),
        "files": dict(files),
        "model": model_facts(net, slim),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", *slim["input_shape"]],
            "dtype": "float32",
            "layout": "NCHW",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", slim["num_classes"]],
            "meaning": "logits: softmax gives class probabilities, argmax the class",
            "classes": facts.pop("classes"),
        },
        **{k: v for k, v in facts.items() if k not in ("inputs", "calibration")},
        "verification": {**check, "inputs": facts["inputs"]},
        **({"int8": dict(int8)} if int8 is not None else {}),
        "versions": versions(),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def data_facts(
    trainer: Any, slim: Mapping[str, Any], *, calibration: bool = False
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor | None]:
    """The card's data entries (``data``, ``preprocessing``, ``training``, ``classes``,
    ``inputs``), the verification inputs (real images from the trainer's data, or seeded
    random ones without a trainer or when its data cannot be read here) and, with
    ``calibration``, the training images an int8 model is calibrated on (None without
    them; ``facts["calibration"]`` then says why, else what they are)."""
    shape = tuple(int(s) for s in slim["input_shape"])
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(8, *shape, generator=gen)
    train = slim["config"].get("train")
    facts: dict[str, Any] = {
        "classes": [str(i) for i in range(int(slim["num_classes"]))],
        "inputs": "8 seeded random normal inputs (no trainer given)",
        "data": None,
        "preprocessing": None,
        "training": {"config": train, "trainer": None},
    }
    calib = None
    if calibration:
        facts["calibration"] = "no trainer given"
    if trainer is None:
        return facts, inputs, calib
    from trainers.preprocessing import preprocessing

    source = trainer.source
    facts["data"] = dict(source)
    facts["training"]["trainer"] = trainer.to_json()
    try:
        data = trainer.load_data()
    except (OSError, ValueError, TypeError, ImportError) as e:
        facts["inputs"] = f"8 seeded random normal inputs (the data cannot be read here: {e})"
        if calibration:
            facts["calibration"] = f"the data cannot be read here: {e}"
    else:
        if tuple(data.input_shape) != shape or data.num_classes != slim["num_classes"]:
            raise ExportError(
                f"The trainer's data has input shape {tuple(data.input_shape)} and "
                f"{data.num_classes} classes, the network {shape} and {slim['num_classes']}."
            )
        inputs = next(iter(data.eval_batches("val", VERIFY_BATCH)))[0].float().cpu()
        facts["inputs"] = f"the first {len(inputs)} validation images of {source['source']!r}"
        if data.class_names:
            facts["classes"] = list(data.class_names)
        if calibration:
            calib = calibration_images(data)
            facts["calibration"] = (
                f"{len(calib)} training images of {source['source']!r} ("
                f"{CALIBRATION_BATCHES} shuffled batches of {CALIBRATION_BATCH}, seed 0)"
            )
    try:
        facts["preprocessing"] = preprocessing(source)
    except (OSError, ValueError, ImportError) as e:
        facts["preprocessing"] = {"unknown": f"the data cannot be read here: {e}"}
    return facts, inputs, calib


def calibration_images(data: Any) -> torch.Tensor:
    """:data:`CALIBRATION_BATCHES` shuffled training batches of
    :data:`CALIBRATION_BATCH` images (seed 0), on the CPU, in one tensor."""
    batches = data.train_batches(CALIBRATION_BATCH, torch.Generator().manual_seed(0))
    taken = [x.float().cpu() for _, x, _ in itertools.islice(batches, CALIBRATION_BATCHES)]
    return torch.cat(taken)


def model_facts(net: nn.Module, slim: Mapping[str, Any]) -> dict[str, Any]:
    """Family, configuration, architecture id, pruning and the network's cost on the CPU."""
    from spaces import model_stats

    space = SearchSpace.from_json(slim["space"])
    config = slim["config"]
    shape = tuple(int(s) for s in slim["input_shape"])
    stats = model_stats(net, input_shape=shape, latency=True)  # type: ignore[arg-type]
    return {
        "family": type(space["model"]).__name__,
        "config": config["model"],
        "arch_id": space.arch_id(config),
        "pruned": bool(slim.get("pruned")),
        "prune_ratio": (config.get("train") or {}).get("prune_ratio"),
        "distilled": ((config.get("train") or {}).get("distill_alpha") or 0) > 0,
        "params": stats.params,
        "flops": stats.flops,
        "activation_bytes": stats.activation_bytes,
        "cpu_latency_ms": stats.latency_ms,
        "cpu_threads": torch.get_num_threads(),
    }


def versions() -> dict[str, str]:
    """archtune, Python, torch and (when installed) torchao's and the ONNX packages'
    versions."""
    found = {"archtune": _version("archtune"), "python": platform.python_version()}
    found["torch"] = torch.__version__
    for name in ("torchao", "onnx", "onnxscript", "onnxruntime"):
        if importlib.util.find_spec(name) is not None:
            found[name] = _version(name)
    return found


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically; NaN and infinities become strings (``"nan"``,
    ``"inf"``, ``"-inf"``), which strict JSON readers accept."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
