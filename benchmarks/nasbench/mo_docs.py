"""The docs section and figure of the multi-objective replay (``benchmarks/nasbench/mo.py``).

:func:`section` writes the Markdown between ``<!-- nasbench_mo:start -->`` and
``<!-- nasbench_mo:end -->`` of docs/benchmarks.md from a results file alone; the figure
is :func:`benchmarks.nasbench.figures.render_mo`.

Example:
    >>> markers()
    ('<!-- nasbench_mo:start -->', '<!-- nasbench_mo:end -->')
"""

from __future__ import annotations

import os
import statistics
from typing import Any

from benchmarks.nasbench import figures, report
from benchmarks.nasbench.docs_text import _wrap  # the single-objective section's wrapping

DESCRIPTIONS = {
    "evolution": "archtune regularized evolution (P=20, S=10; Pareto rank + crowding)",
    "rl": "archtune REINFORCE, SMS-EMOA-style reward (dominance count / HV share)",
    "tpe": "archtune TPE: Optuna TPE, multivariate, grouped, constant liar",
    "nsga2": "archtune NSGA-II: Optuna NSGAIISampler, population 20",
    "random": "Optuna RandomSampler (the random-search peer too)",
    "gp": "Optuna GPSampler, default settings (logEHVI)",
    "optuna-motpe": "Optuna TPESampler(), default settings (MOTPE; independent, not multivariate)",
    "optuna-nsga2": "Optuna NSGAIISampler(), default settings (population 50)",
}
# What was tuned, on which seeds (the reported runs use seeds 0 and up).
TUNING = (
    "Tuning: only `rl`'s multi-objective reward was chosen on this table, on seeds 1000-1039 "
    "(six rewards) and 1100-1179 (the last two), never on the reported seeds: the SMS-EMOA-"
    "style reward (minus the share of earlier trials that dominate a trial; a new front "
    "member gets its share of the hypervolume) against the plain dominance count, the "
    "non-dominated-sorting layer, Fonseca & Fleming's rank alone, a fixed bonus for front "
    "members and mixtures (see `search/rl.py`). Every other controller runs with its "
    "defaults; no option of `evolution`, `tpe` or `nsga2` was changed for several objectives."
)


def key(result: dict[str, Any]) -> str:
    """What tells the section and figure apart: ``"_mo"`` for parameters, ``"_mo_flops"``.

    Example:
        >>> key({"cost": "params"}), key({"cost": "flops"})
        ('_mo', '_mo_flops')
    """
    return "_mo" if result["cost"] == "params" else f"_mo_{result['cost']}"


def markers(cost: str = "params") -> tuple[str, str]:
    """The start and end comments of the section in docs/benchmarks.md."""
    return report.markers(key({"cost": cost}))


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def markdown_table(result: dict[str, Any], scale: str) -> str:
    """Mean and median hypervolume regret at the checkpoints, per method, in Markdown,
    with the standard error of the mean at the middle checkpoint.

    Rows are ordered by mean regret at the middle checkpoint.
    """
    per = result["summary"][scale]["methods"]
    cps = [str(c) for c in result["checkpoints"]]
    mid = cps[len(cps) // 2] if cps else ""
    head = [f"mean @{c}" for c in cps] + [f"s.e. @{mid}"] * bool(cps)
    head += [f"median @{c}" for c in cps]
    lines = [
        "| method | what | seeds | "
        + "".join(f"{h} | " for h in head)
        + f"distinct networks in {result['budget']} |",
        "|---|---|---:|" + "---:|" * (len(head) + 1),
    ]
    for m in sorted(per, key=lambda m: (per[m]["mean_regret"].get(mid, 1.0), m)):
        row = per[m]
        cells = [_num(row["mean_regret"].get(c)) for c in cps]
        cells += [_num(row.get("sem_regret", {}).get(mid))] * bool(cps)
        cells += [_num(row["median_regret"].get(c)) for c in cps]
        lines.append(
            f"| `{m}` | {DESCRIPTIONS.get(m, '')} | {row['seeds']} | "
            + "".join(f"{x} | " for x in cells)
            + f"{row['mean_unique']:.0f} |"
        )
    return "\n".join(lines)


def targets_text(result: dict[str, Any], scale: str) -> str:
    """The three targets, each marked met or missed, in Markdown."""
    t = result["summary"][scale]["targets"]
    if not t:
        return "Targets: not judged (needs an own controller, `random` and `optuna-motpe`)."
    best = f"`{t['best_own']}`"

    def mark(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    return "\n".join(
        [
            f"- Best archtune controller (own settings; lowest mean regret at 100): {best}.",
            f"- {best} at most half of random search's regret at 100: "
            f"{t['best_own_at_100']:.4f} vs 0.5 x {t['random_at_100']:.4f} = "
            f"{0.5 * t['random_at_100']:.4f} ({t['best_own_at_100'] / t['random_at_100']:.2f}"
            f"x): {mark(t['half_of_random_at_100'])}.",
            f"- {best} at most half of `optuna-motpe`'s regret at 100: "
            f"{t['best_own_at_100']:.4f} vs 0.5 x {t['motpe_at_100']:.4f} = "
            f"{0.5 * t['motpe_at_100']:.4f} ({t['best_own_at_100'] / t['motpe_at_100']:.2f}x):"
            f" {mark(t['half_of_motpe_at_100'])}.",
            f"- {best} below `optuna-motpe` at 50: {t['best_own_at_50']:.4f} vs "
            f"{t['motpe_at_50']:.4f}: {mark(t['below_motpe_at_50'])}.",
        ]
    )


def _protocol(result: dict[str, Any]) -> str:
    norm, m = result["normalisation"], result["machine"]
    lo_acc, hi_acc = norm["accuracy_range"]
    lo_c, hi_c = norm["cost_range"]
    cost = result["cost"]
    seeds = ", ".join(f"`{k}` {v}" for k, v in result["seeds"].items())
    first = min(r["seed"] for runs in result["runs"].values() for r in runs)
    return "\n".join(
        [
            f"- Table: `{result['table']['path']}`, {result['table']['rows']} networks (see "
            "the single-objective section for the space and the recipe). Objectives: maximise "
            f"the final-epoch validation accuracy, minimise {cost} ({lo_c:,.0f} to "
            f"{hi_c:,.0f}); the samplers are told the raw values, as a user's study would "
            "record them.",
            "- Study: `optuna.create_study(directions=['maximize', 'minimize'], sampler=...)`"
            ", each proposal suggested with `spaces.optuna_adapter.suggest` and looked up in "
            f"the table; full training only (no ASHA), {result['budget']} evaluations per run."
            " Every proposal counts as an evaluation, repeats included, as in the "
            "single-objective replay (a repeat adds nothing to the front).",
            "- Hypervolume regret = 1 - HV(networks found so far) / HV(the table's true front),"
            f" the true front being the {len(result['true_front']['rows'])} non-dominated "
            "networks of the whole table. HV by `moocore` (Optuna 5 has no public "
            "hypervolume function).",
            f"- Normalisation, before HV: accuracy as (best - acc) / (best - worst) with best "
            f"{100 * hi_acc:.2f}% and worst {100 * lo_acc:.2f}%; {cost} as (log10 c - log10 "
            f"{lo_c:,.0f}) / (log10 {hi_c:,.0f} - log10 {lo_c:,.0f}) (the log scale, on which "
            "the targets are judged) and, in the second table, linearly as (c - min) / (max -"
            " min). Both are losses in [0, 1]. Reference point: (1, 1) in that space, i.e. "
            f"the table's worst accuracy and its largest {cost}. On the linear scale the whole"
            " front lies in the cheapest few percent of the range, so that HV is nearly the "
            "accuracy alone.",
            f"- Seeds {first} and up: {seeds}.",
            f"- Machine: {m['cores']}-core {m['cpu_model']}; Python {m['python']}, Optuna "
            f"{m['optuna']}, moocore {m['moocore']}, numpy {m['numpy']}; archtune "
            f"`{m['archtune_commit']}`; {result['date'][:10]}.",
            f"- Command: `{result['command']}` (results per run, with hardware and versions: "
            f"`benchmarks/results/{_results_name(result)}`). `--docs-only` rewrites this "
            "section and the figure from that file.",
            f"- {TUNING}",
        ]
    )


def _results_name(result: dict[str, Any]) -> str:
    return f"nasbench{key(result)}.json"


def _ratio(per: dict[str, Any], a: str, b: str, at: str) -> str:
    if a not in per or b not in per:
        return "-"
    return f"{per[a]['mean_regret'][at] / per[b]['mean_regret'][at]:.2f}x"


def notes(result: dict[str, Any]) -> str:
    """What the numbers say beyond the targets, from the results (Markdown bullets)."""
    per = result["summary"]["log"]["methods"]
    if not {"tpe", "optuna-motpe", "random"} <= set(per) or "100" not in per["tpe"]["mean_regret"]:
        return ""

    def at(m: str, c: str) -> str:
        return "-" if m not in per else f"{per[m]['mean_regret'][c]:.4f}"

    lines = [
        "Notes (log scale unless said):\n",
        "- `tpe` against `optuna-motpe` is the multivariate, grouped TPE against Optuna's "
        "default for several objectives, which models each decision on its own "
        f"(`multivariate=None` means False there): {_ratio(per, 'tpe', 'optuna-motpe', '100')}"
        " of its regret at 100 evaluations. `optuna-motpe` proposes the fewest distinct "
        f"networks ({per['optuna-motpe']['mean_unique']:.0f} in {result['budget']}), and a "
        "repeat adds nothing to the front.",
        f"- `evolution` (Pareto rank and crowding in its tournaments): {at('evolution', '100')}"
        f" at 100 ({_ratio(per, 'evolution', 'random', '100')} of random search's) and "
        f"{at('evolution', '200')} at 200; `tpe` {at('tpe', '200')} at 200.",
        f"- `rl`: {_ratio(per, 'rl', 'random', '100')} of random search's regret at 100. One "
        "factorised policy concentrates where it is rewarded, while a front needs a spread; "
        "the hypervolume share in its reward is what keeps it spreading (see `search/rl.py`).",
        f"- `nsga2` (population 20): {_ratio(per, 'nsga2', 'random', '100')} of random "
        f"search's regret at 100, {_ratio(per, 'nsga2', 'random', '200')} at 200. With "
        "Optuna's default population of 50, `optuna-nsga2`'s first 50 proposals are random "
        "(the same as `random`'s with the same seed).",
    ]
    if "gp" in per:
        secs = [r["wall_seconds"] for r in result["runs"]["gp"]]
        tpe = statistics.mean(r["wall_seconds"] for r in result["runs"]["tpe"])
        lines.append(
            f"- `gp` (logEHVI; {per['gp']['seeds']} seeds): {at('gp', '50')} / "
            f"{at('gp', '100')} / {at('gp', '200')} at 50 / 100 / 200 evaluations; one run of "
            f"{result['budget']} asks took {min(secs):.0f} to {max(secs):.0f} s of a core "
            f"here, a `tpe` run {tpe:.1f} s on average."
        )
    return "\n".join(lines)


def section(result: dict[str, Any]) -> str:
    """The Markdown of the section (without its markers)."""
    cost = result["cost"]
    parts = [
        f"## Multi-objective NAS on the tabular benchmark: accuracy against {cost}",
        "<!-- Generated by `benchmarks/nasbench/mo.py --write-docs`; edits here are "
        "overwritten. -->",
        "Every method searches the digits ResNet table for networks that are both accurate "
        f"and small ({cost}); the score is how much of the hypervolume of the table's true "
        "Pareto front the networks found so far leave uncovered.",
        _protocol(result),
        f"### Hypervolume regret, log-scaled {cost} (lower is better)",
        markdown_table(result, "log"),
        "Targets (archtune's own controllers are `evolution`, `rl`, `tpe` and `nsga2`; "
        "`random` and `gp` are Optuna's samplers under archtune's names):",
        targets_text(result, "log"),
        f"### The same runs, linear {cost}",
        markdown_table(result, "linear"),
        targets_text(result, "linear"),
        notes(result),
        "Figure: [hypervolume regret vs evaluations, and the true front]"
        f"(figures/nasbench{key(result)}.html) (interactive Plotly; plotly.js from its CDN).",
    ]
    return "\n".join(_wrap("\n\n".join(p for p in parts if p).split("\n")))


def write_docs(result: dict[str, Any], root: str) -> None:
    """Write the figure under ``docs/figures/`` and the section of docs/benchmarks.md."""
    figdir = os.path.join(root, "docs", "figures")
    os.makedirs(figdir, exist_ok=True)
    data = figures.mo_figure_data(result)
    for stem, fig in figures.render_mo(data, f"nasbench{key(result)}").items():
        fig.write_html(os.path.join(figdir, stem + ".html"), include_plotlyjs="cdn")
    path = os.path.join(root, "docs", "benchmarks.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new = report.replace_section(text, section(result), key(result))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new)
    os.replace(tmp, path)
