"""The multi-objective replay: hypervolume regret on hand-made fronts, the table's true
front, a tiny replay end to end, and the docs section it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from benchmarks.nasbench import mo, mo_docs
from benchmarks.nasbench.table import Table, make_table_dict
from spaces import Categorical, SearchSpace
from tests.benchmarks.test_nasbench import Scripted

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = SearchSpace({"a": Categorical([0, 1, 2, 3])})
# (final validation accuracy, params) of networks a = 0..3: 0, 1 and 3 form the front
# (3 is the most accurate and the largest, 0 the smallest); 2 is dominated by 1.
NETS = {0: (0.5, 10), 1: (0.75, 100), 2: (0.625, 1000), 3: (1.0, 10000)}


def _table() -> Table:
    rows = [
        {
            "config": {"a": a},
            "params": p,
            "flops": 2 * p,
            "val_acc": [acc / 2, acc],
            "test_acc": [0.0, acc],
            "train_seconds": [1.0, 1.0],
        }
        for a, (acc, p) in NETS.items()
    ]
    return Table.from_dict(make_table_dict(SPACE, rows))


def test_hypervolume_of_a_hand_made_front() -> None:
    # Two boxes of 0.75 x 0.5 overlapping in 0.5 x 0.5: 0.375 + 0.375 - 0.25 = 0.5.
    assert mo.hypervolume(np.array([[0.25, 0.5], [0.5, 0.25]])) == pytest.approx(0.5)
    # A point on or beyond the reference point adds nothing; no point, no volume.
    assert mo.hypervolume(np.array([[0.5, 1.0], [2.0, 0.0]])) == 0.0
    assert mo.hypervolume(np.empty((0, 2))) == 0.0


def test_normalisation_and_regret_on_a_hand_made_table() -> None:
    points = mo.objectives(_table(), "params")
    # Accuracy losses (1 - acc) / 0.5; log10 params 1..4 over 3.
    losses = mo.normalise(points, points, "log")
    np.testing.assert_allclose(losses, [[1, 0], [0.5, 1 / 3], [0.75, 2 / 3], [0, 1]])
    scorer = mo.Scorer(points, "log")
    assert scorer.front.tolist() == [0, 1, 3]
    # Network 1 alone dominates (1 - 0.5) x (1 - 1/3) = 1/3 of the unit square; the front
    # adds network 3's nothing (it sits on the cost bound) and 0's nothing (accuracy bound).
    assert scorer.best_hv == pytest.approx(1 / 3)
    assert scorer.regret([1]) == pytest.approx(0.0)
    # Network 2 dominates 0.25 x 1/3 = 1/12: regret 1 - (1/12) / (1/3) = 0.75.
    assert scorer.regret([2]) == pytest.approx(0.75)
    assert scorer.regret([0, 3]) == pytest.approx(1.0)
    assert scorer.curve([2, 2, 1], [1, 3, 5]) == pytest.approx([0.75, 0.0, None])
    # Linear params: network 1 dominates 0.5 x (1 - 90/9990).
    linear = mo.Scorer(points, "linear")
    assert linear.regret([2]) == pytest.approx(1 - 0.25 * (1 - 990 / 9990) / linear.best_hv)


def _dominates(p: np.ndarray, q: np.ndarray, weakly: bool = False) -> bool:
    """Whether (accuracy, cost) point ``p`` dominates ``q`` (or equals it, ``weakly``)."""
    ok = bool(p[0] >= q[0] and p[1] <= q[1])
    return ok and (weakly or bool(p[0] > q[0] or p[1] < q[1]))


def test_true_front_of_the_table_is_non_dominated_and_complete() -> None:
    table = Table.load(mo.DEFAULT_TABLE)
    for cost in mo.COSTS:
        points = mo.objectives(table, cost)
        front = points[mo.true_front(points)]
        assert not any(_dominates(p, q) for p in front for q in front)
        # Every network is matched or beaten by a member of the front.
        assert all(any(_dominates(p, q, weakly=True) for p in front) for q in points)
        assert front[:, 0].max() == pytest.approx(table.best_val)


def test_replay_counts_every_proposal_repeats_included() -> None:
    script = [{"a": 2}, {"a": 2}, {"a": 1}, {"a": 3}]
    run = mo.run_mo(_table(), Scripted(script), budget=4)
    assert run["rows"] == [2, 2, 1, 3]
    assert run["unique"] == 3


def test_tiny_replay_writes_results_and_docs(tmp_path: Path) -> None:
    out = tmp_path / "mo.json"
    args = ["--json", str(out), "--seeds", "1", "--budget", "20", "--jobs", "1"]
    result = mo.main([*args, "--methods", "random", "evolution"])
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "nasbench_mo" and "cpu_model" in saved["machine"]
    assert saved["seeds"] == {"random": 1, "evolution": 1}
    assert saved["reference_point"] == [1.0, 1.0] and saved["cost"] == "params"
    for method in ("random", "evolution"):
        (run,) = saved["runs"][method]
        assert run["seed"] == 0 and len(run["rows"]) == 20
    for scale in mo.SCALES:
        per = saved["summary"][scale]["methods"]
        assert len(per["random"]["curve"]) == len(saved["eval_grid"]) == 20
        assert 0.0 <= per["evolution"]["curve"][-1] <= 1.0
    # A rerun with the same file keeps its runs and adds nothing.
    again = mo.main([*args, "--methods", "random"])
    assert again["runs"]["random"] == result["runs"]["random"]
    # The docs: a section between its markers, and the figure.
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "benchmarks.md").write_text("# Benchmarks\n\nbefore\n")
    mo_docs.write_docs(saved, str(tmp_path))
    text = (tmp_path / "docs" / "benchmarks.md").read_text()
    start, end = mo_docs.markers()
    assert text.startswith("# Benchmarks\n\nbefore\n") and start in text and end in text
    assert "Reference point: (1, 1)" in text
    assert (tmp_path / "docs" / "figures" / "nasbench_mo.html").exists()


def test_targets_are_judged_on_the_best_own_controller() -> None:
    per = {
        m: {"mean_regret": {"50": r50, "100": r100}}
        for m, r50, r100 in [
            ("evolution", 0.03, 0.012),
            ("tpe", 0.02, 0.010),
            ("random", 0.05, 0.03),
            ("gp", 0.01, 0.001),  # a peer under archtune's name: never the best own
            ("optuna-motpe", 0.06, 0.02),
        ]
    }
    t = mo.targets(per)
    assert t["best_own"] == "tpe"
    assert t["half_of_random_at_100"] and t["half_of_motpe_at_100"] and t["below_motpe_at_50"]
    per["optuna-motpe"]["mean_regret"] = {"50": 0.01, "100": 0.015}
    t = mo.targets(per)
    assert not t["half_of_motpe_at_100"] and not t["below_motpe_at_50"]
    assert mo.targets({"tpe": per["tpe"]}) == {}
