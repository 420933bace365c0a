"""Take a trained network home: a model file, a slim checkpoint and a model card.

:func:`export_model` writes one directory from a trial's checkpoint:

- ``checkpoint.pt``: the slim checkpoint, the architecture as data and the weights only
  (:func:`trainers.checkpoint.slim_state`); it loads with ``torch.load(...,
  weights_only=True)``, and :func:`load_model` rebuilds the network from it;
- the model file of the format: ``model.onnx`` (``"onnx"``: ``torch.onnx.export``'s
  ``torch.export``-based exporter, one file, opset 18 or later, input ``images`` with a
  dynamic batch axis, output ``logits``; needs ``pip install 'archtune[export]'``) or
  ``model.torchscript.pt`` (``"torchscript"``: ``torch.jit.trace``; PyTorch marks
  TorchScript deprecated, so prefer ONNX for new deployments); none for ``"checkpoint"``;
- for an int8 export (``int8=True``, or by default when the trainer has
  ``quantize=True``): the int8 model of :mod:`trainers.quantize` beside it, calibrated on
  512 training images of the trainer's data: ``model.int8.onnx`` (ONNX QDQ: int8 weights,
  QuantizeLinear/DequantizeLinear around the layers, which ONNX Runtime fuses into int8
  kernels where it can) with ``"onnx"``, else ``model.int8.pt2`` (a ``torch.export`` program;
  :func:`load_model` reads it);
- ``model_card.json``: what the network is (family, configuration, pruned or not,
  parameters, FLOPs, CPU latency), what it takes (input shape, the preprocessing of its
  data source from :mod:`trainers.preprocessing`) and gives (logits per class, the class
  names), how it was trained (the trainer's spec and the configuration's training
  knobs), how the file was checked, and the archtune, torch and exporter versions. A
  study's export (:mod:`studies.export`) adds the study, the trial and its results.

Every exported file is **verified** before the card is written: the file is run with its
own runtime (ONNX Runtime, ``torch.jit.load``, or :func:`load_model` for the
checkpoint) on real inputs (the first 64 validation images of the trainer's data, random
ones without a trainer) and again on one input (the batch axis is dynamic), and its
outputs must match the PyTorch network's within ``|a - b| <= ATOL + RTOL * |b|``
(:data:`RTOL` = :data:`ATOL` = 1e-4); the card records the largest difference. Without
``onnxruntime`` an ONNX file is written unverified, and the card says so. The int8 file
is checked against the quantized PyTorch graph it was made from: a ``.pt2`` within the
same tolerance, an ONNX file within ``|a - b| <= INT8_ONNX_TOL * max|b|`` (ONNX Runtime's
int8 kernels round differently from the graph's fp32 emulation of them).

Example:
    >>> import os, tempfile
    >>> from spaces import ResNetSpace, SearchSpace
    >>> from trainers.checkpoint import model_state
    >>> space = SearchSpace({"model": ResNetSpace(stages=1, depth=1, width=8)})
    >>> config = space.unflatten({})
    >>> net = space["model"].build(config["model"], input_shape=(1, 8, 8), num_classes=10)
    >>> state = model_state(net, space, config, input_shape=(1, 8, 8), num_classes=10)
    >>> out = export_model(state, os.path.join(tempfile.mkdtemp(), "m"), "torchscript")
    >>> out.model_file.name, out.max_abs_diff <= ATOL
    ('model.torchscript.pt', True)
    >>> load_model(out.directory)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainers.checkpoint import (
    CHECKPOINT_FILE,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    slim_state,
)
from trainers.model_card import (
    CALIBRATION_BATCH,
    CARD_FILE,
    INPUT_NAME,
    OUTPUT_NAME,
    ExportError,
    build_card,
    data_facts,
    write_json,
)

FORMATS = ("torchscript", "onnx", "checkpoint")
MODEL_FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
INT8_FILES = {"onnx": "model.int8.onnx", "program": "model.int8.pt2"}
RTOL = ATOL = 1e-4  # exported outputs vs PyTorch's, fp32 on the CPU
# An int8 ONNX file's logits vs the quantized PyTorch graph's, as a fraction of the largest
# logit: measured on digits up to 0.04 (a small DenseNet), 0.007 for a small ResNet.
INT8_ONNX_TOL = 0.1


@dataclass(frozen=True)
class ExportedModel:
    """What :func:`export_model` wrote.

    Attributes:
        directory: The export directory.
        format: ``"torchscript"``, ``"onnx"`` or ``"checkpoint"``.
        checkpoint: The slim checkpoint.
        card: The JSON model card.
        model_file: The TorchScript or ONNX file (None for ``"checkpoint"``).
        max_abs_diff: Largest difference between the file's outputs and PyTorch's
            (None when it could not be run: ONNX without onnxruntime).
        int8_file: The int8 model file (None when no int8 model was exported).
        int8_max_abs_diff: Largest difference between the int8 file's outputs and the
            quantized PyTorch graph's (None without an int8 file, or unverified).
    """

    directory: Path
    format: str
    checkpoint: Path
    card: Path
    model_file: Path | None
    max_abs_diff: float | None
    int8_file: Path | None = None
    int8_max_abs_diff: float | None = None


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of :data:`FORMATS`, with ONNX's packages installed.

    Raises:
        ExportError: for an unknown format, or ONNX without ``onnx`` and ``onnxscript``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if fmt == "onnx" and missing:
        raise ExportError(
            f"ONNX export needs the package(s) {', '.join(missing)}: "
            "pip install 'archtune[export]' (or export --format torchscript)."
        )
    return fmt


def prepare_directory(directory: str | os.PathLike[str], force: bool = False) -> Path:
    """Create ``directory``; an existing non-empty one only with ``force``.

    Raises:
        ExportError: when it is a file, or is not empty and ``force`` is False.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ExportError(f"{path} is a file; give a directory to export into.")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ExportError(
            f"{path} exists and is not empty; pass --force (force=True) to write into it "
            "(files of the same names are replaced), or choose another directory."
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_model(
    checkpoint: Mapping[str, Any] | str | os.PathLike[str],
    directory: str | os.PathLike[str],
    format: str,
    *,
    trainer: Any = None,
    card: Mapping[str, Any] | None = None,
    force: bool = False,
    int8: bool | None = None,
) -> ExportedModel:
    """Write a network's model file, slim checkpoint and model card into ``directory``.

    Args:
        checkpoint: A trial checkpoint (dict, file, or Ray checkpoint directory).
        directory: Where to write (created; must be empty unless ``force``).
        format: One of :data:`FORMATS`.
        trainer: The ``ImageClassifier`` that trained it: its data gives the verification
            inputs, the class names and the preprocessing of the card.
        card: Entries the card starts with (a study's export adds the study and trial).
        force: Write into a non-empty directory, replacing files of the same names.
        int8: Export the int8 model too (True), or not (False); by default when the
            trainer has ``quantize=True``. By default a network that cannot be quantized
            here (no int8 layer, no training images to calibrate on, no torchao) exports
            without it, and the card's ``int8`` entry says why; with True that is an error.

    Raises:
        ExportError: for a bad format or directory, a trainer whose data has another
            shape, a network the exporter cannot convert, outputs beyond tolerance, or
            ``int8=True`` for a network that cannot be quantized here.
        trainers.checkpoint.UnsafeCheckpointError: for a checkpoint holding a pickled object.
    """
    fmt = check_format(format)
    state = checkpoint if isinstance(checkpoint, Mapping) else load_checkpoint(checkpoint)
    slim = slim_state(state)
    net = model_from_checkpoint(slim)
    wanted = bool(getattr(trainer, "quantize", False)) if int8 is None else int8
    facts, inputs, calibration = data_facts(trainer, slim, calibration=wanted)
    quantized, int8_card = (
        _quantize(net, calibration, facts, required=int8 is True) if wanted else (None, None)
    )
    out = prepare_directory(directory, force)
    save_checkpoint(slim, out / CHECKPOINT_FILE)
    files: dict[str, Any] = {"format": fmt, "checkpoint": CHECKPOINT_FILE}
    model_file = int8_file = None
    if fmt == "checkpoint":
        check = verify(out / CHECKPOINT_FILE, net, inputs)
    else:
        model_file = out / MODEL_FILES[fmt]
        files.update(_WRITERS[fmt](net, inputs, model_file))
        check = verify(model_file, net, inputs)
    if quantized is not None:
        int8_file, int8_card = _write_int8(quantized, net, fmt, inputs, out, int8_card)
        files["int8_model"] = int8_file.name
    body = build_card(net, slim, files=files, check=check, facts=facts, extra=card, int8=int8_card)
    write_json(out / CARD_FILE, body)
    return ExportedModel(
        out,
        fmt,
        out / CHECKPOINT_FILE,
        out / CARD_FILE,
        model_file,
        check.get("max_abs_diff"),
        int8_file,
        (int8_card or {}).get("verification", {}).get("max_abs_diff"),
    )


def _quantize(
    net: nn.Module,
    calibration: torch.Tensor | None,
    facts: Mapping[str, Any],
    *,
    required: bool,
) -> tuple[Any, dict[str, Any] | None]:
    """The int8 graph of ``net`` and the start of the card's ``int8`` entry, or None and
    an entry that says why when it cannot be made (and is not ``required``).

    Raises:
        ExportError: when it cannot be made and ``required``.
    """
    from trainers.quantize import SCHEME, QuantizationError, quantize_int8

    try:
        if calibration is None:
            raise QuantizationError(
                f"the int8 model is calibrated on the trainer's training images, and there "
                f"are none here ({facts['calibration']}); export where the data is"
            )
        quantized = quantize_int8(net, calibration.split(CALIBRATION_BATCH))
    except QuantizationError as e:
        if required:
            raise ExportError(f"No int8 export: {e}") from e
        return None, {"exported": False, "why": str(e)}
    return quantized, {"exported": True, **SCHEME, "calibration": facts["calibration"]}


def _write_int8(
    quantized: Any,
    net: nn.Module,
    fmt: str,
    inputs: torch.Tensor,
    out: Path,
    entry: dict[str, Any] | None,
) -> tuple[Path, dict[str, Any]]:
    """Write and verify the int8 file: ONNX for ``"onnx"``, else a ``torch.export``
    program; returns it and the card's ``int8`` entry."""
    from trainers.quantize import save_program

    if fmt == "onnx":
        path = out / INT8_FILES["onnx"]
        written = _write_onnx(quantized, inputs, path)
        check = verify(path, quantized, inputs, rtol=0.0, atol=0.0, atol_of_max=INT8_ONNX_TOL)
        load = (
            f"onnxruntime.InferenceSession({path.name!r}): QuantizeLinear/DequantizeLinear "
            "around each int8 layer, which ONNX Runtime fuses into int8 kernels where it can"
        )
    else:
        path = out / INT8_FILES["program"]
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        save_program(quantized, inputs, str(tmp))
        os.replace(tmp, path)
        written = {"model": path.name, "program": "torch.export (torch.export.save)"}
        check = verify(path, quantized, inputs)
        load = (
            f"trainers.load_model({path.name!r}), or import torchao (it registers the "
            f"quantized ops) then torch.export.load({path.name!r}).module(); it may unpickle "
            "objects: load it only from an author you trust"
        )
    with torch.no_grad():
        agree = (quantized(inputs).argmax(1) == net(inputs).argmax(1)).float().mean()
    return path, {
        **(entry or {}),
        **written,
        "load": load,
        "top1_agreement_with_fp32": float(agree),
        "verification": {**check, "against": "the quantized PyTorch graph"},
    }


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """The network of an export directory, a slim or full checkpoint, or a Ray checkpoint
    directory, in eval mode on ``device``; read with ``torch.load(weights_only=True)``.
    A ``.pt2`` file (an int8 export's ``torch.export`` program) gives its module.

    Raises:
        FileNotFoundError: when there is no checkpoint there.
        ExportError: for a TorchScript or ONNX file (load those with their runtimes).
        trainers.checkpoint.UnsafeCheckpointError: for a file holding a pickled object.
    """
    path = Path(path)
    if path.suffix == ".pt2":
        from trainers.quantize import load_program

        return load_program(path).to(device)
    if path.suffix == ".onnx":
        raise ExportError(
            f"{path} is an ONNX file; run it with onnxruntime.InferenceSession({str(path)!r}), "
            f"or give load_model its export directory or {CHECKPOINT_FILE}."
        )
    if path.is_file() and _is_torchscript(path):
        raise ExportError(
            f"{path} is a TorchScript file; load it with torch.jit.load (it runs its own "
            f"code: only from an author you trust), or give load_model its {CHECKPOINT_FILE}."
        )
    return model_from_checkpoint(load_checkpoint(path), device)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(name.split("/")[1:2] == ["code"] for name in z.namelist())


def run_exported(path: str | os.PathLike[str], x: torch.Tensor) -> torch.Tensor:
    """The outputs of an exported file on ``x``, run by its own runtime on the CPU.

    Raises:
        ImportError: for an ONNX file without ``onnxruntime``.
    """
    path = Path(path)
    with torch.no_grad():
        if path.suffix == ".onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
        if path.name == MODEL_FILES["torchscript"]:
            return torch.jit.load(str(path), map_location="cpu").eval()(x)
        return load_model(path)(x)  # a checkpoint or a .pt2 program


def verify(
    path: Path,
    net: nn.Module,
    inputs: torch.Tensor,
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
    atol_of_max: float = 0.0,
) -> dict[str, Any]:
    """Compare an exported file's outputs with ``net``'s on ``inputs`` and on one input:
    ``|a - b| <= atol + atol_of_max * max|b| + rtol * |b|``.

    Raises:
        ExportError: when they differ beyond that.
    """
    runtime = {".onnx": "onnxruntime"}.get(path.suffix, "torch")
    check: dict[str, Any] = {"runtime": runtime, "rtol": rtol, "atol": atol}
    if atol_of_max:
        check["atol_of_max"] = atol_of_max
    if runtime == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        return {**check, "verified": False, "why": "onnxruntime is not installed"}
    worst, agree = 0.0, 0.0
    for i, x in enumerate((inputs, inputs[:1])):
        with torch.no_grad():
            expected = net(x)
        got = run_exported(path, x)
        limit = atol + atol_of_max * float(expected.abs().max())
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol, limit):
            raise ExportError(
                f"{path.name} does not reproduce the PyTorch network on a batch of {len(x)} "
                f"(largest difference {_max_diff(got, expected)}); export another format."
            )
        worst = max(worst, _max_diff(got, expected))
        if i == 0:
            agree = float((got.argmax(1) == expected.argmax(1)).float().mean())
    return {
        **check,
        "verified": True,
        "batch_sizes": [len(inputs), 1],
        "max_abs_diff": worst,
        "top1_agreement": agree,
    }


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) if a.shape == b.shape else math.inf


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """No warnings, and only errors from ``logger``, inside the block."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _write_onnx(net: nn.Module, x: torch.Tensor, path: Path) -> dict[str, Any]:
    import onnx

    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with _quiet("torch.onnx"), torch.no_grad():
            torch.onnx.export(
                net,
                (x,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
                verbose=False,
            )
    except Exception as e:  # the exporter raises many kinds; one line for the user
        tmp.unlink(missing_ok=True)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(
            f"ONNX export of this network failed ({first}); export --format torchscript or "
            "checkpoint instead."
        ) from e
    os.replace(tmp, path)
    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"model": path.name, "opset": opset, "graph_parameters": onnx_parameters(model)}


def onnx_parameters(model: Any) -> int:
    """Numbers stored in an ONNX model's initializers (its weights, after the exporter
    folded each BatchNorm into its convolution): an ``onnx.ModelProto`` or a path."""
    if not hasattr(model, "graph"):
        import onnx

        model = onnx.load(os.fspath(model))
    return sum(math.prod(init.dims) for init in model.graph.initializer)


def _write_torchscript(net: nn.Module, x: torch.Tensor, path: Path) -> dict[str, Any]:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with _quiet("torch.jit"), torch.no_grad():
        torch.jit.save(torch.jit.trace(net, x), str(tmp))
    os.replace(tmp, path)
    return {"model": path.name, "torchscript": "torch.jit.trace (deprecated by PyTorch)"}


_WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript}
