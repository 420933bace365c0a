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


# Multi-objective replay (benchmarks/nasbench/mo.py) -------------------------------------


def mo_figure_data(result: dict[str, Any], scale: str = "log") -> dict[str, Any]:
    """The series of the multi-objective figure: mean hypervolume regret per method
    against evaluations (``"curves"``), and the table's true front (``"front"``: accuracy
    in % and cost, sorted by cost).

    Example:
        >>> r = {"eval_grid": [1, 2], "cost": "params",
        ...      "true_front": {"points": [[0.9, 20.0], [0.5, 10.0]]},
        ...      "summary": {"log": {"methods": {"tpe": {"curve": [0.5, 0.25]}}}}}
        >>> d = mo_figure_data(r)
        >>> d["curves"][0]["y"], d["front"]["x"], d["front"]["y"]
        ([0.5, 0.25], [10.0, 20.0], [50.0, 90.0])
    """
    methods = result["summary"][scale]["methods"]
    curves = [
        {"name": m, "x": result["eval_grid"], "y": r["curve"]} for m, r in sorted(methods.items())
    ]
    front = sorted(result["true_front"]["points"], key=lambda p: p[1])
    every = result.get("points", [])
    return {
        "all": {"x": [p[1] for p in every], "y": [100 * p[0] for p in every]},
        "curves": curves,
        "cost": result["cost"],
        "scale": scale,
        "front": {"x": [p[1] for p in front], "y": [100 * p[0] for p in front]},
    }


def render_mo(data: dict[str, Any], stem: str = "nasbench_mo") -> dict[str, Any]:
    """The Plotly figure of :func:`mo_figure_data`'s series, by file stem: regret against
    evaluations (left) and the table's networks with their true front (right)."""
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    colours = qualitative.Plotly + qualitative.D3
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.62, 0.38],
        subplot_titles=(
            f"mean hypervolume regret ({data['scale']} {data['cost']})",
            f"the table's true front: accuracy vs {data['cost']}",
        ),
    )
    for i, s in enumerate(data["curves"]):
        fig.add_scatter(
            x=s["x"],
            y=s["y"],
            name=s["name"],
            mode="lines",
            line={"color": colours[i % len(colours)]},
            row=1,
            col=1,
        )
    fig.add_scatter(
        x=data["all"]["x"],
        y=data["all"]["y"],
        name="every network",
        mode="markers",
        marker={"color": "lightgrey", "size": 5},
        row=1,
        col=2,
    )
    fig.add_scatter(
        x=data["front"]["x"],
        y=data["front"]["y"],
        name="true front",
        mode="lines+markers",
        line={"shape": "hv", "color": "black"},
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="evaluations", type="log", row=1, col=1)
    fig.update_yaxes(title_text="1 - HV(found) / HV(true front)", type="log", row=1, col=1)
    fig.update_xaxes(title_text=data["cost"], type="log", row=1, col=2)
    fig.update_yaxes(title_text="final validation accuracy (%)", row=1, col=2)
    fig.update_layout(
        title="Digits ResNet table: multi-objective search (full training, mean over seeds)",
        template="plotly_white",
    )
    return {stem: fig}
