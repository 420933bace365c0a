"""Export of trained networks: every format run by its own runtime against PyTorch on real
digits, the model card's preprocessing against the trainer's inputs, pruned and distilled
networks, and checkpoints that refuse to unpickle objects.

Tolerance: an exported file's logits must match the PyTorch network's within
``|a - b| <= 1e-4 + 1e-4 * |b|`` (fp32, CPU; logits here reach about 3). Measured on the
360 validation images: ONNX Runtime differs by up to 1.4e-6, TorchScript and the slim
checkpoint by 0 on the same batch (3e-7 between a batch of one and the same image in a
batch of 360, from PyTorch's own kernels).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from spaces import ResNetSpace, SearchSpace, TrainingSpace
from trainers import ImageClassifier, LocalSession, export_model, load_model
from trainers.checkpoint import (
    CHECKPOINT_FILE,
    MODEL_KEYS,
    UnsafeCheckpointError,
    check_plain,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from trainers.data import describe_source, load_data
from trainers.export import ATOL, RTOL, ExportError, check_format, onnx_parameters, run_exported
from trainers.preprocessing import preprocessing

from .data_fixtures import write_cifar10, write_folder

needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None
    or importlib.util.find_spec("onnxscript") is None,
    reason="pip install 'archtune[export]' for ONNX export",
)


def trained(epochs: int = 1, teacher: str | None = None, **train: Any) -> dict[str, Any]:
    """The checkpoint the real trainer reports after ``epochs`` on digits (no Ray), for
    a small ResNet with the training knobs ``train``."""
    model = ResNetSpace(stages=2, depth=1, width=16)
    space = SearchSpace({"model": model, "train": TrainingSpace(**train)})
    config = space.unflatten({})
    trainer = ImageClassifier(dataset="digits", epochs=epochs, teacher=teacher)
    session = LocalSession()
    trainer.check_space(space)
    trainer.prepare()  # the teacher's logits, as the driver would
    metrics = trainer.run(config, space, session)
    assert session.checkpoint is not None
    return {"state": session.checkpoint, "metrics": metrics, "trainer": trainer}


@pytest.fixture(scope="module")
def plain() -> dict[str, Any]:
    return trained(epochs=2)


@pytest.fixture(scope="module")
def pruned() -> dict[str, Any]:
    # fp16 on the CPU: the checkpoint carries a GradScaler state too.
    return trained(epochs=2, prune_ratio=0.5, precision="fp16")


def _val() -> torch.Tensor:
    """All 360 validation images of digits, as the network saw them."""
    return load_data("digits", val_fraction=0.2, seed=0).x_val


def _reference(state: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model_from_checkpoint(state)(x)


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def _assert_close(got: torch.Tensor, expected: torch.Tensor) -> float:
    diff = float((got - expected).abs().max())
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=RTOL, atol=ATOL), diff
    return diff


# ------------------------------------------------------------- formats, verified


@needs_onnx
def test_onnx_runs_in_onnxruntime_like_pytorch_on_real_digits(plain, tmp_path: Path) -> None:
    out = export_model(plain["state"], tmp_path / "m", "onnx", trainer=plain["trainer"])
    assert out.model_file == tmp_path / "m" / "model.onnx"
    assert not list((tmp_path / "m").glob("*.data")), "one file, no external weights"
    x = _val()
    for batch in (x, x[:1], x[:7]):  # the batch axis is dynamic
        _assert_close(_run_onnx(out.model_file, batch), _reference(plain["state"], batch))
    card = json.loads(out.card.read_text())
    assert card["verification"]["verified"] is True
    assert card["verification"]["max_abs_diff"] <= ATOL
    assert card["verification"]["inputs"] == "the first 64 validation images of 'digits'"
    assert card["files"]["opset"] >= 18
    assert card["input"]["shape"] == ["batch", 1, 8, 8]
    assert card["output"]["classes"] == [str(i) for i in range(10)]
    assert {"archtune", "torch", "onnx", "onnxruntime"} <= set(card["versions"])


def test_torchscript_and_slim_checkpoint_reproduce_pytorch(plain, tmp_path: Path) -> None:
    x = _val()
    expected = _reference(plain["state"], x)
    ts = export_model(plain["state"], tmp_path / "ts", "torchscript", trainer=plain["trainer"])
    with torch.no_grad():
        scripted = torch.jit.load(str(ts.model_file))
        assert _assert_close(scripted(x), expected) == 0.0
        _assert_close(scripted(x[:1]), expected[:1])  # other batch blocking: ~1e-7
    ck = export_model(plain["state"], tmp_path / "ck", "checkpoint", trainer=plain["trainer"])
    assert ck.model_file is None and sorted(os.listdir(ck.directory)) == [
        CHECKPOINT_FILE,
        "model_card.json",
    ]
    with torch.no_grad():
        assert torch.equal(load_model(ck.directory)(x), expected)
        assert torch.equal(run_exported(ts.checkpoint, x), expected)


def test_slim_checkpoint_holds_the_network_only_and_loads_weights_only(
    plain, tmp_path: Path
) -> None:
    out = export_model(plain["state"], tmp_path / "m", "checkpoint")
    slim = torch.load(out.checkpoint, weights_only=True)
    assert set(slim) == set(MODEL_KEYS)
    assert "optimizer" in plain["state"] and "generator" in plain["state"]
    assert out.checkpoint.stat().st_size < 0.6 * len(_saved(plain["state"]))


def _saved(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_model_card_describes_what_the_network_expects(plain, tmp_path: Path) -> None:
    out = export_model(plain["state"], tmp_path / "m", "checkpoint", trainer=plain["trainer"])
    card = json.loads(out.card.read_text())
    pre = card["preprocessing"]
    assert pre["channel_order"] == "gray" and pre["layout"] == "NCHW"
    assert pre["pixel_range"] == [0, 16] and pre["scale"] == 1 / 16
    assert card["data"]["source"] == "digits" and card["data"]["seed"] == 0
    assert card["training"]["config"] == plain["state"]["config"]["train"]
    assert card["training"]["trainer"]["kwargs"]["epochs"] == 2
    model = card["model"]
    assert model["family"] == "ResNetSpace" and model["config"] == {
        "stages": 2,
        "depth": 1,
        "width": 16,
    }
    assert model["params"] == plain["metrics"]["params"] and model["flops"] > 0
    assert model["cpu_latency_ms"] > 0 and not model["pruned"]
    # The card's formula, applied to the raw scikit-learn images, gives the network's input.
    from sklearn.datasets import load_digits

    raw = torch.tensor(load_digits().images, dtype=torch.float32)[:, None]
    x = (raw * pre["scale"] - pre["mean"][0]) / pre["std"][0]
    val = _val()
    nearest = torch.cdist(
        val.flatten(1), x.flatten(1), compute_mode="donot_use_mm_for_euclid_dist"
    ).min(1)
    assert float(nearest.values.max()) < 1e-6


def test_preprocessing_of_cifar10_and_folders_matches_their_readers(tmp_path: Path) -> None:
    from .data_fixtures import cifar_batch

    spec = describe_source("cifar10", write_cifar10(tmp_path / "c"))
    pre = preprocessing(spec)
    assert pre["channel_order"] == "RGB" and pre["pixel_range"] == [0, 255]
    raw = torch.tensor(cifar_batch(20, 0)[b"data"]).view(-1, 3, 32, 32).float()
    mean, std = (torch.tensor(pre[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    assert torch.allclose((raw - mean) / std, load_data(**spec).x_test, atol=1e-5)
    root = write_folder(tmp_path / "f", mode="L")
    for limit in (1 << 30, 0):  # exact statistics, and those of the sampled images
        spec = describe_source("folder", root, image_size=8, in_memory_limit=limit)
        pre = preprocessing(spec)
        assert pre["channel_order"] == "gray" and pre["size"] == [8, 8]
        data = load_data(**spec)
        if limit:
            first = data.x_train[:1] * torch.tensor(pre["std"]) + torch.tensor(pre["mean"])
            assert torch.allclose(first, first.round(), atol=1e-3), "back to integer pixels"
        else:
            assert np.allclose(data.train.mean.flatten().tolist(), pre["mean"])
            assert np.allclose(data.train.std.flatten().tolist(), pre["std"])


# ------------------------------------------------------- pruned and distilled networks


@needs_onnx
def test_pruned_network_exports_at_its_pruned_size(pruned, plain, tmp_path: Path) -> None:
    state = pruned["state"]
    assert state["pruned"] and state["scaler"] is not None
    check_plain(state)  # structure, scaler and generator states load with weights_only
    out = export_model(state, tmp_path / "m", "onnx", trainer=pruned["trainer"])
    net = model_from_checkpoint(state)
    small = sum(t.numel() for t in (*net.parameters(), *net.buffers()))
    dense = pruned["metrics"]["dense_params"]
    stored = onnx_parameters(out.model_file)
    # BatchNorms are folded into the convolutions: no more numbers than the pruned network.
    assert stored <= small and stored < 0.5 * dense
    card = json.loads(out.card.read_text())
    assert card["files"]["graph_parameters"] == stored
    assert card["model"]["pruned"] and card["model"]["params"] == pruned["metrics"]["params"]
    _assert_close(_run_onnx(out.model_file, _val()), _reference(state, _val()))


def test_distilled_student_exports_like_any_model(plain, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher" / CHECKPOINT_FILE
    teacher.parent.mkdir()
    save_checkpoint(plain["state"], teacher)
    student = trained(epochs=1, teacher=str(teacher), distill_alpha=0.5)
    out = export_model(student["state"], tmp_path / "s", "torchscript", trainer=student["trainer"])
    card = json.loads(out.card.read_text())
    assert card["model"]["distilled"] is True
    assert card["training"]["trainer"]["kwargs"]["teacher"] == {"checkpoint": str(teacher)}
    x = _val()
    with torch.no_grad():
        _assert_close(torch.jit.load(str(out.model_file))(x), _reference(student["state"], x))


# ---------------------------------------------------------------- safe loading


def _touch(path: str) -> None:
    Path(path).touch()


class _Payload:
    """Unpickling this would create a file: what a malicious checkpoint could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (_touch, (self.marker,))


def test_a_checkpoint_carrying_a_pickled_object_is_refused(plain, tmp_path: Path) -> None:
    from studies.trial import _load
    from trainers.distill import load_teacher

    marker = tmp_path / "ran"
    evil = tmp_path / "run" / CHECKPOINT_FILE
    evil.parent.mkdir()
    torch.save({**plain["state"], "extra": _Payload(str(marker))}, evil)
    loaders = [
        load_checkpoint,
        load_model,
        load_teacher,  # a teacher given as a path
        lambda p: _load(os.path.dirname(p)),  # a resumed trial
        lambda p: export_model(p, tmp_path / "out", "checkpoint"),
    ]
    for load in loaders:
        with pytest.raises(
            UnsafeCheckpointError,
            match=r"pickled object \(tests\.trainers\.test_export\._touch\).*weights_only",
        ):
            load(str(evil))
    assert not marker.exists(), "nothing was unpickled"
    torch.save(plain["state"], evil)  # the real trainer's checkpoint is all plain data
    assert load_checkpoint(evil)["epoch"] == 2


def test_save_refuses_what_weights_only_cannot_read(plain, tmp_path: Path) -> None:
    bad = {**plain["state"], "dense_stats": {"params": np.float64(3.0)}}
    with pytest.raises(TypeError, match=r"\['dense_stats'\]\['params'\] is a float64"):
        save_checkpoint(bad, tmp_path / CHECKPOINT_FILE)
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------- bad input


def test_bad_formats_directories_and_files_say_what_to_do(
    plain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ExportError, match="Unknown export format 'tflite'; use one of"):
        export_model(plain["state"], tmp_path / "a", "tflite")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="exists and is not empty; pass --force"):
        export_model(plain["state"], tmp_path / "full", "checkpoint")
    export_model(plain["state"], tmp_path / "full", "checkpoint", force=True)
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"
    with pytest.raises(ExportError, match="is a file"):
        export_model(plain["state"], tmp_path / "full" / "notes.txt", "checkpoint")
    with pytest.raises(ExportError, match=r"onnxruntime\.InferenceSession"):
        load_model(tmp_path / "model.onnx")
    ts = export_model(plain["state"], tmp_path / "ts", "torchscript")
    with pytest.raises(ExportError, match=r"TorchScript file; load it with torch\.jit\.load"):
        load_model(ts.model_file)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    with pytest.raises(ExportError, match=r"needs the package\(s\) onnx: pip install"):
        check_format("onnx")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_module_is_not_what_loads(plain, tmp_path: Path) -> None:
    """A file that is not a torch archive at all is refused as well (pickle's own format)."""
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(pickle.dumps({"version": 2, "x": _Payload(str(tmp_path / "ran"))}))
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "ran").exists()
