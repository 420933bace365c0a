"""Hardware use of one training epoch: peak memory and CPU / GPU utilisation.

:class:`EpochMeter` measures the process it runs in, from :meth:`EpochMeter.start`
(the epoch's start) to :meth:`EpochMeter.stop` (after its validation), and returns
metrics that go into the epoch's report beside ``val_acc`` and the rest, so the driver
stores them as metric rows like any other (and passes them to TensorBoard and
Prometheus when a run is watched; see docs/monitoring.md):

- ``peak_rss_mb``: the peak resident set size of the process during the epoch, in MiB
  (2**20 bytes). On Linux the kernel's high-water mark (``VmHWM``) is reset at the
  epoch's start (``/proc/self/clear_refs``, which resets only that mark); where it
  cannot be reset, the process's peak so far is reported.
- ``cpu_util``: CPU time of the process (all its threads, user and system) over the
  epoch's wall time, divided by the cores it was given (``torch.get_num_threads()``,
  which a trial sets to its CPU share): 1.0 is every given core busy all epoch. Worker
  processes of a DataLoader are not counted.
- ``peak_gpu_mem_mb`` (CUDA only): ``torch.cuda.max_memory_allocated`` over the epoch
  (the peak is reset at its start), in MiB: tensors PyTorch allocated, not its cache.
- ``gpu_util`` (CUDA with ``pynvml`` only): the device's utilisation as NVML reports it
  (the share of time a kernel ran, 0 to 1), averaged over samples taken every
  ``gpu_interval_s`` during the epoch. NVML counts the whole device, other processes
  on it included. Without ``pynvml`` (or NVML) the metric is left out.

A data-parallel trial measures each worker and reports :func:`merge_ranks` of them:
the largest peaks and the mean utilisations.

Example:
    >>> meter = EpochMeter("cpu")
    >>> meter.start()
    >>> _ = sum(i * i for i in range(10_000))
    >>> sample = meter.stop()
    >>> sorted(sample), sample["peak_rss_mb"] > 0
    (['cpu_util', 'peak_rss_mb'], True)
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence

import torch

MIB = 2**20
CPU_METRICS = ("peak_rss_mb", "cpu_util")
"""Reported by every epoch."""
GPU_METRICS = ("peak_gpu_mem_mb", "gpu_util")
"""Reported by epochs on CUDA (``gpu_util`` only where NVML answers)."""
_PEAKS = ("peak_rss_mb", "peak_gpu_mem_mb")

_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set size to its current one (Linux); return
    whether it was reset.

    Example:
        >>> isinstance(reset_peak_rss(), bool)
        True
    """
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")  # 5 resets the peak RSS only; 1-4 would clear page bits
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes, since start or the last
    :func:`reset_peak_rss`.

    Example:
        >>> peak_rss_bytes() > 0
        True
    """
    try:
        with open(_STATUS, encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows: the current RSS, the best it tells cheaply
        import psutil

        return int(psutil.Process().memory_info().rss)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, else kB


class _GpuSampler:
    """NVML utilisation of one CUDA device, sampled on a daemon thread."""

    available: bool | None = None  # per process: None until the first sample is tried

    def __init__(self, device: torch.device, interval_s: float) -> None:
        self.device, self.interval_s = device, interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        if _GpuSampler.available is False:
            return
        try:
            self.samples.append(float(torch.cuda.utilization(self.device)) / 100.0)
            _GpuSampler.available = True
        except Exception:  # no pynvml, no NVML driver: the metric is left out
            _GpuSampler.available = False

    def start(self) -> None:
        self.samples = []
        self.sample()
        if not _GpuSampler.available:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="archtune-gpu-util", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> float | None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.sample()
        return sum(self.samples) / len(self.samples) if self.samples else None


class EpochMeter:
    """Measures this process's hardware use over one epoch (see the module docstring).

    Call order: :meth:`start` then :meth:`stop`, once per epoch, from the training
    thread. Not thread-safe.

    Args:
        device: The device the epoch trains on (``"cuda"`` adds the GPU metrics).
        cores: Cores the process was given (default ``torch.get_num_threads()`` at
            :meth:`start`).
        gpu_interval_s: Seconds between GPU utilisation samples.
    """

    def __init__(
        self,
        device: torch.device | str = "cpu",
        cores: float | None = None,
        gpu_interval_s: float = 0.5,
    ) -> None:
        self.device = torch.device(device)
        self.cores = cores
        cuda = self.device.type == "cuda"
        self._gpu = _GpuSampler(self.device, gpu_interval_s) if cuda else None
        self._wall = self._cpu = 0.0
        self._given = 1.0

    def start(self) -> None:
        """The epoch starts: reset the peaks, note the clocks, start GPU sampling."""
        reset_peak_rss()
        if self._gpu is not None:
            torch.cuda.reset_peak_memory_stats(self.device)
            self._gpu.start()
        self._given = float(self.cores or torch.get_num_threads())
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> dict[str, float]:
        """The epoch ended: its metrics (``peak_rss_mb``, ``cpu_util``, and on CUDA
        ``peak_gpu_mem_mb`` and, with NVML, ``gpu_util``)."""
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        out = {
            "peak_rss_mb": peak_rss_bytes() / MIB,
            "cpu_util": cpu / wall / self._given if wall > 0 else 0.0,
        }
        if self._gpu is not None:
            out["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / MIB
            util = self._gpu.stop()
            if util is not None:
                out["gpu_util"] = util
        return out


def merge_ranks(samples: Sequence[dict[str, float]]) -> dict[str, float]:
    """One epoch's metrics from each data-parallel worker's: the largest peaks, the
    mean utilisations (a metric only some workers have is merged over those).

    Example:
        >>> merge_ranks([{"peak_rss_mb": 100.0, "cpu_util": 0.5},
        ...              {"peak_rss_mb": 120.0, "cpu_util": 0.7}])
        {'peak_rss_mb': 120.0, 'cpu_util': 0.6}
    """
    out: dict[str, float] = {}
    for name in dict.fromkeys(k for s in samples for k in s):
        values = [s[name] for s in samples if name in s]
        out[name] = max(values) if name in _PEAKS else sum(values) / len(values)
    return out
