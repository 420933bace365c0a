"""Post-training static int8 quantization, for deployment figures and files on the CPU.

Weights are quantized per channel to int8 and activations per tensor to uint8, with
ranges observed on a few calibration batches (Jacob et al., 2018, "Quantization and
Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR);
each convolution is folded with the BatchNorm after it first.

This is PyTorch's PT2E flow, which lives in torchao (``pip install torchao``; torch 2.13
has no ``torch.ao.quantization.quantize_pt2e`` and deprecates the FX graph mode that this
module used before): ``torch.export`` captures the network, torchao's ``prepare_pt2e``
inserts observers where the ``X86InductorQuantizer`` (default config) says, calibration
runs, and ``convert_pt2e`` gives a graph of quantize/dequantize ops around fp32 ones with
int8 weights. That graph is what is exported (ONNX QDQ, ``torch.export`` program), and
what the accuracy is measured on; :func:`lower_int8` rewrites it onto oneDNN's int8
kernels (x86) to measure the latency.

Convolutions, linear layers, pooling, sums and concatenations run in int8; the others
(GroupNorm, LayerNorm, SiLU, GELU, the sigmoid of squeeze-and-excitation, a BatchNorm that
does not follow a convolution) run in fp32 between a dequantize and a quantize.

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

import contextlib
import copy
import logging
import operator
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from spaces.stats import forward_latency_ms

SCHEME = {
    "flow": "PT2E post-training static quantization (torch.export, torchao prepare_pt2e / "
    "convert_pt2e)",
    "quantizer": "torchao X86InductorQuantizer, default config",
    "weights": "int8, symmetric, per output channel",
    "activations": "uint8, affine, per tensor, ranges from calibration",
}
"""How :func:`quantize_int8` quantizes, for model cards."""


class QuantizationError(ValueError):
    """The model cannot be quantized to int8 (the message says why and what to do)."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings, and only errors from torchao's and torch's loggers, inside the block
    (torchao reports the CUDA kernels it cannot load on a CPU build, torch deprecations)."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree", "torch.export")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _pt2e() -> Any:
    """torchao's PT2E module (importing it registers the ``quantized_decomposed`` ops
    that quantized graphs call).

    Raises:
        QuantizationError: when torchao is not installed or does not import.
    """
    try:
        with _quiet():
            import torchao.quantization.pt2e.quantize_pt2e as flow
    except ImportError as e:
        raise QuantizationError(
            f"int8 quantization needs torchao's PT2E flow (torch {torch.__version__} has "
            f"none of its own): pip install 'torchao>=0.18' ({e})."
        ) from e
    return flow


def quantize_int8(model: nn.Module, calibration: Iterable[torch.Tensor]) -> torch.fx.GraphModule:
    """An int8 copy of ``model`` (on the CPU); ``model`` is left untouched.

    Args:
        model: A float network that ``torch.export`` can capture (no control flow that
            depends on the input's values), taking one batch of inputs; it is quantized as
            in eval mode.
        calibration: Batches of inputs (a few hundred examples in all suffice) run
            through the observed model to fix the activation ranges.

    Returns:
        A ``torch.fx.GraphModule`` that takes and returns float tensors of any batch size:
        the quantize/dequantize graph with int8 weights (fp32 arithmetic between them, so
        it computes what int8 kernels compute, up to their rounding).

    Raises:
        QuantizationError: when torchao is missing, the model cannot be captured,
            calibration is empty or not finite, or no layer of the model has an int8 kernel.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
        >>> quantize_int8(net, [torch.ones(2, 4)])(torch.ones(1, 4)).dtype
        torch.float32
    """
    flow = _pt2e()
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise QuantizationError("Calibration is empty; pass at least one batch of inputs.")
    net = copy.deepcopy(model).cpu().eval()
    example = first[:1].cpu().expand(2, *first.shape[1:]).contiguous()  # batch axis: dynamic
    quantizer = x86.X86InductorQuantizer().set_global(
        x86.get_default_x86_inductor_quantization_config()
    )
    with _quiet(), torch.no_grad():
        try:
            graph = torch.export.export(
                net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
            ).module()
        except Exception as e:  # torch.export raises many types while tracing
            first_line = (str(e).strip().splitlines() or [""])[0][:200]
            raise QuantizationError(
                f"{type(model).__name__} cannot be traced by torch.export for quantization "
                f"({type(e).__name__}: {first_line}); remove control flow that depends on "
                "the input's values from its forward pass, or deploy it in fp32."
            ) from e
        _lone_batch_norms_to_affine(graph)
        prepared = flow.prepare_pt2e(graph, quantizer)
        for batch in _chain(first, batches):
            if not torch.isfinite(batch).all():
                raise QuantizationError("A calibration batch holds NaN or inf; drop it.")
            prepared(batch.cpu())
        quantized = flow.convert_pt2e(prepared)
    if int8_weight_layers(quantized) == 0:
        raise QuantizationError(
            f"No layer of {type(model).__name__} has an int8 kernel (convolutions and linear "
            "layers do); there is nothing to quantize, so deploy it in fp32."
        )
    return quantized


def _chain(first: torch.Tensor, rest: Iterable[torch.Tensor]) -> Iterable[torch.Tensor]:
    yield first
    yield from rest


def _lone_batch_norms_to_affine(graph: torch.fx.GraphModule) -> int:
    """Replace each eval-mode BatchNorm of ``graph`` that does not follow a convolution by
    ``x * scale + shift``; returns how many.

    The quantizer folds a BatchNorm that follows a convolution into its weights. One that
    does not (DenseNet's pre-activations) would stay, and ``convert_pt2e`` then searches
    the graph for quantization-aware conv-BN patterns, exporting some hundred small
    patterns on the way (about a minute for a small DenseNet); as an affine map it is
    computed the same and nothing is searched.
    """
    aten = torch.ops.aten
    replaced = 0
    for node in list(graph.graph.nodes):
        if node.target is not aten.batch_norm.default or len(node.args) < 8:
            continue
        x, weight, bias, mean, var, training, _, eps = node.args[:8]
        after_conv = (
            isinstance(x, torch.fx.Node) and x.target is aten.conv2d.default and len(x.users) == 1
        )
        stats = [_constant(graph, a) for a in (mean, var)]
        if training or after_conv or stats[0] is None or stats[1] is None:
            continue
        scale = torch.rsqrt(stats[1] + eps)
        w, b = _constant(graph, weight), _constant(graph, bias)
        scale = scale * w if w is not None else scale
        shift = -stats[0] * scale + (b if b is not None else 0)
        ndim = node.meta["val"].dim() if "val" in node.meta else 4
        shape = (-1,) + (1,) * (ndim - 2)
        fake = getattr(node.meta.get("val"), "fake_mode", None)
        with graph.graph.inserting_before(node):
            args = []
            for kind, value in (("scale", scale), ("shift", shift)):
                name = f"_bn_affine_{replaced}_{kind}"
                graph.register_buffer(name, value.reshape(shape).contiguous())
                args.append(graph.graph.get_attr(name))
                if fake is not None:
                    args[-1].meta["val"] = fake.from_tensor(getattr(graph, name))
            # one op that the quantizer leaves in fp32 (a mul and an add it would quantize)
            affine = graph.graph.call_function(aten.addcmul.default, (args[1], x, args[0]))
        affine.meta.update(node.meta)
        node.replace_all_uses_with(affine)
        graph.graph.erase_node(node)
        replaced += 1
    if replaced:
        graph.graph.eliminate_dead_code()
        graph.recompile()
    return replaced


def _constant(graph: torch.fx.GraphModule, arg: Any) -> torch.Tensor | None:
    if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
        value = operator.attrgetter(arg.target)(graph)
        return value.detach() if isinstance(value, torch.Tensor) else None
    return None


def int8_weight_layers(model: nn.Module) -> int:
    """How many layers of a :func:`quantize_int8` graph hold int8 weights (tensors of
    ``torch.int8`` with two or more axes); 0 for a module without a graph.

    Example:
        >>> int8_weight_layers(nn.Linear(2, 2))
        0
    """
    graph = getattr(model, "graph", None)
    if not isinstance(graph, torch.fx.Graph):
        return 0
    count = 0
    for node in graph.nodes:
        if node.op == "get_attr":
            value = _constant(model, node)  # type: ignore[arg-type]
            count += value is not None and value.dtype == torch.int8 and value.dim() >= 2
    return count


def lower_int8(quantized: torch.fx.GraphModule, example: torch.Tensor) -> nn.Module:
    """``quantized`` rewritten onto oneDNN's int8 kernels (x86 CPUs), for inputs of
    ``example``'s shape: what its latency is measured on. Its outputs match the
    quantize/dequantize graph's up to the kernels' rounding.

    Raises:
        QuantizationError: when it cannot be lowered here (another CPU, another torch).
    """
    _pt2e()
    try:
        from torchao.quantization.pt2e.lowering import lower_pt2e_quantized_to_x86

        with _quiet(), torch.no_grad():
            return lower_pt2e_quantized_to_x86(copy.deepcopy(quantized), (example.cpu(),))
    except Exception as e:  # export, pattern matching and oneDNN raise many types
        raise QuantizationError(
            f"The int8 graph could not be lowered to oneDNN's x86 int8 kernels "
            f"({type(e).__name__}: {str(e)[:200]}); its latency cannot be measured here."
        ) from e


def save_program(quantized: torch.fx.GraphModule, example: torch.Tensor, path: str) -> None:
    """Write ``quantized`` as a ``torch.export`` program (``.pt2``, dynamic batch axis);
    :func:`load_program` reads it back."""
    with _quiet(), torch.no_grad():
        program = torch.export.export(
            quantized, (example.cpu(),), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
        torch.export.save(program, path)


def load_program(path: str | os.PathLike[str]) -> nn.Module:
    """The module of a ``.pt2`` file that :func:`save_program` wrote: ``torch.export.load``
    once torchao has registered the quantized ops it calls. Like any ``torch.export``
    file it may unpickle objects: load files from authors you trust only.

    Raises:
        QuantizationError: without torchao.
    """
    _pt2e()
    with _quiet():
        return torch.export.load(os.fspath(path)).module()


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

    Accuracy is the quantize/dequantize graph's (:func:`quantize_int8`); latencies are
    batch-1 medians of ``repeats`` forward passes after two warm-ups
    (:func:`spaces.stats.forward_latency_ms`), int8 on oneDNN's kernels
    (:func:`lower_int8`) and fp32 in eager PyTorch, both on the CPU with torch's current
    thread count.

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
        QuantizationError: as :func:`quantize_int8` and :func:`lower_int8` do.

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
    fast = lower_int8(quantized, one)
    return {
        "int8_acc": _accuracy(quantized, x_eval, y_eval, batch_size),
        "fp32_acc": _accuracy(fp32, x_eval, y_eval, batch_size),
        "int8_latency_ms": forward_latency_ms(fast, one, repeats),
        "fp32_latency_ms": forward_latency_ms(fp32, one, repeats),
        "int8_weight_layers": int8_weight_layers(quantized),
    }


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    correct = sum(
        (model(xb).argmax(1) == yb).sum().item()
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)
    )
    return correct / max(1, len(y))
