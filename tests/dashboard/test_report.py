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
FIGURES = ("history", "parallel", "importance", "curves", "timeline")


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
    assert page.count("Plotly.newPlot") == len(FIGURES)
    order = [page.index(f'id="figure-{key}"') for key in FIGURES]
    assert order == sorted(order)


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


# ------------------------------------------------- importance, timeline, Pareto


def section(page: str, key: str) -> str:
    """The card of figure ``key``."""
    return page.split(f'id="figure-{key}"', 1)[1].split("</section>", 1)[0]


def test_report_importance_figure(record):
    page = render_report(record)
    card = section(page, "importance")
    assert "Parameter importance" in card and "fANOVA over 2 usable trials" in card


def test_report_importance_of_a_study_without_enough_trials():
    trials = [timed(0, "COMPLETE", 1.0, params={}, value=0.5)]
    record = StudyRecord("one", "maximize", "acc", None, trials)
    card = section(render_report(record), "importance")
    assert "Importance needs 2 or more complete, feasible trials" in card


def test_report_timeline_lanes_by_node_and_escaped():
    trials = [
        timed(0, "COMPLETE", 10.0, params={}, value=0.5, node="gpu-a (10.0.0.1)"),
        timed(1, "COMPLETE", 10.0, params={}, value=0.6, node="gpu-a (10.0.0.1)"),
        timed(2, "FAIL", 5.0, params={}, node="<b>evil</b>", error="oom"),
    ]
    card = section(render_report(StudyRecord("t", "maximize", "acc", None, trials)), "timeline")
    for lane in ("gpu-a (10.0.0.1) \\u00b7 slot 1", "gpu-a (10.0.0.1) \\u00b7 slot 2"):
        assert lane in card  # the figure's JSON writes "·" as an escape
    assert "<b>evil" not in card and "&lt;b&gt;evil" in card


def test_report_timeline_is_deterministic_with_running_trials(record):
    assert "Timeline" in section(render_report(record), "timeline")
    assert render_report(record) == render_report(record)  # running bars end at a fixed time


def multi_record() -> StudyRecord:
    def done(n: int, acc: float, params: float) -> TrialRecord:
        return timed(n, "COMPLETE", 5.0, params={"w": n}, value=acc, values=[acc, params])

    trials = [done(0, 0.9, 2e5), done(1, 0.8, 5e4), done(2, 0.7, 9e4), done(3, 0.85, 1e5)]
    return StudyRecord(
        "mo", "maximize", "acc", None, trials, ["acc", "params"], ["maximize", "minimize"]
    )


def test_report_of_several_objectives_has_pareto_importance_and_timeline():
    page = render_report(multi_record())
    keys = ("pareto", *FIGURES)
    assert page.count("Plotly.newPlot") == len(keys)
    order = [page.index(f'id="figure-{key}"') for key in keys]
    assert order == sorted(order)
    card = section(page, "importance")
    assert '"name":"acc"' in card and '"name":"params"' in card  # one bar set per objective


# ------------------------------------------------------- costs, repeats, rejections


@pytest.fixture
def costly() -> StudyRecord:
    trials = [
        timed(
            0,
            "COMPLETE",
            30.0,
            params={"w": 8},
            value=0.8,
            stats={"params": 1.2e6, "flops": 3e8},
            metrics={"latency_ms": [(2, 1.25)], "params": [(2, 9e5)]},
        ),
        timed(1, "COMPLETE", 0.0, params={"w": 8}, value=0.8, repeat_of=0),
        timed(2, "FAIL", 0.0, params={"w": 64}, error="rejected: params = 2e7 > max <b>1e6</b>"),
        timed(3, "FAIL", 4.0, params={"w": 16}, error="<script>alert(2)</script>"),
        timed(4, "PRUNED", 9.0, params={"w": 4}, intermediate={1: 0.3}, stats={"params": 5e4}),
    ]
    return StudyRecord("costs", "maximize", "val_acc", None, trials)


def test_report_cost_columns(costly):
    page = render_report(costly)
    table = page.split("<h2>Trials</h2>", 1)[1]
    head = re.findall(r"<th>(.*?)</th>", table)
    assert head == [
        "#", "State", "val_acc", "Params", "FLOPs", "Latency (ms)", "Duration", "Config", "Error"
    ]  # fmt: skip
    found = rows(page)
    assert "<td class='num'>900k</td>" in found["0"]  # reported after training wins
    assert "300M" in found["0"] and "1.25" in found["0"]
    assert 'title="computed before training">50k<' in found["4"]
    assert found["3"].count("<td class='num'><span class=\"muted\">—</span></td>") == 4  # value


def test_report_without_costs_has_no_cost_columns(record):
    head = re.findall(r"<th>(.*?)</th>", render_report(record).split("<h2>Trials</h2>", 1)[1])
    assert head == ["#", "State", "val_acc", "Duration", "Params", "Error"]


def test_report_marks_repeats_and_rejections_apart_from_failures(costly):
    page = render_report(costly)
    found = rows(page)
    assert "repeat of #0" in found["1"] and ">complete<" in found["1"]
    assert ">rejected<" in found["2"] and ">fail<" not in found["2"]
    assert 'class="err"' not in found["2"] and "constraints: params = 2e7" in found["2"]
    assert ">fail<" in found["3"] and 'class="err"' in found["3"]
    summary = page.split("<h2>Summary</h2>", 1)[1].split("</section>", 1)[0]
    for text in ("complete 1<", "repeat 1<", "fail 1<", "rejected 1<", "pruned 1<"):
        assert text in summary
    assert "Not trained: 1 trial repeated an earlier configuration" in summary
    assert "1 proposal broke the constraints" in summary


def test_report_escapes_errors_and_rejection_reasons(costly):
    page = render_report(costly)
    assert "<script>alert(2)" not in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "<b>1e6</b>" not in page and "&lt;b&gt;1e6&lt;/b&gt;" in page


def test_a_large_study_lists_its_best_trials_and_says_so() -> None:
    from dashboard.report_table import TABLE_LIMIT

    n = 2 * TABLE_LIMIT + 200  # 1,100 complete trials (the odd numbers)
    trials = [
        TrialRecord(i, "COMPLETE" if i % 2 else "FAIL", {"x": i}, i / n if i % 2 else None)
        for i in range(n)
    ]
    page = render_report(StudyRecord("big", "maximize", "acc", None, trials))
    table = page.split("<h2>Trials</h2>", 1)[1]
    rows = table.count("<tr") - 1  # the header row
    assert rows == TABLE_LIMIT
    assert f"{TABLE_LIMIT:,} of {n:,} trials: the best by acc" in table
    listed = [int(r.split("</td>")[0].split(">")[-1]) for r in table.split("<tr")[2:]]
    assert (
        listed == sorted(listed)
        and listed[-1] == n - 1
        and min(listed) == n - 1 - 2 * (TABLE_LIMIT - 1)
    )
