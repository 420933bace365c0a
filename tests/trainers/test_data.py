"""trainers.data: every source in its real file format, both data forms, bad input."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainers import data_fixtures as fx
from trainers.data import (
    LoaderData,
    TensorData,
    batches,
    check_source,
    clear_cache,
    describe_source,
    load_data,
    load_dataset,
)
from trainers.datasets import ImageFiles

FIXTURES = "tests.trainers.data_fixtures"


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    return fx.write_cifar10(tmp_path / "cifar")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return fx.write_folder(tmp_path / "pets")


def _source(kind: str, tmp_path: Path) -> dict:
    """load_data keywords of each kind of source."""
    if kind == "cifar10":
        return {"source": "cifar10", "data_dir": fx.write_cifar10(tmp_path).parent}
    if kind == "folder":
        return {"source": "folder", "data_dir": fx.write_folder(tmp_path), "image_size": 8}
    if kind in ("digits",):
        return {"source": kind}
    return {"source": f"{FIXTURES}:{kind}"}


KINDS = ["digits", "cifar10", "folder", "arrays_source", "numpy_source", "datasets_source"]


def _collect(data, seed: int = 3, batch_size: int = 7) -> list:
    gen = torch.Generator().manual_seed(seed)
    return [(i.clone(), x.clone(), y.clone()) for i, x, y in data.train_batches(batch_size, gen)]


def _eval(data, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*data.eval_batches(split, 5), strict=True)
    return torch.cat(xs), torch.cat(ys)


# --- The contract, over every source and both forms -------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_tensor_and_loader_forms_give_the_same_batches(kind: str, tmp_path: Path) -> None:
    kwargs = _source(kind, tmp_path)
    tensors = load_data(**kwargs)
    loader = load_data(**kwargs, in_memory_limit=0, num_workers=0)
    assert isinstance(tensors, TensorData) and isinstance(loader, LoaderData)
    for attr in ("input_shape", "num_classes", "num_train", "num_val", "has_test"):
        assert getattr(tensors, attr) == getattr(loader, attr), attr
    assert tensors.class_names == loader.class_names
    size = 7 if tensors.num_train < 200 else 128
    a, b = _collect(tensors, batch_size=size), _collect(loader, batch_size=size)
    assert len(a) == len(b) == tensors.num_train // size
    for (ia, xa, ya), (ib, xb, yb) in zip(a, b, strict=True):
        assert torch.equal(ia, ib) and torch.equal(ya, yb)
        assert float((xa - xb).abs().max()) <= 1e-6
        assert torch.equal(xa, tensors.x_train[ia]) and torch.equal(ya, tensors.y_train[ia])
        assert xa.dtype == torch.float32 and ya.dtype == torch.int64
        assert xa.shape[1:] == tensors.input_shape
    for split in ("val", "test") if tensors.has_test else ("val",):
        xa, ya = _eval(tensors, split)
        xb, yb = _eval(loader, split)
        torch.testing.assert_close(xa, xb, rtol=0, atol=1e-6)
        assert torch.equal(ya, yb) and len(ya) == getattr(tensors, f"num_{split}", len(ya))
    labels = torch.cat([tensors.y_train, tensors.y_val])
    assert int(labels.min()) >= 0 and int(labels.max()) < tensors.num_classes


def test_train_batches_are_seeded_and_leave_the_generators_alike() -> None:
    tensors = load_data("digits")
    loader = load_data("digits", in_memory_limit=0, num_workers=0)
    ga, gb = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    global_state = torch.random.get_rng_state()
    first = [i for i, _, _ in tensors.train_batches(100, ga)]
    second = [i for i, _, _ in loader.train_batches(100, gb)]
    assert all(torch.equal(p, q) for p, q in zip(first, second, strict=True))
    assert torch.equal(ga.get_state(), gb.get_state()), "augmentation draws stay in step"
    assert torch.equal(torch.random.get_rng_state(), global_state), "global RNG untouched"
    again = [i for i, _, _ in tensors.train_batches(100, torch.Generator().manual_seed(5))]
    assert all(torch.equal(p, q) for p, q in zip(first, again, strict=True))
    other = next(tensors.train_batches(100, torch.Generator().manual_seed(6)))[0]
    assert not torch.equal(first[0], other)
    legacy = list(batches(tensors.num_train, 100, torch.Generator().manual_seed(5)))
    assert all(torch.equal(p, q) for p, q in zip(first, legacy, strict=True))


def test_sequential_batches_cover_every_example_once() -> None:
    data = load_data("digits")
    idx = torch.cat(
        [i for i, _, _ in data.train_batches(500, None, shuffle=False, drop_last=False)]
    )
    assert torch.equal(idx, torch.arange(data.num_train))
    sizes = [len(y) for _, _, y in data.train_batches(500, None, shuffle=False)]
    assert sizes == [500, 500]
    small = [len(y) for _, _, y in data.train_batches(5000, None, shuffle=False)]
    assert small == [data.num_train], "the only batch is kept even when partial"


def test_loader_workers_and_device() -> None:
    data = load_data(f"{FIXTURES}:datasets_source", in_memory_limit=0, num_workers=1)
    assert isinstance(data, LoaderData) and data.num_workers == 1
    moved = data.to("cpu")
    assert isinstance(moved, LoaderData) and moved.device == torch.device("cpu")
    idx, x, y = next(moved.train_batches(8, torch.Generator().manual_seed(0)))
    assert torch.equal(x[:, 0, 0, 0], idx / 24) and torch.equal(y, idx % 4)


def test_tensor_data_moves_every_split() -> None:
    data = load_data(f"{FIXTURES}:arrays_source").to("cpu")
    assert isinstance(data, TensorData) and data.has_test and data.device.type == "cpu"
    assert data.nbytes == 46 * (16 * 4 + 8)


# --- Digits -----------------------------------------------------------------------------


def test_digits_through_load_data_matches_load_dataset() -> None:
    old = load_dataset("digits", 0.2, 0)
    new = load_data("digits", val_fraction=0.2, seed=0)
    assert old is new and old.num_train == 1437 and old.num_val == 360 and not old.has_test
    assert load_dataset("digits", 0.25, 1).num_val == 450


# --- CIFAR-10 ---------------------------------------------------------------------------


def test_cifar10_reads_the_python_format(cifar_dir: Path) -> None:
    data = load_data("cifar10", cifar_dir)
    assert isinstance(data, TensorData)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert (data.num_train, data.num_val, len(data.y_test)) == (80, 20, 20)
    assert data.class_names[:2] == ("airplane", "automobile")
    assert torch.bincount(data.y_val, minlength=10).tolist() == [2] * 10, "stratified"
    mean, std = data.x_train.mean((0, 2, 3)), data.x_train.std((0, 2, 3))
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-3, rtol=0)
    raw = fx.cifar_batch(20, 0)
    assert data.y_test.tolist() == raw[b"labels"]
    first = torch.from_numpy(raw[b"data"][0].reshape(3, 32, 32)).double()

    def standard(t: torch.Tensor) -> torch.Tensor:
        return (t - t.mean((1, 2), keepdim=True)) / t.std((1, 2), keepdim=True)

    # Each plane of 1024 values is one channel, normalised by an affine map per channel.
    torch.testing.assert_close(standard(data.x_test[0].double()), standard(first))


def test_cifar10_accepts_the_folder_or_its_parent_and_splits_by_seed(cifar_dir: Path) -> None:
    a = load_data("cifar10", cifar_dir.parent, seed=0)
    b = load_data("cifar10", cifar_dir, seed=0)
    c = load_data("cifar10", cifar_dir, seed=1)
    assert torch.equal(a.x_val, b.x_val) and not torch.equal(a.y_train, c.y_train)
    assert torch.equal(a.y_test, c.y_test), "the test split does not depend on the seed"
    torch.testing.assert_close(a.x_test, c.x_test, atol=0.1, rtol=0)  # train stats differ


def test_cifar10_errors_say_where_the_files_go(tmp_path: Path, cifar_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not a directory.*cifar-10-python\.tar\.gz"):
        load_data("cifar10", tmp_path / "nowhere")
    (cifar_dir / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"\['data_batch_3'\] are missing"):
        check_source("cifar10", cifar_dir)
    bin_dir = tmp_path / "bin" / "cifar-10-batches-bin"
    bin_dir.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="binary version"):
        load_data("cifar10", bin_dir.parent)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"not a pickle at all", "not a CIFAR-10 python batch"),
        (pickle.dumps({"data": 1}, protocol=2), r"keys b'data' and b'labels'"),
        (pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}), r"\(N, 3072\)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "one integer"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}), "0..9"),
        (pickle.dumps(os.getcwd), "never does"),  # a pickle that would call a function
    ],
)
def test_cifar10_rejects_files_of_another_format(content, match, cifar_dir: Path) -> None:
    (cifar_dir / "data_batch_2").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_data("cifar10", cifar_dir)


# --- Image folders ----------------------------------------------------------------------


def test_folder_decodes_resizes_and_normalises(folder: Path) -> None:
    data = load_data("folder", folder, image_size=(6, 7), val_fraction=0.5, seed=0)
    assert isinstance(data, TensorData)
    assert data.class_names == ("ant", "cat", "dog") and data.num_classes == 3
    assert data.input_shape == (3, 6, 7) and data.num_train == data.num_val == 9
    assert torch.bincount(data.y_val).tolist() == [3, 3, 3]
    mean = data.x_train.mean((0, 2, 3))
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-4, rtol=0)
    # The classes were written darkest to brightest in the order dog, cat, ant.
    brightness = [float(data.x_train[data.y_train == c].mean()) for c in range(3)]
    assert brightness[0] > brightness[1] > brightness[2]
    square = load_data("folder", folder, image_size=5)
    assert square.input_shape == (3, 5, 5)


def test_grayscale_folder_has_one_channel(tmp_path: Path) -> None:
    root = fx.write_folder(tmp_path / "g", ("a", "b"), per_class=4, mode="L")
    data = load_data("folder", root, image_size=8)
    assert data.input_shape == (1, 8, 8) and data.num_train + data.num_val == 8


def test_folder_with_train_val_test_subfolders(tmp_path: Path) -> None:
    fx.write_folder(tmp_path / "train", per_class=4)
    fx.write_folder(tmp_path / "val", ("cat", "dog"), per_class=2)
    fx.write_folder(tmp_path / "test", per_class=1)
    data = load_data("folder", tmp_path, image_size=8)
    assert (data.num_train, data.num_val, len(data.y_test)) == (12, 4, 3)
    assert sorted(set(data.y_val.tolist())) == [1, 2], "val labels use train's class order"
    with pytest.raises(ValueError, match=r"val/ folder.*leave val_fraction=None"):
        load_data("folder", tmp_path, image_size=8, val_fraction=0.3)
    with pytest.raises(ValueError, match=r"val/ folder"):
        check_source("folder", tmp_path, image_size=8, val_fraction=0.3)


def test_train_only_subfolder_holds_out_validation(tmp_path: Path) -> None:
    fx.write_folder(tmp_path / "train", per_class=5)
    data = load_data("folder", tmp_path, image_size=8, val_fraction=0.4)
    assert (data.num_train, data.num_val, data.has_test) == (9, 6, False)


def test_large_folder_decodes_per_item(folder: Path) -> None:
    data = load_data("folder", folder, image_size=8, in_memory_limit=1000)
    assert isinstance(data, LoaderData) and isinstance(data.train, ImageFiles)
    x, y = data.train[0]
    assert x.shape == (3, 8, 8) and isinstance(y, int)


@pytest.mark.parametrize(
    ("setup", "error", "match"),
    [
        (lambda r: None, FileNotFoundError, "not a directory"),
        (lambda r: fx.write_folder(r), ValueError, r"different sizes.*image_size"),
        (lambda r: (fx.write_folder(r), (r / "cat" / "x.png").write_text("no")), ValueError,
         "not an image Pillow can read"),
        (lambda r: (fx.write_folder(r), fx.write_image(r / "a.png", (4, 4), 1)), ValueError,
         "holds image files directly"),
        (lambda r: fx.write_folder(r, ("one",)), ValueError, "at least 2"),
        (lambda r: (fx.write_folder(r), (r / "empty").mkdir()), ValueError, "has no images"),
        (lambda r: (fx.write_folder(r / "train"), fx.write_folder(r / "cats")), ValueError,
         r"rename or move \['cats'\]"),
        (lambda r: (fx.write_folder(r / "train"), fx.write_folder(r / "val", ("cow", "dog"))),
         ValueError, r"classes \['cow'\] that train/ lacks"),
    ],
)  # fmt: skip
def test_bad_folders_say_what_to_fix(setup, error, match, tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    setup(root)
    size = None if "sizes" in match else 8
    with pytest.raises(error, match=match):
        check_source("folder", root, image_size=size)


# --- User functions ---------------------------------------------------------------------


def test_function_and_its_import_path_are_one_source() -> None:
    spec = describe_source(fx.arrays_source)
    assert spec == describe_source(f"{FIXTURES}:arrays_source")
    assert json.loads(json.dumps(spec)) == spec and spec["val_fraction"] is None
    data = load_data(fx.arrays_source)
    assert data is load_data(**spec)
    expected = fx.arrays_source()
    assert torch.equal(data.x_train, expected[0]) and torch.equal(data.y_test, expected[5])
    assert data.num_classes == 3 and data.input_shape == (1, 4, 4)


def test_function_gets_data_dir(tmp_path: Path) -> None:
    x = np.ones((6, 1, 2, 2), np.float32)
    np.savez(tmp_path / "data.npz", x_train=x, y_train=np.arange(6) % 2, x_val=x, y_val=[0, 1] * 3)
    data = load_data(fx.npz_source, tmp_path)
    assert data.num_train == 6 and data.num_classes == 2


def test_datasets_source_is_materialised_within_the_limit() -> None:
    data = load_data(f"{FIXTURES}:datasets_source")
    assert isinstance(data, TensorData) and data.num_classes == 4 and data.has_test
    assert torch.equal(data.x_train[:, 0, 0, 0], torch.arange(24) / 24)
    undeclared = load_data(f"{FIXTURES}:undeclared_datasets_source")
    assert undeclared.num_classes == 4 and not undeclared.has_test


def _local() -> None:
    def inner():  # pragma: no cover - only named
        return None

    return inner


@pytest.mark.parametrize(
    ("source", "error", "match"),
    [
        (lambda: None, ValueError, "module-level|top level"),
        (_local(), ValueError, "top level"),
        (f"{FIXTURES}:mismatched_source", ValueError, "x_train has 10 examples but y_train has 9"),
        (f"{FIXTURES}:uint8_source", ValueError, "dtype torch.uint8"),
        (f"{FIXTURES}:negative_label_source", ValueError, "label -1"),
        (f"{FIXTURES}:out_of_range_source", ValueError, "label 5 but declares 4 classes"),
        (f"{FIXTURES}:dict_source", TypeError, r"returned dict"),
        (f"{FIXTURES}:no_such_function", ImportError, "has no 'no_such_function'"),
        ("tests.trainers.no_such_module:f", ImportError, "no_such_module"),
        ("not a path", ValueError, "Unknown dataset"),
        ("pkg.mod:", ValueError, "not an import path"),
        (42, TypeError, "source must be one of"),
    ],
)
def test_bad_functions_say_what_to_fix(source, error, match) -> None:
    with pytest.raises(error, match=match):
        load_data(source)


def test_large_datasets_must_declare_classes_and_labels_are_checked_per_batch() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        load_data(f"{FIXTURES}:undeclared_datasets_source", in_memory_limit=0)
    data = load_data(f"{FIXTURES}:out_of_range_source", in_memory_limit=0, num_workers=0)
    with pytest.raises(ValueError, match=r"must lie in 0\.\.3"):
        list(data.train_batches(8, torch.Generator().manual_seed(0)))


# --- Specs and arguments ----------------------------------------------------------------


def test_spec_is_json_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = describe_source("folder", "imgs", image_size=(4, 6), num_workers=2)
    assert spec == {
        "source": "folder",
        "data_dir": str(tmp_path / "imgs"),
        "val_fraction": None,
        "seed": 0,
        "image_size": [4, 6],
        "in_memory_limit": 1 << 30,
        "num_workers": 2,
    }
    assert check_source("digits") == describe_source("digits", val_fraction=0.2)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("cifar10",), {}, "pass data_dir"),
        (("digits", "/tmp"), {}, "leave data_dir=None"),
        (("digits",), {"image_size": 8}, "'folder' only"),
        ((f"{FIXTURES}:arrays_source",), {"val_fraction": 0.2}, "own validation split"),
        (("digits",), {"val_fraction": 1.0}, r"\(0, 1\)"),
        (("folder", "/tmp"), {"image_size": (4, 0)}, "image_size must be"),
        (("digits",), {"seed": -1}, "seed must be"),
        (("digits",), {"in_memory_limit": True}, "in_memory_limit must be"),
        (("digits",), {"num_workers": -2}, "num_workers must be"),
    ],
)
def test_bad_arguments_say_what_to_fix(args, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        describe_source(*args, **kwargs)


def test_bad_batch_arguments() -> None:
    data = load_data("digits")
    with pytest.raises(ValueError, match=r"seeded torch\.Generator"):
        next(data.train_batches(8, None))
    with pytest.raises(ValueError, match="positive int"):
        next(data.train_batches(0, None, shuffle=False))
    with pytest.raises(ValueError, match="no test split"):
        next(data.eval_batches("test", 8))
    with pytest.raises(ValueError, match="'val' or 'test'"):
        next(data.eval_batches("train", 8))
