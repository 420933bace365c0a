"""The driver's Prometheus metrics, scraped over HTTP, by hand and during a real run."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest

from spaces import Float, SearchSpace
from studies import Study
from studies.cli import main
from studies.monitor import MonitorError, TrialEnd
from studies.monitor_prometheus import MIB, PrometheusMonitor
from studies.objectives import Objectives
from studies.overhead import Overhead
from studies.records import ATTR_OVERHEAD
from tests.studies.toy import ToyTrainer, one_trial_study_file
from trainers import TrialSession


def _scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a metrics page: ``(name, labels) -> value``."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(page: Mapping[tuple[str, frozenset], float], name: str, **labels: str) -> float | None:
    return page.get((name, frozenset(labels.items())))


def test_every_metric_follows_the_trials_it_is_told_of() -> None:
    exporter = PrometheusMonitor("127.0.0.1", 0)
    try:
        objectives = Objectives.parse(["acc", "params"], ["maximize", "minimize"])
        exporter.run_started("two goals", objectives, [(0.5, 900.0), (0.25, 100.0)])
        for n in range(4):
            exporter.trial_started(n, {"x": n})
        exporter.epoch(3, 1, {"epoch": 1, "peak_rss_mb": 2.0, "cpu_util": 0.5, "gpu_util": 0.25})
        exporter.epoch(1, 1, {"epoch": 1, "peak_rss_mb": 3.0})
        work = Overhead(propose_s=0.1, queue_s=0.5, startup_s=1.0, train_s=4.0, runs=1, epochs=2)
        exporter.trial_finished(TrialEnd(0, "COMPLETE", (0.75, 300.0), overhead=work))
        exporter.trial_finished(TrialEnd(1, "COMPLETE", (0.9, 50.0), feasible=False))
        exporter.trial_finished(TrialEnd(2, "FAIL", overhead=Overhead(queue_s=2.0, runs=1)))
        exporter.asked(0.002)
        exporter.wrote("add_metrics", 0.001)
        page = _scrape(exporter.url)
    finally:
        exporter.close()
    assert _get(page, "archtune_study_info", study="two goals") == 1
    assert _get(page, "archtune_trials_running") == 1
    assert _get(page, "archtune_trials_finished_total", state="COMPLETE") == 2
    assert _get(page, "archtune_trials_finished_total", state="FAIL") == 1
    assert _get(page, "archtune_trials_finished_total", state="INTERRUPTED") == 0
    # The earlier front's best and trial 0's; trial 1 broke the constraints.
    assert _get(page, "archtune_best_value", objective="acc") == 0.75
    assert _get(page, "archtune_best_value", objective="params") == 100.0
    duration = "archtune_trial_duration_seconds"
    assert _get(page, f"{duration}_sum", state="COMPLETE") == 5.0
    assert _get(page, f"{duration}_count", state="FAIL") == 1
    assert _get(page, "archtune_trial_queue_seconds_count") == 2
    assert _get(page, "archtune_trial_queue_seconds_sum") == 2.5
    assert _get(page, "archtune_controller_ask_seconds_count") == 1
    assert _get(page, "archtune_storage_write_seconds_count", op="add_metrics") == 1
    # The hardware of running trials only: trial 1's went with it.
    assert _get(page, "archtune_trial_peak_rss_bytes", trial="3") == 2 * MIB
    assert _get(page, "archtune_trial_cpu_utilization_ratio", trial="3") == 0.5
    assert _get(page, "archtune_trial_gpu_utilization_ratio", trial="3") == 0.25
    assert _get(page, "archtune_trial_peak_rss_bytes", trial="1") is None
    with pytest.raises(OSError):  # closed: the port is free again
        _scrape(exporter.url)


def _busy_port() -> socket.socket:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    return busy


def test_a_port_in_use_is_one_clear_error() -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        with pytest.raises(MonitorError, match=f"Cannot serve metrics on 127.0.0.1:{port}"):
            PrometheusMonitor("127.0.0.1", port)


def test_run_with_a_port_in_use_is_one_line_before_anything_is_written(
    tmp_path: Path, capsys
) -> None:
    study_file, db = one_trial_study_file(tmp_path, "scraped")
    with _busy_port() as busy:
        port = str(busy.getsockname()[1])
        assert main(["run", str(study_file), "--metrics-port", port]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert f"Cannot serve metrics on 127.0.0.1:{port}" in err and "--metrics-port" in err
    assert not db.exists() or optuna.get_all_study_names(f"sqlite:///{db}") == []


HELD_X = 0.5  # the trial that waits at its second epoch while the hold file exists


class HoldingTrainer(ToyTrainer):
    """ToyTrainer that reports hardware figures (``100 + x`` MiB, ``x`` of the CPU); the
    trial with ``x == HELD_X`` waits at its second epoch while ``hold`` exists (a minute
    at most), so a test can scrape the driver in the middle of a run."""

    name = "test_monitor_holding"

    def __init__(self, hold: str) -> None:
        super().__init__(epochs=2, seconds=0.0)
        self.hold = hold

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        x = float(config["x"])
        metrics: dict[str, float] = {}
        for epoch in (1, 2):
            deadline = time.monotonic() + 60
            while epoch == 2 and x == HELD_X and os.path.exists(self.hold):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            metrics = {"epoch": epoch, "score": x, "peak_rss_mb": 100 + x, "cpu_util": x}
            session.report(metrics)
        return metrics

    def spec(self) -> dict[str, Any]:
        return {"hold": self.hold}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape_while_held(url: str, hold: Path, pages: list) -> None:
    """Scrape until two trials ended and the held one reported its first epoch; keep
    that page, then let the held trial go on (also on failure)."""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                page = _scrape(url)
            except OSError:  # not serving yet
                time.sleep(0.1)
                continue
            # Two trials told (their tell's write timed: after every hook of it) and the
            # held one's first epoch recorded.
            told = _get(page, "archtune_storage_write_seconds_count", op="write_tell")
            if told == 2 and _get(page, "archtune_trial_peak_rss_bytes", trial="2"):
                pages.append(page)
                return
            time.sleep(0.1)
    finally:
        hold.unlink()


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_scraped_during_a_real_run_the_values_are_the_studys(db_url: str, tmp_path: Path) -> None:
    study = Study.create("scraped", SearchSpace({"x": Float(0.0, 1.0)}), "score", storage=db_url)
    for x in (0.25, 0.75, HELD_X):
        study.optuna.enqueue_trial({"x": x})
    hold = tmp_path / "hold"
    hold.touch()
    port = _free_port()
    pages: list = []
    scraper = threading.Thread(
        target=_scrape_while_held, args=(f"http://127.0.0.1:{port}/metrics", hold, pages)
    )
    scraper.start()
    try:
        study.run(
            HoldingTrainer(str(hold)),
            controller="random",
            num_trials=3,
            max_concurrent=1,
            run_dir=str(tmp_path / "runs"),
            metrics_port=port,
            progress=False,
        )
    finally:
        scraper.join()
    assert pages, "the scraper never saw two trials done and the third running"
    page = pages[0]
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    before = trials[:2]  # the trials that had ended when the page was scraped
    assert _get(page, "archtune_study_info", study="scraped") == 1
    assert _get(page, "archtune_trials_running") == 1
    assert _get(page, "archtune_trials_finished_total", state="FAIL") == 0
    assert _get(page, "archtune_best_value", objective="score") == max(t.value for t in before)
    assert study.best_trial.value == 0.75, "the held trial did not beat it"
    overheads = [Overhead.from_json(t.user_attrs[ATTR_OVERHEAD]) for t in before]
    queue = sum(o.queue_s for o in overheads)
    assert _get(page, "archtune_trial_queue_seconds_count") == 2
    assert _get(page, "archtune_trial_queue_seconds_sum") == pytest.approx(queue, abs=1e-9)
    on_worker = sum(o.startup_s + o.train_s for o in overheads)
    duration = "archtune_trial_duration_seconds"
    assert _get(page, f"{duration}_count", state="COMPLETE") == 2
    assert _get(page, f"{duration}_sum", state="COMPLETE") == pytest.approx(on_worker, abs=1e-9)
    assert _get(page, "archtune_controller_ask_seconds_count") == 3, "one ask per trial"
    assert _get(page, "archtune_storage_write_seconds_count", op="add_metrics") >= 4
    assert _get(page, "archtune_trials_finished_total", state="COMPLETE") == 2
    assert _get(page, "archtune_trial_peak_rss_bytes", trial="2") == (100 + HELD_X) * MIB
    assert _get(page, "archtune_trial_cpu_utilization_ratio", trial="2") == HELD_X
    assert _get(page, "archtune_trial_peak_rss_bytes", trial="0") is None, "ended: removed"
    with pytest.raises(OSError):  # the run is over: so is the endpoint
        _scrape(f"http://127.0.0.1:{port}/metrics")
