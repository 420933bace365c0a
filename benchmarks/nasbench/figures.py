"""The two Plotly figures of a tabular NAS benchmark replay.

Plots follow Optuna's split: :func:`figure_data` is a pure function of the results (the
series each figure shows), :func:`render` turns it into Plotly figures.

Example:
    >>> figure_stems("_e27")
    ('nasbench_e27_regret_evals', 'nasbench_e27_regret_epochs')
"""

from __future__ import annotations

from typing import Any


def figure_data(result: dict[str, Any]) -> dict[str, Any]:
    """The series of both figures: mean validation regret (pp) per method.

    ``"evals"``: against evaluations, full training. ``"epochs"``: against epochs spent,
    ASHA (solid) and full training (dashed, ``max_t`` epochs per evaluation).
    """
    s, epochs = result["summary"], result["asha"]["max_t"]
    grid = result["eval_grid"]

    def pp(curve: list[float | None]) -> list[float | None]:
        return [None if v is None else 100 * v for v in curve]

    evals = [{"name": m, "x": grid, "y": pp(r["curve"])} for m, r in sorted(s["full"].items())]
    by_epochs = []
    for m, r in sorted(s["asha"].items()):
        by_epochs.append(
            {
                "name": f"{m} + ASHA",
                "group": m,
                "dash": "solid",
                "x": result["epoch_grid"],
                "y": pp(r["curve"]),
            }
        )
        if m in s["full"]:
            by_epochs.append(
                {
                    "name": f"{m}, full training",
                    "group": m,
                    "dash": "dot",
                    "x": [epochs * g for g in grid],
                    "y": pp(s["full"][m]["curve"]),
                }
            )
    return {"evals": evals, "epochs": by_epochs}


def figure_stems(key: str) -> tuple[str, str]:
    """File stems of a table's two figures under docs/figures/."""
    return f"nasbench{key}_regret_evals", f"nasbench{key}_regret_epochs"


def render(data: dict[str, Any], key: str = "", epochs: int = 12) -> dict[str, Any]:
    """Plotly figures of :func:`figure_data`'s series, by file stem."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    colours = qualitative.Plotly + qualitative.D3
    names = sorted({s["name"] for s in data["evals"]} | {s["group"] for s in data["epochs"]})
    colour = {n: colours[i % len(colours)] for i, n in enumerate(names)}
    fig1 = go.Figure()
    for s in data["evals"]:
        fig1.add_scatter(
            x=s["x"], y=s["y"], name=s["name"], mode="lines", line={"color": colour[s["name"]]}
        )
    _layout(
        fig1,
        f"Digits ResNet table, {epochs} epochs: mean regret vs evaluations (full training; "
        "y from 0 to 1 pp, double-click to see all)",
        "evaluations",
    )
    fig2 = go.Figure()
    for s in data["epochs"]:
        fig2.add_scatter(
            x=s["x"],
            y=s["y"],
            name=s["name"],
            mode="lines",
            legendgroup=s["group"],
            line={"color": colour[s["group"]], "dash": s["dash"]},
        )
    _layout(
        fig2,
        f"Digits ResNet table, {epochs} epochs: mean regret vs epochs spent, ASHA (solid) "
        "and full training (dotted); y from 0 to 1 pp",
        "epochs spent",
    )
    evals_stem, epochs_stem = figure_stems(key)
    return {evals_stem: fig1, epochs_stem: fig2}


def _layout(fig: Any, title: str, xaxis_title: str) -> None:
    """Both figures: regret in pp from 0 to 1 against a log x axis."""
    fig.update_layout(
        title=title,
        xaxis_title=xaxis_title,
        yaxis_title="validation regret (pp)",
        xaxis_type="log",
        yaxis_range=[0, 1],
        template="plotly_white",
    )
