"""The driver's metrics for Prometheus, served over HTTP while a study runs.

``RunSettings(metrics_port=PORT)`` (``archtune run --metrics-port PORT``) serves
``http://127.0.0.1:PORT/metrics`` (``metrics_host`` / ``--metrics-host`` to listen
elsewhere) in Prometheus's text format, from the driver, for the length of the run.
Each run has a registry of its own: counts start at 0 with the run (a ``resume`` is a
new run), while the best values start from the trials the study recorded before.

=========================================== ==========================================
``archtune_study_info{study}``               1, naming the study the driver runs
``archtune_trials_running``                  trials proposed and not yet ended
``archtune_trials_finished_total{state}``    trials ended in this run: ``COMPLETE``,
                                             ``PRUNED``, ``FAIL``, ``INTERRUPTED``
``archtune_best_value{objective}``           best value of each objective over the
                                             study's complete, feasible trials
``archtune_trial_duration_seconds{state}``   histogram: a trial's time on its worker
                                             (start-up + training)
``archtune_trial_queue_seconds``             histogram: proposal made to the trial
                                             starting on its worker (Ray's queue)
``archtune_controller_ask_seconds``          histogram: Ray Tune's wait for one
                                             configuration (the controller, checks,
                                             rejected proposals, earlier writes)
``archtune_storage_write_seconds{op}``       histogram: one database write by the
                                             driver (``add_metrics``, ``write_tell``...)
``archtune_trial_peak_rss_bytes{trial}``     last epoch's hardware use of each running
``archtune_trial_peak_gpu_memory_bytes``     trial (:mod:`trainers.hardware`), removed
``archtune_trial_cpu_utilization_ratio``     when the trial ends; the GPU ones only
``archtune_trial_gpu_utilization_ratio``     from trials that report them
=========================================== ==========================================

Example:
    >>> from urllib.request import urlopen
    >>> from studies.objectives import Objectives
    >>> exporter = PrometheusMonitor("127.0.0.1", 0)  # 0: any free port
    >>> exporter.run_started("demo", Objectives.parse("val_acc", "maximize"), [(0.9,)])
    >>> page = urlopen(f"http://127.0.0.1:{exporter.port}/metrics").read().decode()
    >>> 'archtune_best_value{objective="val_acc"} 0.9' in page
    True
    >>> exporter.close()
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from studies.monitor import STATES, MonitorError, RunMonitor, TrialEnd

if TYPE_CHECKING:
    from studies.objectives import Objectives

# Seconds: trials take minutes to hours; proposals and writes milliseconds to seconds.
TRIAL_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
QUEUE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
MIB = 2**20  # trainers.hardware's megabytes
# Per-epoch hardware metrics -> (gauge name, help, scale to Prometheus's base unit).
HARDWARE = {
    "peak_rss_mb": ("archtune_trial_peak_rss_bytes", "Peak RSS of the trial's last epoch", MIB),
    "peak_gpu_mem_mb": (
        "archtune_trial_peak_gpu_memory_bytes",
        "Peak GPU memory allocated in the trial's last epoch",
        MIB,
    ),
    "cpu_util": (
        "archtune_trial_cpu_utilization_ratio",
        "CPU use of the trial's process over its last epoch, per core given",
        1,
    ),
    "gpu_util": (
        "archtune_trial_gpu_utilization_ratio",
        "GPU utilisation (NVML) over the trial's last epoch",
        1,
    ),
}


def _serve(host: str, port: int, registry: Any) -> tuple[Any, Any]:
    """``prometheus_client``'s HTTP server on ``host:port``, in a daemon thread.

    Raises:
        MonitorError: when the address cannot be bound (in use, unknown, not local).
    """
    try:
        from prometheus_client import start_http_server
    except ImportError:  # pragma: no cover - a dependency of archtune
        raise MonitorError(
            "--metrics-port needs prometheus-client: pip install prometheus-client"
        ) from None
    try:
        return start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise MonitorError(
            f"Cannot serve metrics on {host}:{port} ({reason}); pick a free port with "
            "--metrics-port PORT (0 picks one)."
        ) from None


class PrometheusMonitor(RunMonitor):
    """The run's metrics in a registry of its own, served on ``host:port`` from now on.

    Args:
        host: The address to listen on (``127.0.0.1``: this machine only).
        port: The port; 0 picks a free one (:attr:`port` says which).

    Raises:
        MonitorError: when ``host:port`` cannot be bound.
    """

    def __init__(self, host: str, port: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry()
        kw: dict[str, Any] = {"registry": registry}
        self.info = Gauge("archtune_study_info", "The study this driver runs", ["study"], **kw)
        self.running = Gauge("archtune_trials_running", "Trials proposed, not yet ended", **kw)
        self.finished = Counter(
            "archtune_trials_finished", "Trials ended in this run, by state", ["state"], **kw
        )
        for state in STATES:
            self.finished.labels(state)  # every state shows, at 0, from the start
        self.best = Gauge(
            "archtune_best_value", "Best value of each objective so far", ["objective"], **kw
        )
        self.duration = Histogram(
            "archtune_trial_duration_seconds",
            "A trial's time on its worker: start-up and training",
            ["state"],
            buckets=TRIAL_BUCKETS,
            **kw,
        )
        self.queue = Histogram(
            "archtune_trial_queue_seconds",
            "From a trial's proposal to its start on a worker",
            buckets=QUEUE_BUCKETS,
            **kw,
        )
        self.ask = Histogram(
            "archtune_controller_ask_seconds",
            "Ray Tune's wait for one configuration from the controller",
            buckets=FAST_BUCKETS,
            **kw,
        )
        self.write = Histogram(
            "archtune_storage_write_seconds",
            "One database write by the driver, by operation",
            ["op"],
            buckets=FAST_BUCKETS,
            **kw,
        )
        self.hardware = {
            metric: (Gauge(name, text, ["trial"], **kw), scale)
            for metric, (name, text, scale) in HARDWARE.items()
        }
        self._objectives: tuple[tuple[str, str], ...] = ()  # (name, direction)
        self._best: dict[str, float] = {}
        self._lock = threading.Lock()
        self.host = host
        self._server, self._thread = _serve(host, port, registry)
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        """Where the metrics are served."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def run_started(
        self, study: str, objectives: Objectives, best: Sequence[Sequence[float]]
    ) -> None:
        self.info.labels(study).set(1)
        self._objectives = tuple((o.name, o.direction) for o in objectives)
        for values in best:
            self._better(values)

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        self.running.inc()

    def epoch(self, number: int, step: int, metrics: Mapping[str, Any]) -> None:
        for metric, (gauge, scale) in self.hardware.items():
            value = metrics.get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                gauge.labels(str(number)).set(float(value) * scale)

    def trial_finished(self, end: TrialEnd) -> None:
        self.running.dec()
        self.finished.labels(end.state).inc()
        for gauge, _ in self.hardware.values():
            with contextlib.suppress(KeyError):  # a trial that reported none
                gauge.remove(str(end.number))
        overhead = end.overhead
        if overhead.queue_s is not None:
            self.queue.observe(overhead.queue_s)
        if overhead.runs and end.state != "INTERRUPTED":
            on_worker = (overhead.startup_s or 0.0) + (overhead.train_s or 0.0)
            self.duration.labels(end.state).observe(on_worker)
        if end.state == "COMPLETE" and end.feasible and end.values is not None:
            self._better(end.values)

    def asked(self, seconds: float) -> None:
        self.ask.observe(seconds)

    def wrote(self, op: str, seconds: float) -> None:
        self.write.labels(op).observe(seconds)

    def where(self) -> list[str]:
        return [f"Prometheus metrics: {self.url}"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _better(self, values: Sequence[float]) -> None:
        """Keep each objective's best of what it had and ``values``."""
        with self._lock:
            for (name, direction), value in zip(self._objectives, values, strict=False):
                if not math.isfinite(value):
                    continue
                old = self._best.get(name)
                pick = max if direction == "maximize" else min
                self._best[name] = value if old is None else pick(old, value)
                self.best.labels(name).set(self._best[name])
