"""Hardware use per epoch: peak memory, CPU and GPU utilisation (trainers.hardware)."""

from __future__ import annotations

import importlib.util
import time

import pytest
import torch

from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from trainers import ImageClassifier, LocalSession, hardware
from trainers.hardware import CPU_METRICS, GPU_METRICS, MIB, EpochMeter, reset_peak_rss


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_use_is_the_share_of_the_given_cores_busy() -> None:
    meter = EpochMeter("cpu", cores=1)
    meter.start()
    _busy(0.2)
    busy = meter.stop()
    assert set(busy) == set(CPU_METRICS)
    # One thread spinning on one core given; a shared machine may lend it less.
    assert 0.2 < busy["cpu_util"] <= 1.1
    meter.start()
    time.sleep(0.2)
    idle = meter.stop()
    # Other threads of this process (a test session holds Ray's) may run meanwhile.
    assert idle["cpu_util"] < busy["cpu_util"] / 2


def test_the_peak_memory_is_the_epochs_own() -> None:
    if not reset_peak_rss():
        pytest.skip("the peak RSS can be reset only on Linux (/proc/self/clear_refs)")
    meter = EpochMeter("cpu")
    meter.start()
    block = torch.ones(256 * MIB // 4)  # 256 MiB, written
    del block
    peak = meter.stop()["peak_rss_mb"]
    meter.start()
    after = meter.stop()["peak_rss_mb"]
    assert peak - after > 200, (peak, after)


def test_cuda_adds_peak_gpu_memory_and_gpu_use_only_where_nvml_answers(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 48 * MIB)

    def no_nvml(device=None):
        raise ModuleNotFoundError("pynvml does not seem to be installed")

    monkeypatch.setattr(torch.cuda, "utilization", no_nvml)
    monkeypatch.setattr(hardware._GpuSampler, "available", None)
    meter = EpochMeter(torch.device("cuda", 0), cores=1)
    meter.start()
    without = meter.stop()
    assert without["peak_gpu_mem_mb"] == 48 and "gpu_util" not in without
    meter.start()  # asked once per process: no sampling thread after it failed
    assert meter._gpu._thread is None and "gpu_util" not in meter.stop()

    monkeypatch.setattr(torch.cuda, "utilization", lambda device=None: 40)
    monkeypatch.setattr(hardware._GpuSampler, "available", None)
    meter = EpochMeter("cuda", cores=1, gpu_interval_s=0.01)
    meter.start()
    time.sleep(0.05)
    sample = meter.stop()
    assert sorted(sample) == sorted((*CPU_METRICS, *GPU_METRICS))
    assert sample["gpu_util"] == pytest.approx(0.4)


def test_data_parallel_workers_merge_into_the_largest_peaks_and_mean_use() -> None:
    ranks = [
        {"peak_rss_mb": 100.0, "cpu_util": 0.5, "peak_gpu_mem_mb": 10.0, "gpu_util": 0.2},
        {"peak_rss_mb": 300.0, "cpu_util": 0.75, "peak_gpu_mem_mb": 30.0},
    ]
    assert hardware.merge_ranks(ranks) == {
        "peak_rss_mb": 300.0,
        "cpu_util": 0.625,
        "peak_gpu_mem_mb": 30.0,
        "gpu_util": 0.2,
    }


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "model": ResNetSpace(stages=1, depth=Int(1, 2), width=Categorical([8, 16])),
            "train": TrainingSpace(lr=Float(1e-3, 1e-1, log=True)),
        }
    )


def test_every_epoch_of_image_classifier_reports_its_hardware_use() -> None:
    space = _space()
    config = space.unflatten({"model/depth": 1, "model/width": 8, "train/lr": 3e-3})
    session = LocalSession()
    ImageClassifier(dataset="digits", epochs=2, device="cpu").run(config, space, session)
    for epoch in session.history:
        assert set(CPU_METRICS) <= set(epoch) and not set(GPU_METRICS) & set(epoch)
        assert epoch["peak_rss_mb"] > 50 and 0 < epoch["cpu_util"] < 2
    assert set(CPU_METRICS) <= set(ImageClassifier.metrics), "objectives may use them"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_epoch_measures_the_gpu() -> None:
    meter = EpochMeter("cuda", gpu_interval_s=0.05)
    meter.start()
    x = torch.randn(4096, 4096, device="cuda")  # 64 MiB
    for _ in range(50):
        x = x @ x
        x = x / x.norm()
    torch.cuda.synchronize()
    sample = meter.stop()
    assert sample["peak_gpu_mem_mb"] >= 64
    if importlib.util.find_spec("pynvml") is not None:
        assert 0 <= sample["gpu_util"] <= 1
    else:
        assert "gpu_util" not in sample
    space = _space()
    config = space.unflatten({"model/depth": 1, "model/width": 8, "train/lr": 3e-3})
    session = LocalSession()
    ImageClassifier(dataset="digits", epochs=1, device="cuda").run(config, space, session)
    assert session.history[0]["peak_gpu_mem_mb"] > 0
    assert ("gpu_util" in session.history[0]) == (importlib.util.find_spec("pynvml") is not None)
