"""TensorBoard runs of a study's trials, read back with TensorBoard's own reader and server."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest

from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies import Study, load_study_record, open_storage
from studies.cli import main
from studies.monitor import MonitorError, TrialEnd
from studies.monitor_tensorboard import TensorBoardMonitor, check_logdir
from studies.names import file_slug
from studies.objectives import Objectives
from tests.studies.toy import FlakyClassifier, one_trial_study_file


def _read(run: Path) -> Any:
    """TensorBoard's accumulator over every event file of one run (a trial)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def _scalars(acc: Any, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def _session(acc: Any) -> tuple[dict[str, Any], str | None]:
    """The HParams session of a run: its hyperparameters, and its end status (None while
    it has no end)."""
    from tensorboard.plugins.hparams import api_pb2, metadata

    content = acc.PluginTagToContent("hparams")
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    if metadata.SESSION_END_INFO_TAG not in content:
        return hparams, None
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    return hparams, api_pb2.Status.Name(end.status)


def _write_two_runs(logdir: Path) -> Path:
    """Trials written as a run would: 0 complete, 1 failed, 2 interrupted then finished by
    a second run (a new monitor, as after a resume)."""
    objectives = Objectives.parse("val_acc", "maximize")
    board = TensorBoardMonitor(str(logdir))
    board.run_started("digits study", objectives, [])
    board.trial_started(0, {"model/depth": 2, "train/precision": "bf16", "train/aug": True})
    for step, acc in ((1, 0.5), (2, 0.75)):
        board.epoch(0, step, {"epoch": step, "val_acc": acc, "peak_rss_mb": 300.0, "note": "x"})
    board.trial_finished(TrialEnd(0, "COMPLETE", (0.75,)))
    board.trial_started(1, {"model/depth": 1, "train/precision": "fp32", "train/aug": None})
    board.epoch(1, 1, {"epoch": 1, "val_acc": 0.125})
    board.trial_finished(TrialEnd(1, "FAIL"))
    board.trial_started(2, {"model/depth": 3, "train/precision": "fp32", "train/aug": False})
    board.epoch(2, 1, {"epoch": 1, "val_acc": 0.25})
    board.trial_finished(TrialEnd(2, "INTERRUPTED"))
    board.close()
    again = TensorBoardMonitor(str(logdir))
    again.run_started("digits study", objectives, [(0.75,)])
    again.trial_started(2, {"model/depth": 3, "train/precision": "fp32", "train/aug": False})
    again.epoch(2, 2, {"epoch": 2, "val_acc": 0.5})
    again.trial_finished(TrialEnd(2, "PRUNED", (0.5,)))
    again.close()
    return logdir / file_slug("digits study")


def test_each_trial_is_a_run_with_its_scalars_and_hparams_session(tmp_path: Path) -> None:
    study_dir = _write_two_runs(tmp_path / "tb")
    assert sorted(os.listdir(study_dir)) == ["trial-00000", "trial-00001", "trial-00002"]
    done = _read(study_dir / "trial-00000")
    assert _scalars(done, "val_acc") == {1: 0.5, 2: 0.75}
    assert _scalars(done, "peak_rss_mb") == {1: 300.0, 2: 300.0}
    assert "epoch" not in done.Tags()["scalars"] and "note" not in done.Tags()["scalars"]
    assert _scalars(done, "objective/val_acc") == {2: 0.75}, "the final value, at its last epoch"
    assert _session(done) == (
        {"model/depth": 2.0, "train/precision": "bf16", "train/aug": True},
        "STATUS_SUCCESS",
    )
    failed = _read(study_dir / "trial-00001")
    assert _scalars(failed, "val_acc") == {1: 0.125}
    assert "objective/val_acc" not in failed.Tags()["scalars"]
    assert _session(failed) == (
        {"model/depth": 1.0, "train/precision": "fp32", "train/aug": "None"},
        "STATUS_FAILURE",
    )
    resumed = study_dir / "trial-00002"
    assert len(os.listdir(resumed)) == 2, "one event file per run of the trial"
    went_on = _read(resumed)
    assert _scalars(went_on, "val_acc") == {1: 0.25, 2: 0.5}
    assert _session(went_on)[1] == "STATUS_SUCCESS", "no end while it was interrupted"


def test_tensorboard_itself_compares_the_trials(tmp_path: Path) -> None:
    from tensorboard import program

    _write_two_runs(tmp_path / "tb")
    board = program.TensorBoard()
    flags = ["--logdir", str(tmp_path / "tb"), "--port", "0", "--host", "127.0.0.1"]
    board.configure(argv=[None, *flags, "--load_fast", "false"])
    url = board.launch()
    try:
        experiment = _post(url, "experiment", {"experimentName": ""}, want="hparamInfos")
        groups = _post(
            url,
            "session_groups",
            {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE"]}
            | {"colParams": [], "startIndex": 0, "sliceSize": 100},
            want="sessionGroups",
        )
    finally:
        server = getattr(board, "_server", None)  # TensorBoard has no public stop
        if server is not None:
            server.shutdown()
    names = {h["name"] for h in experiment["hparamInfos"]}
    assert names == {"model/depth", "train/precision", "train/aug"}
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"objective/val_acc", "val_acc", "peak_rss_mb"} <= metrics
    sessions = [g["sessions"][0] for g in groups["sessionGroups"]]
    status = {s["name"].rsplit("/", 1)[1]: s["status"] for s in sessions}
    assert status == {
        "trial-00000": "STATUS_SUCCESS",
        "trial-00001": "STATUS_FAILURE",
        "trial-00002": "STATUS_SUCCESS",
    }


def _post(url: str, what: str, body: dict[str, Any], want: str) -> dict[str, Any]:
    """A request to TensorBoard's HParams plugin, again until it has loaded the runs."""
    request = urllib.request.Request(
        f"{url}data/plugin/hparams/{what}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        if answer.get(want) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_a_directory_that_cannot_take_files_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    for path in (blocker, blocker / "tb"):
        with pytest.raises(MonitorError, match=r"is not writable \(.+\); give --tensorboard"):
            check_logdir(str(path))
    assert check_logdir(str(tmp_path / "new" / "tb")) == str(tmp_path / "new" / "tb")


def test_a_write_that_fails_is_logged_once_and_the_run_goes_on(tmp_path: Path, caplog) -> None:
    board = TensorBoardMonitor(str(tmp_path / "tb"))
    board.run_started("blocked", Objectives.parse("val_acc", "maximize"), [])
    (tmp_path / "tb" / file_slug("blocked")).write_text("a file where the runs would go")
    for number in range(3):
        board.trial_started(number, {"x": 1})  # returns at once: written on its thread
        board.epoch(number, 1, {"epoch": 1, "val_acc": 0.5})
    board.flush()
    board.close()
    failures = [r for r in caplog.records if "writing TensorBoard files failed" in r.message]
    assert len(failures) == 1


def test_run_with_an_unwritable_directory_is_one_line_before_anything_is_written(
    tmp_path: Path, capsys
) -> None:
    study_file, db = one_trial_study_file(tmp_path, "watched")
    blocker = tmp_path / "board"
    blocker.write_text("a file, not a directory")
    assert main(["run", str(study_file), "--tensorboard", str(blocker / "tb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("archtune: error: The TensorBoard directory") and "not writable" in err
    assert not db.exists() or optuna.get_all_study_names(f"sqlite:///{db}") == []


def _digits_space() -> SearchSpace:
    return SearchSpace(
        {
            "model": ResNetSpace(stages=1, depth=Int(1, 2), width=Categorical([8, 16])),
            "train": TrainingSpace(lr=Float(1e-3, 1e-2, log=True)),
        }
    )


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_real_run_writes_every_trials_metrics_and_hparams(db_url: str, tmp_path: Path) -> None:
    study = Study.create("boarded", _digits_space(), objective="val_acc", storage=db_url)
    for width in (16, 8):  # width 8 raises after its first epoch (FlakyClassifier)
        study.optuna.enqueue_trial({"model/depth": 1, "model/width": width, "train/lr": 0.005})
    study.run(
        FlakyClassifier(dataset="digits", epochs=2),
        controller="random",
        num_trials=2,
        run_dir=str(tmp_path / "runs"),
        tensorboard=str(tmp_path / "tb"),
        progress=False,
    )
    record = load_study_record(open_storage(db_url), "boarded")
    done, failed = record.trials
    assert (done.state, failed.state) == ("COMPLETE", "FAIL")
    # The hardware use of each epoch is stored with the other metrics.
    for name in ("peak_rss_mb", "cpu_util"):
        assert [s for s, _ in done.metrics[name]] == [1, 2], name
        assert all(v > 0 for _, v in done.metrics[name]), name
    study_dir = tmp_path / "tb" / file_slug("boarded")
    board = _read(study_dir / "trial-00000")
    for name, points in done.metrics.items():
        if name != "epoch":
            assert _scalars(board, name) == pytest.approx(dict(points), rel=1e-6), name
    assert _scalars(board, "objective/val_acc") == pytest.approx({2: done.value})
    hparams, status = _session(board)
    assert hparams == pytest.approx(done.params) and status == "STATUS_SUCCESS"
    board = _read(study_dir / "trial-00001")
    assert _scalars(board, "val_acc") == pytest.approx({1: 0.1})
    assert _session(board) == (pytest.approx(failed.params), "STATUS_FAILURE")
