"""The live dashboard in a real browser: Debian's Chromium driven by pytest-playwright,
the app served over HTTP on 127.0.0.1, SQLite files written as archtune and Optuna write
them. A screenshot of each page goes to the test's tmp dir."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from playwright.sync_api import Page, expect

from dashboard.paths import study_path, trial_path
from tests.dashboard.conftest import single_study

pytestmark = pytest.mark.slow
XSS = "<img src=x onerror=alert(1)>"


def _watch(page: Page) -> list[str]:
    """Console errors, page errors and dialogs (an alert would be script run)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    return problems


def _drawn(page: Page, graph_id: str) -> None:
    """Wait until figure ``graph_id`` is drawn with at least one trace."""
    expect(page.locator(f"#{graph_id} .main-svg").first).to_be_attached(timeout=20_000)
    traces = page.locator(f"#{graph_id} .trace, #{graph_id} .gl-container")
    expect(traces.first).to_be_attached(timeout=20_000)


def _sort(page: Page, column: str, direction: str) -> None:
    """Sort the trials table as a click on a header does (through the grid's API: a
    header's click target moves while the grid redraws on a loaded machine)."""
    page.evaluate(
        """([column, direction]) => dash_ag_grid.getApi("trials-grid").applyColumnState(
            {state: [{colId: column, sort: direction}], defaultState: {sort: null}})""",
        [column, direction],
    )


def _open(page: Page, url: str, shot: Path) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_timeout(2000)  # never "network idle": an open page polls
    page.screenshot(path=str(shot), full_page=True)


def test_each_page_draws_its_figures_without_console_errors(
    page: Page, serve: Any, sqlite_url: str, tmp_path: Path
) -> None:
    problems = _watch(page)
    base = serve(sqlite_url)
    page.goto(base + "/")
    expect(page.locator("#home-grid")).to_contain_text("single")
    expect(page.locator("#home-grid")).to_contain_text("val_acc ↑, latency_ms ↓")
    _open(page, base + "/", tmp_path / "studies.png")

    page.goto(base + study_path("single"))
    for graph in ("fig-history", "fig-importance", "fig-curves", "fig-parallel", "fig-timeline"):
        _drawn(page, graph)
    expect(page.locator("#study-head")).to_contain_text("best val_acc")
    expect(page.locator("details.card")).to_contain_text("No archtune run recorded")
    _open(page, base + study_path("single"), tmp_path / "study.png")

    page.goto(base + study_path("multi"))
    _drawn(page, "fig-pareto")
    _open(page, base + study_path("multi"), tmp_path / "study-multi.png")

    page.goto(base + trial_path("single", 5))
    _drawn(page, "trial-metrics")
    expect(page.locator("#trial-body")).to_contain_text("RuntimeError: out of memory")
    expect(page.locator("#trial-body")).to_contain_text("host-1 (10.0.0.1, node 00000001)")
    _open(page, base + trial_path("single", 5), tmp_path / "trial.png")
    assert problems == []
    assert all((tmp_path / f).stat().st_size > 10_000 for f in ("study.png", "trial.png"))


def test_a_trial_added_while_the_page_is_open_appears_without_a_reload(
    page: Page, serve: Any, sqlite_url: str
) -> None:
    problems = _watch(page)
    base = serve(sqlite_url)
    page.goto(base + study_path("single"))
    _drawn(page, "fig-history")
    expect(page.locator("#study-head .stat").first).to_have_text("trials12")
    page.evaluate("window.__same_page = true")  # gone if the page reloads

    study = optuna.load_study(study_name="single", storage=sqlite_url)
    trial = study.ask({"model/depth": optuna.distributions.IntDistribution(1, 4)})
    study.tell(trial, 0.999)

    expect(page.locator("#study-head .stat").first).to_have_text("trials13", timeout=15_000)
    expect(page.locator("#study-head")).to_contain_text("0.999")
    grid = page.locator("#trials-grid")
    _sort(page, "v0", "desc")  # val_acc, largest first: sorted in SQL
    first = grid.locator(".ag-center-cols-container .ag-row[row-index='0']")
    expect(first).to_contain_text("0.999", timeout=15_000)
    assert page.evaluate("window.__same_page === true")
    assert problems == []


def test_the_table_sorts_and_filters_in_sql_and_a_row_opens_its_trial(
    page: Page, serve: Any, sqlite_url: str
) -> None:
    base = serve(sqlite_url)
    page.goto(base + study_path("single"))
    grid = page.locator("#trials-grid")
    rows = grid.locator(".ag-pinned-left-cols-container .ag-row")
    expect(rows.first).to_contain_text("0", timeout=15_000)
    _sort(page, "number", "desc")
    expect(grid.locator(".ag-pinned-left-cols-container .ag-row[row-index='0']")).to_have_text(
        "11", timeout=15_000
    )
    page.evaluate(
        """dash_ag_grid.getApi("trials-grid").setFilterModel(
            {state: {filterType: "text", type: "contains", filter: "fail"}})"""
    )
    states = grid.locator(".ag-center-cols-container [col-id='state']")
    expect(states).to_have_count(1, timeout=15_000)
    expect(states.first).to_have_text("FAIL")
    grid.scroll_into_view_if_needed()  # as a user does: AG Grid reveals rows in view
    grid.locator(".ag-pinned-left-cols-container [col-id='number']").first.click()
    expect(page).to_have_url(base + trial_path("single", 5), timeout=15_000)
    expect(page.locator("#trial-body")).to_contain_text("out of memory")


def test_clicking_a_pareto_point_opens_its_trial(page: Page, serve: Any, sqlite_url: str) -> None:
    base = serve(sqlite_url)
    page.goto(base + study_path("multi"))
    _drawn(page, "fig-pareto")
    point = page.locator("#fig-pareto .scatterlayer .trace .points path").first
    point.click(force=True)
    at_trial = re.compile(re.escape(f"{base}{study_path('multi')}/trial/") + r"\d+$")
    expect(page).to_have_url(at_trial, timeout=15_000)
    number = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#trial-body")).to_contain_text(f"Trial {number}")


def test_user_strings_are_shown_as_text_and_never_run(
    page: Page, serve: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'xss.db'}"
    study = single_study(url, name=XSS, n=6)
    bad = study.ask({"x": optuna.distributions.CategoricalDistribution([XSS])})
    bad.set_user_attr("note", XSS)
    study.tell(bad, state=optuna.trial.TrialState.FAIL)
    problems = _watch(page)
    base = serve(url)
    page.goto(base + "/")
    expect(page.locator("#home-grid")).to_contain_text(XSS)
    assert page.locator("img[src=x]").count() == 0
    page.goto(base + study_path(XSS))
    _drawn(page, "fig-history")
    expect(page.locator("h1.study-name")).to_have_text(XSS)
    grid = page.locator("#trials-grid")
    expect(grid.locator(".ag-center-cols-container .ag-row").first).to_be_attached(timeout=15_000)
    page.evaluate(  # the grid draws the columns in view: bring the parameter's
        """() => { const api = dash_ag_grid.getApi("trials-grid");
            const x = api.getColumns().find(c => c.getColDef().headerName === "x");
            api.ensureColumnVisible(x.getColId()); }"""
    )
    expect(grid.locator(".ag-header-cell", has_text="x")).to_have_count(1)
    expect(grid.locator(".ag-center-cols-container")).to_contain_text(XSS, timeout=15_000)
    page.locator("#fig-history .scatterlayer .trace .points path").first.hover(force=True)
    page.wait_for_timeout(500)  # the hover label, with the trial's params, is drawn
    assert page.locator("img[src=x]").count() == 0
    page.goto(base + trial_path(XSS, 6))
    expect(page.locator("#trial-body")).to_contain_text(XSS)
    assert page.locator("img[src=x]").count() == 0
    assert problems == [], problems
    page.goto(base + "/study/" + "%3Cscript%3Ealert(2)%3C%2Fscript%3E")
    expect(page.locator("body")).to_contain_text("No study named '<script>alert(2)</script>'")
    assert page.locator("script:text('alert(2)')").count() == 0
    assert [p for p in problems if "404" not in p] == [], problems  # the page's own status


def test_an_unknown_study_or_trial_is_a_404_page_listing_what_exists(
    page: Page, serve: Any, sqlite_url: str
) -> None:
    base = serve(sqlite_url)
    response = page.goto(base + study_path("nope"))
    assert response is not None and response.status == 404
    expect(page.locator("body")).to_contain_text("No study named 'nope'")
    page.locator("a", has_text="multi").click()
    _drawn(page, "fig-pareto")
    response = page.goto(base + trial_path("single", 99))
    assert response is not None and response.status == 404
    expect(page.locator("body")).to_contain_text("has no trial")
    # Within the app (no page load), the same page comes from the router.
    page.goto(base + "/")
    page.evaluate(f"window.history.pushState({{}}, '', '{trial_path('multi', 42)}')")
    page.evaluate("window.dispatchEvent(new PopStateEvent('popstate'))")
    expect(page.locator(".notfound")).to_contain_text("trials are numbered 0 to 9")


def test_a_large_study_paints_its_history_first_and_the_rest_after(
    page: Page, serve: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard import page_study

    monkeypatch.setattr(page_study, "SMALL", 4)  # "single" has 12 trials: large here
    problems = _watch(page)
    base = serve(sqlite_url)
    page.goto(base + study_path("single"))
    _drawn(page, "fig-history")
    for graph in ("fig-importance", "fig-curves", "fig-parallel", "fig-timeline"):
        _drawn(page, graph)
        expect(page.locator(f"#{graph}")).not_to_contain_text("Reading 12 trials")
    expect(page.locator("#fig-parallel")).to_contain_text("train/lr")
    assert problems == []


def _page_renders(page: Page) -> list[bool]:
    """For each answer of the routing callback: whether it carried a page."""
    found: list[bool] = []

    def answered(response: Any) -> None:
        request = response.request
        if "_dash-update-component" in response.url and "page.children" in (
            request.post_data or ""
        ):
            found.append('"page"' in response.text())

    page.on("response", answered)
    return found


def test_a_page_load_gets_its_page_with_the_layout_not_from_a_callback(
    page: Page, serve: Any, sqlite_url: str
) -> None:
    base = serve(sqlite_url)
    renders = _page_renders(page)
    page.goto(base + study_path("single"))
    _drawn(page, "fig-history")
    expect(page.locator("#study-head")).to_contain_text("best val_acc")
    page.wait_for_timeout(1000)  # the routing callback's first call has answered
    assert renders and not any(renders)  # it answered, with no page: the layout had it
    drawn_by_layout = len(renders)
    page.locator("a.brand").click()  # a link within the app: now the router draws
    expect(page.locator("#home-grid")).to_contain_text("multi")
    page.wait_for_timeout(500)  # (its answer's event has been handled)
    assert True in renders[drawn_by_layout:]


def test_without_a_referer_the_router_draws_the_page(
    page: Page, serve: Any, sqlite_url: str
) -> None:
    base = serve(sqlite_url)
    renders = _page_renders(page)

    def no_referer(route: Any) -> None:  # the page asks its browser to send none
        html = route.fetch().text()
        policy = '<meta name="referrer" content="no-referrer">'
        route.fulfill(body=html.replace("<head>", "<head>" + policy, 1), content_type="text/html")

    page.route(base + study_path("single"), no_referer)
    page.goto(base + study_path("single"))
    _drawn(page, "fig-history")
    expect(page.locator("#study-head")).to_contain_text("best val_acc")
    assert renders[:1] == [True]


def test_clicking_a_history_point_opens_its_trial(page: Page, serve: Any, sqlite_url: str) -> None:
    base = serve(sqlite_url)
    page.goto(base + study_path("single"))
    _drawn(page, "fig-history")
    page.locator("#fig-history .scatterlayer .trace .points path").first.click(force=True)
    at_trial = re.compile(re.escape(f"{base}{study_path('single')}/trial/") + r"\d+$")
    expect(page).to_have_url(at_trial, timeout=15_000)
    number = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#trial-body")).to_contain_text(f"Trial {number}")
