"""Parameter importance: how much of each objective's variation each parameter explains.

The importances are Optuna's own (:mod:`optuna.importance`), never computed here: the
record's trials are copied into an in-memory Optuna study, with one distribution per
parameter (the study's search space where it declares the parameter and holds every
recorded value, otherwise inferred from the values), and an evaluator runs on it:

- ``"fanova"``: fANOVA, a random forest's functional ANOVA decomposition (Hutter, Hoos
  and Leyton-Brown, *An Efficient Approach for Assessing Hyperparameter Importance*,
  ICML 2014). Accurate but slow: about 35 s for 1,000 trials of 8 parameters on one core.
- ``"ped_anova"``: PED-ANOVA, Pearson divergence between the Parzen estimators of the
  top trials and of all trials (Watanabe, Bansal and Hutter, *PED-ANOVA: Efficiently
  Quantifying Hyperparameter Importance in Arbitrary Subspaces*, IJCAI 2023). Tens of
  milliseconds for 1,000 trials.
- ``"mean_decrease_impurity"``: a random forest's mean decrease in impurity (Breiman,
  *Random Forests*, Machine Learning 2001). A fraction of a second for 1,000 trials.
- ``"auto"``: fANOVA up to :data:`FANOVA_MAX_TRIALS` usable trials, PED-ANOVA beyond.

Usable trials are COMPLETE, feasible, not a repeat (a repeat reuses an earlier trial's
result and would count it twice) and have a finite value of every objective. Each
objective gets its own importances (normalised to sum to 1). A parameter that is not set
in every usable trial (a conditional one) is assessed only by PED-ANOVA on Optuna >= 5
(Conditional PED-ANOVA); the other evaluators leave it out, and the info lists it in
``not_assessed``. Random forests are seeded (``seed=0``): the result is deterministic.

The dashboard caches the info by the number of finished trials and computes it off the
request path; :func:`plot_importance` takes that cached info.

Example:
    >>> from studies.records import StudyRecord, TrialRecord
    >>> trials = [TrialRecord(n, "COMPLETE", {"lr": 0.1 * n, "depth": n % 3}, float(n))
    ...           for n in range(1, 9)]
    >>> info = get_importance_info(StudyRecord("demo", "minimize", "loss", None, trials),
    ...                            evaluator="mean_decrease_impurity")
    >>> info.params[0], round(sum(info.objectives[0].importances.values()), 6)
    ('lr', 1.0)
    >>> fig = plot_importance(StudyRecord("empty", "minimize", "loss", None, []))
"""

from __future__ import annotations

import html
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    MeanDecreaseImpurityImportanceEvaluator,
    PedAnovaImportanceEvaluator,
)

from dashboard.figures import _category_key, _message, _style, _subtitle, is_finite
from studies.records import StudyRecord, TrialRecord

EVALUATORS = ("fanova", "ped_anova", "mean_decrease_impurity", "auto")
EVALUATOR_NAMES = {
    "fanova": "fANOVA",
    "ped_anova": "PED-ANOVA",
    "mean_decrease_impurity": "mean decrease in impurity",
}
FANOVA_MAX_TRIALS = 300  # "auto" switches to PED-ANOVA above this many usable trials
SEED = 0
_COLORS = ("#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#dc2626", "#0891b2")


@dataclass(frozen=True)
class ObjectiveImportance:
    """The importances of the parameters for one objective.

    Attributes:
        objective, direction: The objective.
        importances: ``{param: share}``, most important first, summing to 1 (empty when
            ``reason`` is set).
        reason: Why nothing was computed for this objective (e.g. it is constant).
    """

    objective: str
    direction: str
    importances: dict[str, float]
    reason: str | None = None


@dataclass(frozen=True)
class ImportanceInfo:
    """Data of :func:`plot_importance`.

    Attributes:
        evaluator: The evaluator that ran (``"auto"`` resolved), one of
            :data:`EVALUATOR_NAMES`.
        n_trials: Number of usable trials (COMPLETE, feasible, not a repeat, finite).
        params: The assessed parameters, most important first (by the mean share over
            the objectives).
        objectives: One entry per objective, in the study's order.
        not_assessed: Parameters of usable trials the evaluator left out (conditional
            ones that some trials lack), sorted.
        reason: Why nothing was computed at all (too few trials, nothing varies), or None.
    """

    evaluator: str
    n_trials: int
    params: list[str]
    objectives: list[ObjectiveImportance]
    not_assessed: list[str]
    reason: str | None = None


# ------------------------------------------------------------------ distributions


def _declared(space: dict[str, Any] | None, prefix: str = "") -> dict[str, dict[str, Any]]:
    """``{flat path: parameter JSON}`` of every leaf of a space's JSON."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in ((space or {}).get("entries") or {}).items():
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == "space":
            out.update(_declared(entry, f"{prefix}{name}/"))
        else:
            out[prefix + name] = entry
    return out


def _from_space(entry: dict[str, Any]) -> BaseDistribution | None:
    """The Optuna distribution a parameter's JSON declares, or None (fixed, unknown)."""
    try:
        kind = entry.get("type")
        if kind == "float":
            log, step = bool(entry.get("log")), entry.get("step")
            return FloatDistribution(entry["low"], entry["high"], log=log, step=step)
        if kind == "int":
            log, step = bool(entry.get("log")), entry.get("step") or 1
            return IntDistribution(entry["low"], entry["high"], log=log, step=step)
        if kind == "categorical":
            return CategoricalDistribution(list(entry["choices"]))
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _holds(dist: BaseDistribution, values: list[Any]) -> bool:
    try:
        return all(dist._contains(dist.to_internal_repr(v)) for v in values)
    except (TypeError, ValueError):
        return False


def _category(value: Any) -> Any:
    """``value`` as an Optuna category: JSON scalars as they are, anything else as text."""
    if value is None or isinstance(value, (bool, str)):
        return value
    return value if is_finite(value) else str(value)


def _identity(value: Any) -> Any:
    return value


def _inferred(values: list[Any]) -> tuple[BaseDistribution, Callable[[Any], Any]]:
    """A distribution that holds ``values``, and how each value enters it.

    Finite numbers give an int or float range (log over more than two decades of
    positive floats); anything else the categories seen, in a stable order.
    """
    if all(is_finite(v) for v in values):
        lo, hi = min(values), max(values)
        if all(isinstance(v, numbers.Integral) for v in values):
            return IntDistribution(int(lo), int(hi)), int
        log = lo > 0 and hi > 100 * lo
        return FloatDistribution(float(lo), float(hi), log=log), float
    choices = sorted(dict.fromkeys(_category(v) for v in values), key=_category_key)
    return CategoricalDistribution(choices), _category


def _distributions(
    record: StudyRecord, trials: list[TrialRecord]
) -> dict[str, tuple[BaseDistribution, Callable[[Any], Any]]]:
    """One distribution per parameter of ``trials``: declared, else inferred."""
    declared = _declared(record.space)
    names = sorted({name for t in trials for name in t.params})
    out = {}
    for name in names:
        values = [t.params[name] for t in trials if name in t.params]
        dist = _from_space(declared[name]) if name in declared else None
        out[name] = (dist, _identity) if dist and _holds(dist, values) else _inferred(values)
    return out


# -------------------------------------------------------------------- evaluation


def _usable(record: StudyRecord) -> list[TrialRecord]:
    """COMPLETE, feasible trials, not repeats, with a finite value of every objective."""
    n = len(record.objectives)
    return [
        t
        for t in sorted(record.trials, key=lambda t: t.number)
        if t.state == "COMPLETE"
        and t.feasible
        and t.repeat_of is None
        and t.values is not None
        and len(t.values) == n
        and all(is_finite(v) for v in t.values)
    ]


def _study(record: StudyRecord, trials: list[TrialRecord]) -> optuna.Study:
    """An in-memory Optuna study holding ``trials``."""
    dists = _distributions(record, trials)
    study = optuna.create_study(directions=list(record.directions))
    frozen = []
    for t in trials:
        params = {k: dists[k][1](v) for k, v in t.params.items()}
        frozen.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: dists[k][0] for k in params},
                values=[float(v) for v in t.values or []],
            )
        )
    study.add_trials(frozen)
    return study


def _evaluator(name: str) -> BaseImportanceEvaluator:
    if name == "fanova":
        return FanovaImportanceEvaluator(seed=SEED)
    if name == "mean_decrease_impurity":
        return MeanDecreaseImpurityImportanceEvaluator(seed=SEED)
    return PedAnovaImportanceEvaluator()  # deterministic: no randomness to seed


def _resolve(evaluator: str, n_trials: int) -> str:
    if evaluator not in EVALUATORS:
        raise ValueError(f"Unknown importance evaluator {evaluator!r}; pick one of {EVALUATORS}.")
    if evaluator == "auto":
        return "fanova" if n_trials <= FANOVA_MAX_TRIALS else "ped_anova"
    return evaluator


def _one(study: optuna.Study, name: str, index: int, maximize: bool) -> dict[str, float]:
    """Normalised importances for objective ``index`` (PED-ANOVA wants lower = better)."""
    sign = -1.0 if maximize and name == "ped_anova" else 1.0

    def target(t: optuna.trial.FrozenTrial) -> float:
        return sign * t.values[index]

    with warnings.catch_warnings():  # PED-ANOVA's notes on targets, experimental flags
        warnings.simplefilter("ignore")
        found = optuna.importance.get_param_importances(
            study, evaluator=_evaluator(name), target=target
        )
    ranked = sorted(found.items(), key=lambda kv: (-float(kv[1]), kv[0]))
    return {k: float(v) for k, v in ranked}


def _objective(
    study: optuna.Study, name: str, record: StudyRecord, index: int, trials: list[TrialRecord]
) -> ObjectiveImportance:
    objective, direction = record.objectives[index], record.directions[index]
    values = {(t.values or [])[index] for t in trials}
    if len(values) == 1:
        reason = f"{objective} is {values.pop():g} in every usable trial: nothing to explain."
        return ObjectiveImportance(objective, direction, {}, reason)
    found = _one(study, name, index, direction == "maximize")
    if not found:
        reason = f"No parameter is set in every usable trial ({EVALUATOR_NAMES[name]})."
        return ObjectiveImportance(objective, direction, {}, reason)
    return ObjectiveImportance(objective, direction, found)


def _ranked(objectives: list[ObjectiveImportance]) -> list[str]:
    """Params by their mean share over the objectives with importances, then by name."""
    done = [o for o in objectives if o.importances]
    names = {p for o in done for p in o.importances}
    total = {p: sum(o.importances.get(p, 0.0) for o in done) / len(done) for p in names}
    return sorted(names, key=lambda p: (-total[p], p))


def get_importance_info(record: StudyRecord, evaluator: str = "fanova") -> ImportanceInfo:
    """The importance of each parameter for each objective, by one of Optuna's evaluators.

    Args:
        record: The study.
        evaluator: One of :data:`EVALUATORS` (``"auto"``: fANOVA up to
            :data:`FANOVA_MAX_TRIALS` usable trials, PED-ANOVA beyond).

    Returns:
        The info; with fewer than 2 usable trials, or no parameter taking two values, its
        ``reason`` says so and nothing is computed. Never raises for the study's data.

    Raises:
        ValueError: for an unknown ``evaluator`` (the message lists them).

    Example:
        >>> info = get_importance_info(StudyRecord("s", "maximize", "acc", None, []))
        >>> info.reason.endswith("this study has 0.")
        True
    """
    trials = _usable(record)
    name = _resolve(evaluator, len(trials))
    seen = sorted({p for t in trials for p in t.params})
    pairs = zip(record.objectives, record.directions, strict=True)
    empty = [ObjectiveImportance(o, d, {}) for o, d in pairs]
    if len(trials) < 2:
        reason = (
            "Importance needs 2 or more complete, feasible trials with finite values; "
            f"this study has {len(trials)}."
        )
        return ImportanceInfo(name, len(trials), [], empty, seen, reason)
    varying = [p for p in seen if len({repr(t.params.get(p)) for t in trials}) > 1]
    if not varying:
        reason = f"No parameter takes two different values in the {len(trials)} usable trials."
        return ImportanceInfo(name, len(trials), [], empty, seen, reason)
    study = _study(record, trials)
    objectives = [_objective(study, name, record, i, trials) for i in range(len(empty))]
    params = _ranked(objectives)
    not_assessed = sorted(set(seen) - set(params))
    return ImportanceInfo(name, len(trials), params, objectives, not_assessed)


# ---------------------------------------------------------------------- renderer


def _hover(param: str, objective: str, share: float) -> str:
    return f"<b>{html.escape(param)}</b><br>{html.escape(objective)}: {share:.1%} of importance"


def _notes(info: ImportanceInfo) -> dict[str, int]:
    """What the figure leaves out, for its subtitle."""
    without = sum(o.reason is not None for o in info.objectives) if info.params else 0
    skipped = len(info.not_assessed) if info.params else 0
    return {
        f"objective{'s' * (without != 1)} without importances": without,
        f"conditional param{'s' * (skipped != 1)} not assessed": skipped,
    }


def plot_importance(
    record: StudyRecord, evaluator: str = "fanova", info: ImportanceInfo | None = None
) -> go.Figure:
    """Horizontal bars of each parameter's share of importance, the most important on top.

    With several objectives, one bar per objective for each parameter, side by side.

    Args:
        record: The study.
        evaluator: As in :func:`get_importance_info`; ignored when ``info`` is given.
        info: A computed (e.g. cached) :func:`get_importance_info` of ``record``.

    Raises:
        ValueError: for an unknown ``evaluator``.
    """
    info = info if info is not None else get_importance_info(record, evaluator)
    what = f"{EVALUATOR_NAMES[info.evaluator]} over {info.n_trials} usable trials"
    fig = _style(go.Figure(), "Parameter importance", _subtitle(record, what, _notes(info)))
    done = [o for o in info.objectives if o.importances]
    if info.reason or not done:
        reason = info.reason or next((o.reason for o in info.objectives if o.reason), "")
        return _message(fig, reason or "No importance to show.")
    labels = [html.escape(p) for p in info.params]
    # Plotly draws a group's horizontal bars bottom-up in trace order: add the objectives
    # last first, so that the first is on top, and rank the legend the study's way.
    for i, o in reversed(list(enumerate(done))):
        shares = [o.importances.get(p, 0.0) for p in info.params]
        hover = [_hover(p, o.objective, s) for p, s in zip(info.params, shares, strict=True)]
        fig.add_trace(
            go.Bar(
                x=shares,
                y=labels,
                orientation="h",
                name=html.escape(o.objective),
                marker={"color": _COLORS[i % len(_COLORS)]},
                text=[f"{s:.0%}" for s in shares],
                textposition="auto",
                hovertext=hover,
                hoverinfo="text",
                showlegend=len(done) > 1,
                legendrank=1000 + i,
            )
        )
    rows = len(info.params) * max(1, len(done))
    fig.update_layout(barmode="group", height=max(300, min(1200, 140 + 24 * rows)))
    fig.update_xaxes(title_text="share of importance", tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(
        categoryorder="array", categoryarray=labels[::-1], automargin=True, title_text=""
    )
    return fig
