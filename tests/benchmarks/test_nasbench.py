"""The tabular NAS benchmark replay on tiny tables whose answers are worked out by hand."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from benchmarks.nasbench import report, simulate
from benchmarks.nasbench.table import Table, make_table_dict
from search.base import DefineByRunSampler
from spaces import Categorical, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = SearchSpace({"a": Categorical([0, 1, 2, 3]), "b": Categorical(["x", "y"])})


class Scripted(DefineByRunSampler):
    """Proposes the given configurations in order (the n-th trial gets the n-th)."""

    def __init__(self, configs: Sequence[Mapping[str, Any]]) -> None:
        self.configs = list(configs)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, dist: BaseDistribution
    ) -> Any:
        return self.configs[trial.number][name]


def _full_table(tmp_path: Path) -> Table:
    """8 networks; final val 0.5 + 0.1 a + 0.05 [b = y], best (3, y) at 0.85; test acc is
    val - 0.01, except (3, y) at 0.80 and (3, x) at 0.83 (the best test)."""
    rows = []
    for a in range(4):
        for b in "xy":
            val = 0.5 + 0.1 * a + 0.05 * (b == "y")
            test = {(3, "y"): 0.80, (3, "x"): 0.83}.get((a, b), val - 0.01)
            rows.append(
                {
                    "config": {"a": a, "b": b},
                    "val_acc": [val / 2, val],
                    "test_acc": [0.0, test],
                    "train_seconds": [1.5, 2.5],
                }
            )
    path = tmp_path / "table.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(make_table_dict(SPACE, rows), f)
    return Table.load(str(path))


def _curve_table(curves: dict[int, list[float]]) -> Table:
    """Networks ``a`` with these validation curves (test = validation, 1 s an epoch)."""
    space = SearchSpace({"a": Categorical(list(curves))})
    rows = [
        {"config": {"a": a}, "val_acc": c, "test_acc": c, "train_seconds": [1.0] * len(c)}
        for a, c in curves.items()
    ]
    return Table.from_dict(make_table_dict(space, rows))


def test_table_round_trip_and_top_set(tmp_path: Path) -> None:
    table = _full_table(tmp_path)
    assert len(table) == 8 and table.epochs == 2
    assert table.best_val == pytest.approx(0.85) and table.best_test == pytest.approx(0.83)
    assert table.top_threshold == pytest.approx(0.85)  # ceil(1% of 8) = the best only
    assert table.is_top(table.lookup({"a": 3, "b": "y"}))
    assert not table.is_top(table.lookup({"a": 3, "b": "x"}))
    with pytest.raises(KeyError, match="not in the table"):
        table.lookup({"a": 9, "b": "x"})
    # Top 25%: ceil(0.25 * 8) = 2 networks, down to (3, x) at 0.80.
    loose = Table.from_dict(make_table_dict(SPACE, table.rows), top_fraction=0.25)
    assert loose.top_threshold == pytest.approx(0.80)
    assert loose.summary()["top_rows"] == 2


def test_full_replay_counts_evaluations_regret_and_seconds(tmp_path: Path) -> None:
    table = _full_table(tmp_path)
    script = [
        {"a": 0, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "y"},  # a repeat costs an evaluation and its seconds again
        {"a": 3, "b": "y"},  # the best: reached at evaluation 4
        {"a": 2, "b": "x"},
    ]
    run = simulate.run_full(table, Scripted(script), budget=5)
    assert run["evals_to_top"] == 4
    assert run["seconds_to_top"] == pytest.approx(16.0)
    assert run["sim_seconds"] == pytest.approx([4.0, 8.0, 12.0, 16.0, 20.0])
    assert run["val_regret"] == pytest.approx([0.35, 0.2, 0.2, 0.0, 0.0])
    assert run["test_regret"][-1] == pytest.approx(0.03)  # best-by-val tests at 0.80
    assert run["unique"] == 4
    # Had the repeat been answered from the record, the top costs 3 trainings, not 4.
    assert run["trainings_to_top"] == 3


def test_asha_stops_and_epoch_accounting() -> None:
    curves = {
        0: [0.50, 0.60, 0.70, 0.80],
        1: [0.40, 0.50, 0.60, 0.90],  # slow starter, best at the end
        2: [0.55, 0.65, 0.75, 0.85],
        3: [0.60, 0.55, 0.60, 0.70],
    }
    table = _curve_table(curves)
    script = [{"a": a} for a in (0, 1, 2, 3, 1)]
    # grace 1, eta 2, max_t 4: rungs at epochs 1 and 2.
    run = simulate.run_asha(table, Scripted(script), epoch_budget=12, grace=1, eta=2)
    # 0: empty rungs, runs 4. 1: 0.40 < median [0.50] at rung 1, stops (1 epoch).
    # 2: passes both rungs (0.55 >= 0.45, 0.65 >= 0.60), runs 4. 3: passes rung 1
    # (0.60 >= 0.50), stops at rung 2 (0.55 < 0.625). 1 again: 0.40 < 0.525, stops.
    assert run["epochs"] == [4, 5, 9, 11, 12]
    assert run["stops"] == {"1": 2, "2": 1, "4": 2}
    assert run["trials"] == 5 and run["completed"] == 2
    assert run["val_regret"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05])
    assert simulate.on_grid(run["epochs"], run["val_regret"], [3, 4, 10, 12]) == pytest.approx(
        [float("nan"), 0.1, 0.05, 0.05], nan_ok=True
    )
    assert simulate.rungs(1, 3, 12) == [1, 3, 9]


def test_asha_with_reuse_answers_repeats_of_completed_networks_for_free() -> None:
    curves = {
        0: [0.50, 0.60, 0.70, 0.80],
        1: [0.40, 0.50, 0.60, 0.90],
        2: [0.55, 0.65, 0.75, 0.85],
    }
    table = _curve_table(curves)
    # 0 runs 4 epochs; its repeat is free; 1 stops at rung 1 (0.40 < 0.50); its repeat is
    # trained again and stopped again (0.40 < quantile of [0.50, 0.40]); 2 passes and
    # spends the budget.
    script = [{"a": a} for a in (0, 0, 1, 1, 2)]
    run = simulate.run_asha(table, Scripted(script), epoch_budget=10, grace=1, eta=2, reuse=True)
    assert run["epochs"] == [4, 5, 6, 10]
    assert run["repeats"] == 1 and run["trials"] == 4 and run["completed"] == 2
    assert run["val_regret"][-1] == pytest.approx(0.05)
    # Without reuse the repeat of 0 is trained again: 4 more epochs, budget spent sooner.
    again = simulate.run_asha(table, Scripted(script), epoch_budget=10, grace=1, eta=2)
    assert again["epochs"][:2] == [4, 8] and again["repeats"] == 0


def test_asha_with_resume_a_stopped_network_goes_on_from_where_it_stopped() -> None:
    curves = {
        0: [0.50, 0.60, 0.70, 0.80],
        1: [0.40, 0.70, 0.80, 0.90],  # slow starter, the best
        2: [0.30, 0.35, 0.40, 0.45],
    }
    table = _curve_table(curves)
    script = [{"a": a} for a in (0, 1, 1, 2, 1)]
    # grace 1, eta 2, max_t 4: rungs at epochs 1 and 2. 0 runs 4 epochs; 1 stops at rung 1
    # (0.40 < 0.50). 1 again goes on from epoch 1, whose report is judged again first:
    # 0.40 < 0.45, stopped again at no cost. 2 stops at rung 1 (0.30 < 0.40). 1 a third
    # time: 0.40 >= 0.40 now, then rung 2 (0.70 >= 0.60): it runs epochs 2-4 only.
    run = simulate.run_asha(
        table, Scripted(script), epoch_budget=9, grace=1, eta=2, reuse=True, resume=True
    )
    assert run["epochs"] == [4, 5, 5, 6, 9]
    assert run["resumed"] == 2 and run["completed"] == 2
    assert 0 <= run["wall_seconds"] < 60  # the replay's own time, not the clock's
    assert run["val_regret"][-1] == pytest.approx(0.0)
    # From scratch each repeat pays its epochs again.
    again = simulate.run_asha(table, Scripted(script), epoch_budget=11, grace=1, eta=2)
    assert again["epochs"] == [4, 5, 6, 7, 11] and again["resumed"] == 0


def test_asha_with_reuse_stops_when_only_repeats_come() -> None:
    space = SearchSpace({"a": Categorical([0])})
    row = {
        "config": {"a": 0},
        "val_acc": [0.5, 0.6],
        "test_acc": [0.5, 0.6],
        "train_seconds": [1.0, 1.0],
    }
    table = Table.from_dict(make_table_dict(space, [row]))
    sampler = optuna.samplers.RandomSampler(seed=0)
    run = simulate.run_asha(table, sampler, epoch_budget=100, reuse=True)
    assert run["epochs"] == [2] and run["repeats"] == simulate.MAX_REPEATS


def test_summary_medians_and_epochs_to_match() -> None:
    def full(seed: int, to_top: int | None, curve: list[float]) -> dict[str, Any]:
        return {
            "seed": seed,
            "evals_to_top": to_top,
            "trainings_to_top": None if to_top is None else to_top - 1,
            "seconds_to_top": None if to_top is None else 10.0 * to_top,
            "unique": 3,
            "val_regret": curve,
            "test_regret": {"3": curve[-1]},
        }

    def asha(seed: int, curve: list[float]) -> dict[str, Any]:
        return {"seed": seed, "trials": 9, "completed": 2, "val_regret": curve}

    result = {
        "budget": 3,
        "checkpoints": [3],
        "eval_grid": [1, 2, 3],
        "epoch_grid": [4, 8, 12],
        "asha": {"max_t": 4},
        "runs": {
            "full": {
                "m": [
                    full(0, 2, [0.3, 0.1, 0.1]),
                    full(1, None, [0.3, 0.2, 0.1]),
                    full(2, 3, [0.3, 0.3, 0.1]),
                ]
            },
            "asha": {"m": [asha(0, [0.2, 0.1, 0.0]), asha(1, [0.4, 0.1, 0.1])]},
        },
    }
    s = report.summarise(result)
    assert s["full"]["m"]["median_evals_to_top"] == 3  # 2, 3, never -> 3
    assert s["full"]["m"]["median_trainings_to_top"] == 2  # 1, 2, never -> 2
    assert s["full"]["m"]["reached_top"] == 2
    assert s["full"]["m"]["mean_val_regret"]["3"] == pytest.approx(0.1)
    assert s["full"]["m"]["mean_test_regret_final"] == pytest.approx(0.1)
    assert s["asha"]["m"]["epochs_to_match"] == 8  # mean 0.1 at 8 epochs <= 0.1
    assert s["asha"]["m"]["fraction_of_full"] == pytest.approx(8 / 12)
    assert report.median_censored([None, None, 1], budget=3) is None


def test_cmaes_on_ordinal_encoding_stays_in_the_table(tmp_path: Path) -> None:
    table = _full_table(tmp_path)
    sampler = optuna.samplers.CmaEsSampler(seed=0, warn_independent_sampling=False)
    run = simulate.run_full(table, sampler, budget=6, ordinal=True)
    assert len(run["val_regret"]) == 6 and min(run["val_regret"]) >= 0.0


def test_docs_section_replaced_between_markers() -> None:
    text = f"intro\n{report.START}\nold\n{report.END}\noutro\n"
    new = report.replace_section(text, "fresh")
    assert new == f"intro\n{report.START}\nfresh\n{report.END}\noutro\n"
    assert report.replace_section("only\n", "x").endswith(f"{report.START}\nx\n{report.END}\n")


def test_replay_in_two_processes_gives_the_runs_of_one(tmp_path: Path) -> None:
    from benchmarks.nasbench import replay

    _full_table(tmp_path)
    args = ["--table", str(tmp_path / "table.json.gz"), "--methods", "random", "evolution"]
    args += ["--seeds", "3", "--asha-seeds", "2", "--budget", "6"]

    def runs(result: dict[str, Any]) -> dict[str, Any]:
        return {
            setting: {m: [{**r, "wall_seconds": 0} for r in rs] for m, rs in by.items()}
            for setting, by in result["runs"].items()
        }

    one = replay.main([*args, "--json", str(tmp_path / "one.json")])
    two = replay.main([*args, "--json", str(tmp_path / "two.json"), "--jobs", "2"])
    assert runs(one) == runs(two)
    assert [r["seed"] for r in two["runs"]["full"]["evolution"]] == [0, 1, 2]
    assert two["asha"]["epoch_budget"] == 6  # half of budget 6 x the table's 2 epochs
    assert len(two["runs"]["asha"]["random"]) == 2


def test_a_second_table_gets_its_own_docs_section_and_figures(tmp_path: Path) -> None:
    from benchmarks.nasbench import replay

    _full_table(tmp_path)
    path = tmp_path / "digits_resnet_e2.json.gz"
    (tmp_path / "table.json.gz").rename(path)
    args = ["--table", str(path), "--json", str(tmp_path / "r.json")]
    args += ["--methods", "random", "evolution", "--seeds", "3", "--asha-seeds", "2"]
    result = replay.main([*args, "--budget", "6"])
    docs = tmp_path / "root" / "docs"
    docs.mkdir(parents=True)
    main = f"intro\n{report.START}\nthe main table\n{report.END}\n"
    (docs / "benchmarks.md").write_text(main)
    report.write_docs(result, str(tmp_path / "root"))
    text = (docs / "benchmarks.md").read_text()
    assert text.startswith(main), "the main table's section is left alone"
    start, end = report.markers("_e2")
    body = text[text.index(start) : text.index(end)]
    assert "second table: the same networks trained 2 epochs" in body
    assert "| `evolution` |" in body and "Spearman" in body
    assert (docs / "figures" / "nasbench_e2_regret_epochs.html").exists()
