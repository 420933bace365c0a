"""Export of a network's int8 model (trainers.export with trainers.quantize): each file run
by its own runtime against the quantized PyTorch graph it was made from, on real digits.

Tolerances: the ``torch.export`` program (``model.int8.pt2``) runs the same graph, so
``|a - b| <= 1e-4 + 1e-4 * |b|`` as for fp32 files (measured: 0). ONNX Runtime runs the
QDQ file on its own int8 kernels, which round differently from the graph's fp32 emulation
of them: ``|a - b| <= 0.1 * max|b|`` (INT8_ONNX_TOL); measured on the 360 validation images
0.007 (small ResNet) and 0.04 (small DenseNet) of the largest logit (docs/export.md), with the
same class for at least 98% of the images.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from trainers import ImageClassifier, export_model, load_model
from trainers.data import load_data
from trainers.export import ATOL, INT8_ONNX_TOL, RTOL, ExportError
from trainers.model_card import calibration_images
from trainers.quantize import quantize_int8

from .test_export import needs_onnx, trained

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plain() -> dict[str, Any]:
    return trained(epochs=2)


def _quantizer() -> ImageClassifier:
    return ImageClassifier(dataset="digits", epochs=2, quantize=True)


def _digits() -> Any:
    return load_data("digits", val_fraction=0.2, seed=0)


def _graph(directory: Path) -> torch.fx.GraphModule:
    """The quantized PyTorch graph the export made: the same calibration, redone."""
    return quantize_int8(load_model(directory), calibration_images(_digits()).split(64))


@needs_onnx
def test_onnx_int8_runs_in_onnxruntime_like_the_quantized_graph(plain, tmp_path) -> None:
    import onnxruntime

    out = export_model(plain["state"], tmp_path / "q", "onnx", trainer=_quantizer())
    assert out.model_file.name == "model.onnx" and out.int8_file.name == "model.int8.onnx"
    data = _digits()
    session = onnxruntime.InferenceSession(str(out.int8_file))
    got = torch.from_numpy(session.run(["logits"], {"images": data.x_val.numpy()})[0])
    with torch.no_grad():
        expected = _graph(out.directory)(data.x_val)
        fp32 = load_model(out.directory)(data.x_val)
    diff = (got - expected).abs().max()
    assert diff <= INT8_ONNX_TOL * expected.abs().max(), diff
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.98
    int8_acc = (got.argmax(1) == data.y_val).float().mean()
    fp32_acc = (fp32.argmax(1) == data.y_val).float().mean()
    assert fp32_acc > 0.8 and abs(int8_acc - fp32_acc) <= 0.03, (int8_acc, fp32_acc)

    card = json.loads(out.card.read_text())
    int8 = card["int8"]
    assert card["files"]["int8_model"] == "model.int8.onnx" == int8["model"]
    assert int8["exported"] and int8["weights"].startswith("int8")
    assert (
        int8["calibration"] == "512 training images of 'digits' (8 shuffled batches of 64, seed 0)"
    )
    check = int8["verification"]
    assert check["verified"] and check["runtime"] == "onnxruntime"
    assert check["atol_of_max"] == INT8_ONNX_TOL and check["max_abs_diff"] == out.int8_max_abs_diff
    assert "torchao" in card["versions"]
    assert card["verification"]["max_abs_diff"] <= ATOL  # the fp32 file as before


def test_int8_program_loads_in_a_fresh_process(plain, tmp_path) -> None:
    out = export_model(plain["state"], tmp_path / "q", "torchscript", trainer=_quantizer())
    assert out.int8_file.name == "model.int8.pt2" and out.int8_max_abs_diff == 0.0
    x = _digits().x_val
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys, torch; from trainers import load_model; "
        "m = load_model(sys.argv[1]); x = torch.load(sys.argv[2]); "
        "torch.save(m(x).detach(), sys.argv[3])"
    )
    args = [str(out.int8_file), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")]
    subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, check=True, timeout=300)
    got = torch.load(tmp_path / "y.pt")
    with torch.no_grad():
        expected = _graph(out.directory)(x)
    assert torch.allclose(got, expected, rtol=RTOL, atol=ATOL)
    card = json.loads(out.card.read_text())
    assert card["int8"]["model"] == "model.int8.pt2" and card["int8"]["verification"]["verified"]


def test_asking_for_int8_without_training_images_refuses(plain, tmp_path) -> None:
    with pytest.raises(ExportError, match=r"^No int8 export: .*calibrated on .*training images"):
        export_model(plain["state"], tmp_path / "q", "checkpoint", int8=True)
    assert not (tmp_path / "q").exists(), "nothing is written before every check passed"


def test_by_default_an_int8_trainer_without_its_data_exports_fp32_and_says_why(
    plain, tmp_path, monkeypatch
) -> None:
    trainer = _quantizer()

    def unreadable() -> None:
        raise OSError("no such file")

    monkeypatch.setattr(trainer, "load_data", unreadable)
    out = export_model(plain["state"], tmp_path / "q", "checkpoint", trainer=trainer)
    assert out.int8_file is None and out.int8_max_abs_diff is None
    int8 = json.loads(out.card.read_text())["int8"]
    assert not int8["exported"] and "no such file" in int8["why"]


def test_no_int8_unless_the_trainer_quantizes_or_it_is_asked(plain, tmp_path) -> None:
    trainer = ImageClassifier(dataset="digits", epochs=2)
    out = export_model(plain["state"], tmp_path / "a", "checkpoint", trainer=trainer)
    off = export_model(
        plain["state"], tmp_path / "b", "checkpoint", trainer=_quantizer(), int8=False
    )
    for e in (out, off):
        card = json.loads(e.card.read_text())
        assert e.int8_file is None and "int8" not in card and "int8_model" not in card["files"]
        assert sorted(p.name for p in e.directory.iterdir()) == [
            "checkpoint.pt",
            "model_card.json",
        ]
