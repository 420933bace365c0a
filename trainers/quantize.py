"""Post-training static int8 quantization, for deployment figures on the CPU.

Weights are quantized per channel to int8 and activations per tensor to uint8, with
ranges observed on a few calibration batches (Jacob et al., 2018, "Quantization and
Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR);
convolutions are fused with the BatchNorm and ReLU after them first.

This uses PyTorch's FX graph mode (``torch.ao.quantization.quantize_fx``) with the
backend's default qconfig (``x86`` here, fbgemm kernels). PyTorch 2.13 marks that module
deprecated in favour of torchao's PT2E flow, but PT2E only produces reference
(fake-quantized) graphs that become int8 kernels after ``torch.compile``, and needs the
extra ``torchao`` package; FX is what runs real int8 kernels eagerly with torch alone.
Its deprecation warnings are silenced here.

Layers with int8 kernels (convolutions, linear layers, BatchNorm, ReLU, Hardswish,
LeakyReLU, sums, pooling, concatenation) run in int8; the others (GroupNorm, SiLU, GELU,
the sigmoid of squeeze-and-excitation) run in fp32 between a dequantize and a quantize.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
    >>> gen = torch.Generator().manual_seed(0)
    >>> q = quantize_int8(net, [torch.randn(8, 1, 8, 8, generator=gen)])
    >>> q(torch.zeros(1, 1, 8, 8)).shape, int8_weight_layers(q)
    (torch.Size([1, 2]), 2)
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from trainers.pruning import measure


class QuantizationError(ValueError):
    """The model cannot be quantized to int8 (the message says why and what to do)."""


def quantize_int8(model: nn.Module, calibration: Iterable[torch.Tensor]) -> nn.Module:
    """An int8 copy of ``model`` (on the CPU, in eval mode); ``model`` is left untouched.

    Args:
        model: A float network whose forward pass ``torch.fx`` can trace (no control flow
            that depends on the input's values).
        calibration: Batches of inputs (a few hundred examples in all suffice) run
            through the observed model to fix the activation ranges.

    Returns:
        A ``torch.fx.GraphModule`` that takes and returns float tensors.

    Raises:
        QuantizationError: when the model cannot be traced, calibration is empty or not
            finite, the backend is missing, or no layer of the model has an int8 kernel.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
        >>> quantize_int8(net, [torch.ones(2, 4)])(torch.ones(1, 4)).dtype
        torch.float32
    """
    try:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    except ImportError as e:  # torch.ao.quantization is slated for removal
        raise QuantizationError(
            f"This torch ({torch.__version__}) has no FX graph mode quantization; install a "
            "torch below 2.14 (as pyproject.toml asks) to quantize."
        ) from e
    backend = torch.backends.quantized.engine
    if backend not in ("x86", "fbgemm", "qnnpack", "onednn"):
        raise QuantizationError(
            f"No int8 backend is active (torch.backends.quantized.engine = {backend!r}); "
            f"set it to one of {torch.backends.quantized.supported_engines}."
        )
    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise QuantizationError("Calibration is empty; pass at least one batch of inputs.")
    net = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions")
        try:
            prepared = prepare_fx(net, get_default_qconfig_mapping(backend), (first[:1].cpu(),))
        except Exception as e:  # torch.fx raises many types while tracing
            raise QuantizationError(
                f"{type(model).__name__} cannot be traced by torch.fx for quantization "
                f"({type(e).__name__}: {e}); remove control flow that depends on the "
                "input's values from its forward pass, or deploy it in fp32."
            ) from e
        for batch in _chain(first, batches):
            if not torch.isfinite(batch).all():
                raise QuantizationError("A calibration batch holds NaN or inf; drop it.")
            prepared(batch.cpu())
        quantized = convert_fx(prepared)
    if int8_weight_layers(quantized) == 0:
        raise QuantizationError(
            f"No layer of {type(model).__name__} has an int8 kernel (convolutions and linear "
            "layers do); there is nothing to quantize, so deploy it in fp32."
        )
    return quantized


def _chain(first: torch.Tensor, rest: Iterable[torch.Tensor]) -> Iterable[torch.Tensor]:
    yield first
    yield from rest


def int8_weight_layers(model: nn.Module) -> int:
    """How many layers of ``model`` hold int8 (``torch.qint8``) weights.

    Counts the packed weights of quantized layers: those of quantized modules and those
    of functional quantized ops that FX attaches to a graph module.

    Example:
        >>> int8_weight_layers(nn.Linear(2, 2))
        0
    """
    count = 0
    for m in model.modules():
        for value in vars(m).values():
            if isinstance(value, torch.ScriptObject) and hasattr(value, "unpack"):
                try:
                    count += value.unpack()[0].dtype == torch.qint8
                except (RuntimeError, TypeError, AttributeError, IndexError):
                    continue
    return count


@torch.no_grad()
def int8_report(
    model: nn.Module,
    x_calib: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    *,
    batch_size: int = 256,
    repeats: int = 20,
) -> dict[str, Any]:
    """Accuracy and CPU latency of the int8 copy of a classifier, beside the fp32 model's.

    Latencies are batch-1 medians after warm-up, from :func:`trainers.pruning.measure`,
    both on the CPU with torch's current thread count; inputs are images, as
    :func:`spaces.model_stats` (which it uses) requires.

    Args:
        model: The float classifier (left untouched).
        x_calib: Calibration inputs (e.g. a few hundred training images).
        x_eval, y_eval: Held-out inputs and their integer labels.
        batch_size: Batch size of calibration and evaluation.
        repeats: Timed forward passes per latency.

    Returns:
        ``{"int8_acc", "fp32_acc", "int8_latency_ms", "fp32_latency_ms",
        "int8_weight_layers"}``.

    Raises:
        QuantizationError: as :func:`quantize_int8` does.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> gen = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(16, 1, 8, 8, generator=gen), torch.zeros(16, dtype=torch.long)
        >>> report = int8_report(net, x, x, y, repeats=1)
        >>> sorted(report)[:2]
        ['fp32_acc', 'fp32_latency_ms']
    """
    quantized = quantize_int8(model, x_calib.cpu().split(batch_size))
    fp32 = copy.deepcopy(model).cpu().eval()
    x_eval, y_eval = x_eval.cpu(), y_eval.cpu()
    one = x_eval[:1]
    return {
        "int8_acc": _accuracy(quantized, x_eval, y_eval, batch_size),
        "fp32_acc": _accuracy(fp32, x_eval, y_eval, batch_size),
        "int8_latency_ms": measure(quantized, one, repeats=repeats)["latency_ms"],
        "fp32_latency_ms": measure(fp32, one, repeats=repeats)["latency_ms"],
        "int8_weight_layers": int8_weight_layers(quantized),
    }


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    correct = sum(
        (model(xb).argmax(1) == yb).sum().item()
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)
    )
    return correct / max(1, len(y))
