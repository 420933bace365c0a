"""Tests of the static HTML report (no browser, no database, no network)."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta

import pytest
from plotly.offline import get_plotlyjs

from dashboard import render_report, write_report
from dashboard import report as report_module
from studies.records import StudyRecord, TrialRecord

T0 = datetime(2025, 1, 1, 12, 0, 0)
EVIL = "</script><script>alert(1)</script>"


def timed(number: int, state: str, seconds: float | None, **kw) -> TrialRecord:
    end = None if seconds is None else T0 + timedelta(seconds=seconds)
    return TrialRecord(number=number, state=state, started=T0, completed=end, **kw)


@pytest.fixture
def record() -> StudyRecord:
    trials = [
        timed(
            0,
            "COMPLETE",
            42.0,
            params={"model/depth": 2, "train/lr": 0.003},
            value=0.81,
            intermediate={1: 0.7, 2: 0.81},
        ),
        timed(
            1,
            "COMPLETE",
            125.0,
            params={"model/depth": 4, "train/precision": EVIL},
            value=0.93,
            intermediate={1: 0.8, 2: 0.93},
        ),
        timed(2, "PRUNED", 3700.0, params={"model/depth": 8}, intermediate={1: 0.42}),
        timed(
            3,
            "FAIL",
            5.0,
            params={"model/depth": 16},
            error="CUDA <oom> & more",
            traceback="Traceback (most recent call last):\nRuntimeError: <oom>",
        ),
        timed(4, "RUNNING", None, params={"model/depth": 2}, intermediate={1: 0.5}),
        timed(5, "COMPLETE", 10.0, params={"model/depth": 2}, value=float("nan")),
    ]
    return StudyRecord("nas <img src=x onerror=alert(1)>", "maximize", "val_acc", None, trials)


def rows(page: str) -> dict[str, str]:
    """``{trial number: row html}`` of the trials table."""
    body = page.split("<h2>Trials</h2>", 1)[1]
    found = re.findall(r"<tr[^>]*><td class='num'>(\d+)</td>(.*?)</tr>", body, re.S)
    return dict(found)


def test_report_header_and_summary(record):
    page = render_report(record)
    assert "<h1>nas &lt;img src=x onerror=alert(1)&gt;</h1>" in page
    assert "<title>nas &lt;img" in page
    summary = page.split("<h2>Summary</h2>", 1)[1].split("</section>", 1)[0]
    for text in ("val_acc", "maximize", "complete 3", "pruned 1", "fail 1", "running 1"):
        assert text in summary
    assert "0.93" in summary and "#1" in summary  # NaN of trial 5 is not the best
    assert "model/depth=4" in summary


def test_report_escapes_every_user_string(record):
    page = render_report(record)
    assert "<img src=x" not in page
    assert "alert(1)</script>" not in page and "<script>alert" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "CUDA &lt;oom&gt; &amp; more" in page
    assert "RuntimeError: &lt;oom&gt;" in page


def test_report_embeds_plotlyjs_once_and_never_loads_from_network(record):
    page = render_report(record)
    assert page.count(get_plotlyjs()) == 1
    assert page.count("plotly.js v") == 1
    rest = page.replace(get_plotlyjs(), "")  # the bundle itself names a topojson URL
    assert "cdn.plot.ly" not in rest and "https://" not in rest
    assert not re.search(r"<script[^>]*\bsrc=", rest)
    first_plot = page.index("Plotly.newPlot")
    assert page.index(get_plotlyjs()) < first_plot
    assert page.count("Plotly.newPlot") == 3
    for key in ("history", "parallel", "curves"):
        assert f'id="figure-{key}"' in page


def test_report_trials_table(record):
    table = rows(render_report(record))
    assert list(table) == ["0", "1", "2", "3", "4", "5"]
    assert "42.0 s" in table["0"] and "0.81" in table["0"]
    assert "2 m 05 s" in table["1"]
    assert "1 h 01 m" in table["2"] and "0.42 @ epoch 1" in table["2"]
    assert "CUDA &lt;oom&gt;" in table["3"] and "<details>" in table["3"]
    assert "running" in table["4"] and "—" in table["4"]  # no value, no duration
    assert "nan" in table["5"]
    assert "err" not in table["0"]


def test_report_of_empty_study():
    page = render_report(StudyRecord("empty", "minimize", "val_loss", None, []))
    assert "<h1>empty</h1>" in page
    assert "No trials yet." in page
    assert "No complete trial with a finite value yet." in page
    assert page.count(get_plotlyjs()) == 1


def test_render_is_deterministic(record):
    assert render_report(record) == render_report(record)


def test_write_report(record, tmp_path):
    target = tmp_path / "reports" / "nas.html"
    out = write_report(record, str(target))
    assert out == target
    assert target.read_text(encoding="utf-8") == render_report(record)
    assert os.listdir(target.parent) == ["nas.html"]  # no temp file left
    assert target.stat().st_mode & 0o777 == 0o644


def test_write_report_replaces_atomically(record, tmp_path, monkeypatch):
    target = tmp_path / "nas.html"
    target.write_text("old report", encoding="utf-8")

    def broken_replace(src, dst):
        assert os.path.dirname(src) == str(tmp_path)  # temp file beside the target
        raise OSError("disk full")

    monkeypatch.setattr(report_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(record, target)
    assert target.read_text(encoding="utf-8") == "old report"
    assert os.listdir(tmp_path) == ["nas.html"]
