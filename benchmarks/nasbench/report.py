"""Summaries, tables and the docs section of the tabular NAS benchmark replay.

The figures are in :mod:`benchmarks.nasbench.figures`.

Example:
    >>> median_censored([3, None, 5], budget=10)
    5.0
    >>> median_censored([None, None, 5], budget=10) is None
    True
"""

from __future__ import annotations

import math
import os
import re
import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.nasbench import figures

START, END = "<!-- nasbench:start -->", "<!-- nasbench:end -->"  # the main table's section
# Controllers that are the peer itself under another name (no archtune-specific settings).
SAME_AS_PEER = {
    "random": "Optuna RandomSampler",
    "gp": "Optuna GPSampler, default settings",
    "nni-tpe": "NNI 3 TPE tuner via archtune's adapter",
    "nni-evolution": "NNI 3 evolution tuner via archtune's adapter",
}
PEERS = ("random", "gp", "nni-tpe", "nni-evolution", "optuna-tpe", "optuna-cmaes")
DESCRIPTIONS = {
    "tpe": "archtune TPE: Optuna TPE, multivariate, grouped",
    "evolution": "archtune regularized evolution (P=20, S=10)",
    "rl": "archtune REINFORCE policy gradient",
    "nsga2": "Optuna NSGA-II (P=20) on one objective",
    "optuna-tpe": "Optuna TPESampler, default settings (Optuna 5: multivariate)",
    "optuna-cmaes": "Optuna CmaEsSampler on choice indices",
    "evolution+use_pruned": "`evolution` with use_pruned=True (stopped trials can be parents)",
    "evolution@grace3": "`evolution`, ASHA grace period 3 epochs",
    "random@grace3": "`random`, ASHA grace period 3 epochs",
    "tpe@grace3": "`tpe`, ASHA grace period 3 epochs",
    "evolution@grace4": "`evolution`, ASHA grace period 4 epochs",
    "random@grace4": "`random`, ASHA grace period 4 epochs",
    "tpe@grace4": "`tpe`, ASHA grace period 4 epochs",
    "evolution+resume": "`evolution`, stopped networks proposed again go on from their checkpoint",
    "evolution+resume@grace3": "`evolution+resume`, ASHA grace period 3 epochs",
    "random+resume@grace3": "`random+resume`, ASHA grace period 3 epochs",
    **SAME_AS_PEER,
}
ASHA_SHARES = (1 / 8, 1 / 4, 1 / 2, 1)  # of full training's epochs, for the ASHA table


def median_censored(values: Sequence[int | None], budget: int) -> float | None:
    """Median of evaluations-to-target where None means "not within ``budget``".

    A run that never reached the target counts as later than every run that did;
    the median is None when it falls on such a run.
    """
    keyed = sorted(math.inf if v is None else v for v in values)
    if not keyed:
        return None
    med = statistics.median(keyed)
    return None if math.isinf(med) or med > budget else float(med)


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.mean(vals) if vals and len(vals) == len(xs) else None


def _mean_curve(runs: list[dict[str, Any]], key: str) -> list[float | None]:
    if not runs:
        return []
    return [_mean([r[key][i] for r in runs]) for i in range(len(runs[0][key]))]


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Per setting and method: medians to the top set, mean regrets, mean curves."""
    budget, grid, egrid = result["budget"], result["eval_grid"], result["epoch_grid"]
    full_epochs = budget * result["asha"]["max_t"]
    out: dict[str, Any] = {"full": {}, "asha": {}}
    for method, runs in result["runs"]["full"].items():
        curve = _mean_curve(runs, "val_regret")
        at = {str(c): curve[grid.index(c)] for c in result["checkpoints"] if c in grid}
        test = {k: _mean([r["test_regret"][k] for r in runs]) for k in runs[0]["test_regret"]}
        out["full"][method] = {
            "seeds": len(runs),
            "median_evals_to_top": median_censored([r["evals_to_top"] for r in runs], budget),
            "reached_top": sum(r["evals_to_top"] is not None for r in runs),
            # Runs recorded before trainings were counted have no such key.
            "trainings_known": all("trainings_to_top" in r for r in runs),
            "median_trainings_to_top": median_censored(
                [r.get("trainings_to_top") for r in runs], budget
            ),
            "median_hours_to_top": _hours([r["seconds_to_top"] for r in runs], budget),
            "mean_val_regret": at,
            "mean_test_regret_final": test.get(str(budget)),
            "mean_test_regret": test,
            "mean_unique": statistics.mean(r["unique"] for r in runs) if runs else None,
            "curve": curve,
        }
    shares = asha_columns(result)
    for method, runs in result["runs"]["asha"].items():
        curve = _mean_curve(runs, "val_regret")
        # A variant ("evolution+use_pruned", "tpe@grace3") is matched against its base's
        # full training.
        full = out["full"].get(base_method(method), {}).get("curve") or [None]
        target = full[-1]
        pairs = zip(egrid, curve, strict=True)
        match = next((e for e, v in pairs if None not in (v, target) and v <= target), None)
        out["asha"][method] = {
            "seeds": len(runs),
            "mean_trials": statistics.mean(r["trials"] for r in runs),
            # Runs recorded before repeats were answered from the record have no such key.
            "mean_repeats": _mean([r.get("repeats") for r in runs]),
            "mean_resumed": _mean([r.get("resumed") for r in runs]),
            "mean_completed": statistics.mean(r["completed"] for r in runs),
            "mean_val_regret": {str(e): curve[egrid.index(e)] for e in shares},
            "full_regret_target": target,
            "epochs_to_match": match,
            "fraction_of_full": None if match is None else match / full_epochs,
            "curve": curve,
        }
    table = result.get("table") or {}
    out["targets"] = targets(out, table.get("top_rows"), table.get("rows"))
    return out


def asha_columns(result: dict[str, Any]) -> list[int]:
    """The epoch budgets the ASHA table shows: :data:`ASHA_SHARES` of full training's
    epochs that lie on the results' epoch grid."""
    full_epochs = result["budget"] * result["asha"]["max_t"]
    egrid = set(result["epoch_grid"])
    return [e for e in (round(full_epochs * f) for f in ASHA_SHARES) if e in egrid]


def base_method(method: str) -> str:
    """The method a variant varies: ``"evolution+use_pruned@grace3"`` -> ``"evolution"``.

    Example:
        >>> base_method("tpe@grace3"), base_method("evolution")
        ('tpe', 'evolution')
    """
    return method.split("+")[0].split("@")[0]


def expected_random_median(top: int, rows: int) -> int:
    """Median evaluations for uniform sampling (with repeats) to hit one of ``top`` rows.

    The first hit is geometric with ``p = top / rows``: the smallest n with
    ``1 - (1 - p)**n >= 1/2``.

    Example:
        >>> expected_random_median(4, 288)
        50
    """
    p = top / rows
    return 1 if p >= 1 else math.ceil(math.log(0.5) / math.log(1 - p))


def expected_random_median_distinct(top: int, rows: int) -> int:
    """Median distinct rows drawn uniformly (without repeats) until one of ``top`` is hit.

    Random search with repeats answered from the record trains exactly these.

    Example:
        >>> expected_random_median_distinct(4, 288)
        46
    """
    miss, n = 1.0, 0
    while miss > 0.5:
        miss *= (rows - top - n) / (rows - n)
        n += 1
    return n


def _hours(seconds: Sequence[float | None], budget: int) -> float | None:
    keyed = sorted(math.inf if s is None else s for s in seconds)
    med = statistics.median(keyed) if keyed else math.inf
    return None if math.isinf(med) else med / 3600


def targets(
    summary: dict[str, Any], top_rows: int | None = None, rows: int | None = None
) -> dict[str, Any]:
    """The issue's targets, judged for archtune's own controllers against the peers.

    Own controllers are those with archtune-specific settings (``tpe``, ``evolution``,
    ``rl``, ``nsga2``); ``random``, ``gp`` and the ``nni-*`` ones are the peers. Random
    search is judged by its measured median and, when the table's size is given, by
    the exact median of uniform sampling too (the measured one is noisy).
    """
    full = summary["full"]

    def med(m: str, key: str = "median_evals_to_top") -> float:
        v = full.get(m, {}).get(key)
        return math.inf if v is None else v

    own = [m for m in full if m not in PEERS]
    peers = [m for m in PEERS if m in full]
    if not own or "random" not in full:
        return {}
    best = min(own, key=med)
    best_peer = min(peers, key=med)
    # The best own controller under ASHA, in any of its measured settings (its options, a
    # longer grace period): the one that matches full training with the fewest epochs.
    variants = sorted(m for m in summary["asha"] if base_method(m) == best)
    fracs = {m: summary["asha"][m].get("fraction_of_full") for m in variants}
    asha_best = min(variants, key=lambda m: _key(fracs[m]), default=None)
    frac = fracs.get(asha_best) if asha_best else None
    expected = expected_random_median(top_rows, rows) if top_rows and rows else None

    def trained(m: str) -> float:
        return med(m, "median_trainings_to_top")

    known = [m for m in own if full[m].get("trainings_known")]
    known_peers = [m for m in peers if full[m].get("trainings_known")]
    best_trained = min(known, key=trained) if known else None
    bp = min(known_peers, key=trained) if known_peers else None
    distinct = expected_random_median_distinct(top_rows, rows) if top_rows and rows else None
    return {
        "trainings": {}
        if best_trained is None or bp is None
        else {
            "best_own": best_trained,
            "best_own_median": full[best_trained]["median_trainings_to_top"],
            "random_expected_median": distinct,
            "half_of_random_expected": distinct is not None
            and trained(best_trained) <= 0.5 * distinct,
            "best_peer": bp,
            "best_peer_median": full[bp]["median_trainings_to_top"],
            "beats_every_peer": all(trained(best_trained) < trained(p) for p in known_peers),
            "peers_not_counted": [p for p in peers if p not in known_peers],
        },
        "random_expected_median": expected,
        "half_of_random_expected": expected is not None and med(best) <= 0.5 * expected,
        "best_own": best,
        "best_own_median": full[best]["median_evals_to_top"],
        "random_median": full["random"]["median_evals_to_top"],
        "half_of_random": med(best) <= 0.5 * med("random"),
        "best_peer": best_peer,
        "best_peer_median": full[best_peer]["median_evals_to_top"],
        "beats_every_peer": all(med(best) < med(p) for p in peers),
        "asha_fraction": frac,
        "asha_method": asha_best,
        "asha_fractions": fracs,
        "asha_quarter": frac is not None and frac <= 0.25,
    }


# Tables ---------------------------------------------------------------------------------
def _pp(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def _evals(x: float | None, budget: int) -> str:
    return f"> {budget}" if x is None else f"{x:g}"


def markdown_tables(result: dict[str, Any]) -> str:
    """The full-training and ASHA tables, in Markdown."""
    return full_table(result) + "\n\n" + asha_table(result)


def full_table(result: dict[str, Any]) -> str:
    """Evaluations to the top 1% and regrets under full training, in Markdown."""
    s, budget = result["summary"], result["budget"]
    cps = result["checkpoints"]
    lines = [
        "| method | what | seeds | median evals to top 1% (runs reaching it) "
        "| median simulated hours to top 1% | "
        + " | ".join(f"mean regret @{c} (pp)" for c in cps)
        + " | mean test regret @200 (pp) | distinct archs in 200 "
        "| median trainings to top 1%, repeats reused |",
        "|---|---|---:|---:|---:|" + "---:|" * len(cps) + "---:|---:|---:|",
    ]
    order = sorted(s["full"], key=lambda m: (_key(s["full"][m]["median_evals_to_top"]), m))
    for m in order:
        row = s["full"][m]
        h = row["median_hours_to_top"]
        lines.append(
            f"| `{m}` | {DESCRIPTIONS.get(m, '')} | {row['seeds']} | "
            f"{_evals(row['median_evals_to_top'], budget)} ({row['reached_top']}/{row['seeds']})"
            f" | {'-' if h is None else f'{h:.2f}'} | "
            + " | ".join(_pp(row["mean_val_regret"].get(str(c))) for c in cps)
            + f" | {_pp(row['mean_test_regret_final'])} | {row['mean_unique']:.0f} | "
            + (
                f"{_evals(row['median_trainings_to_top'], budget)} |"
                if row.get("trainings_known")
                else "- |"
            )
        )
    return "\n".join(lines)


def asha_table(result: dict[str, Any]) -> str:
    """Regret against epochs under ASHA, and the epochs to match full training."""
    s, budget = result["summary"], result["budget"]
    full_epochs = budget * result["asha"]["max_t"]
    shown = asha_columns(result)
    lines = [
        "| method | seeds | trials started | of them resumed | repeats answered | "
        "trained to max_t | "
        + " | ".join(f"mean regret @{e} epochs (pp)" for e in shown)
        + f" | full-training regret @{budget} (pp) | epochs to match it (share of "
        f"{full_epochs}) |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(shown) + "---:|---:|",
    ]
    for m in sorted(s["asha"], key=lambda m: (_key(s["asha"][m]["epochs_to_match"]), m)):
        row = s["asha"][m]
        match = row["epochs_to_match"]
        share = "-" if match is None else f"{match} ({row['fraction_of_full']:.2f})"
        repeats = row.get("mean_repeats")
        # Only the ``NAME+resume`` variants resume; the others count 0, or nothing if older.
        resumed = row.get("mean_resumed") if "+resume" in m else None
        lines.append(
            f"| `{m}` | {row['seeds']} | {row['mean_trials']:.0f} | "
            f"{'-' if resumed is None else f'{resumed:.0f}'} | "
            f"{'-' if repeats is None else f'{repeats:.0f}'} | {row['mean_completed']:.1f} | "
            + " | ".join(_pp(row["mean_val_regret"].get(str(e))) for e in shown)
            + f" | {_pp(row['full_regret_target'])} | "
            + (f"> {max(result['epoch_grid'], default=0)}" if match is None else share)
            + " |"
        )
    return "\n".join(lines)


def _key(x: float | None) -> float:
    return math.inf if x is None else x


def table_key(result: dict[str, Any]) -> str:
    """What tells a table's section and figures apart: ``""`` for the main table.

    Example:
        >>> table_key({"table": {"path": "benchmarks/nasbench/digits_resnet_e27.json.gz"}})
        '_e27'
    """
    stem = os.path.basename(result["table"]["path"]).split(".")[0]
    return stem.removeprefix("digits_resnet")


def markers(key: str) -> tuple[str, str]:
    """The start and end comments of a table's section in docs/benchmarks.md."""
    return f"<!-- nasbench{key}:start -->", f"<!-- nasbench{key}:end -->"


# Docs -----------------------------------------------------------------------------------
def replace_section(text: str, section: str, key: str = "") -> str:
    """``text`` with the part between the markers replaced (appended when absent).

    Example:
        >>> replace_section(f"a\\n{START}\\nold\\n{END}\\nb", "new")
        'a\\n<!-- nasbench:start -->\\nnew\\n<!-- nasbench:end -->\\nb'
    """
    start, end = markers(key)
    block = f"{start}\n{section.strip()}\n{end}"
    if start in text and end in text:
        pattern = re.escape(start) + r".*?" + re.escape(end)
        return re.sub(pattern, lambda _m: block, text, count=1, flags=re.S)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def write_docs(result: dict[str, Any], root: str) -> None:
    """Write both figures under ``docs/figures/`` and the section of docs/benchmarks.md."""
    from benchmarks.nasbench.docs_text import section

    key = table_key(result)
    figdir = os.path.join(root, "docs", "figures")
    os.makedirs(figdir, exist_ok=True)
    for stem, fig in figures.render(
        figures.figure_data(result), key, result["asha"]["max_t"]
    ).items():
        fig.write_html(os.path.join(figdir, stem + ".html"), include_plotlyjs="cdn")
    path = os.path.join(root, "docs", "benchmarks.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new = replace_section(text, section(result), key)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new)
    os.replace(tmp, path)
