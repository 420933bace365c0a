"""Multi-objective studies: validation before anything is written, the front, and a real
run through Ray Tune and SQLite with ASHA, a conditional space and a constraint."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import ControllerSpec
from spaces import Categorical, Constraint, Float, Int, SearchSpace
from spaces.optuna_adapter import suggest
from studies import Study
from studies.cli import main
from studies.objectives import Objectives
from studies.records import ATTR_REJECTED, ATTR_RUN, ATTR_STATS, load_study_record
from studies.storage import open_storage
from tests.studies.toy import CostTrainer, ToyTrainer

TWO = {"objective": ["score", "params"], "direction": ["maximize", "minimize"]}


def _space(limit: float | None = None) -> SearchSpace:
    return SearchSpace(
        {
            "x": Float(0.0, 1.0),
            "kind": Categorical(["slim", "wide"]),
            "width": Int(1, 8, when={"kind": "wide"}),
        },
        constraints=[] if limit is None else [Constraint("params", max=limit)],
    )


@pytest.mark.parametrize(
    ("objective", "direction", "error", "match"),
    [
        (["score", "params"], ["maximize"], ValueError, r"2 objective\(s\).*1 direction\(s\)"),
        (["score", "params"], "maximize", ValueError, "give one direction per objective"),
        (["score", "params"], ["maximize", "down"], ValueError, "direction must be one of"),
        (["score", "score"], ["maximize", "maximize"], ValueError, "given twice"),
        ([], [], ValueError, "empty list"),
        ([1, 2], ["maximize", "minimize"], TypeError, "list of strings"),
    ],
)
def test_bad_objective_lists_are_refused_before_anything_is_written(
    db_url: str, objective, direction, error, match
) -> None:
    with pytest.raises(error, match=match):
        Study.create("s", _space(), objective=objective, direction=direction, storage=db_url)
    assert optuna.get_all_study_names(db_url) == []


def test_a_two_objective_study_is_an_optuna_study_with_named_metrics(db_url: str) -> None:
    study = Study.create("s", _space(), storage=db_url, **TWO)
    plain = optuna.load_study(study_name="s", storage=db_url)
    assert plain.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    assert plain.metric_names == ["score", "params"]
    assert study.objectives == Objectives.parse(["score", "params"], ["maximize", "minimize"])
    with pytest.raises(ValueError, match=r"no single best_trial; use best_trials"):
        study.best_trial  # noqa: B018
    with pytest.raises(ValueError, match="use objectives"):
        study.objective  # noqa: B018
    assert study.best_trials == []


def test_a_single_objective_study_gets_its_metric_name_too(db_url: str) -> None:
    Study.create("one", _space(), objective="score", storage=db_url)
    assert optuna.load_study(study_name="one", storage=db_url).metric_names == ["score"]


def test_the_objective_list_of_a_study_cannot_change(db_url: str) -> None:
    Study.create("s", _space(), storage=db_url, **TWO)
    with pytest.raises(ValueError, match=r"exists with objective 'score' \(maximize\), 'params'"):
        Study.create("s", _space(), "score", "maximize", storage=db_url, load_if_exists=True)
    again = Study.create("s", _space(), storage=db_url, load_if_exists=True, **TWO)
    assert again.objectives.names == ("score", "params")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"controller": "nni-tpe"}, r"searches one objective.*Use one of \[.*'nsga2'"),
        ({"trainer": ToyTrainer()}, r"optimises 'params', which ToyTrainer does not report"),
        (
            {"controller": ControllerSpec("nni-evolution", seed=1)},
            "'nni-evolution' searches one objective",
        ),
    ],
)
def test_run_refuses_what_cannot_search_the_front(db_url: str, kwargs, match) -> None:
    study = Study.create("s", _space(), storage=db_url, **TWO)
    args = {"trainer": CostTrainer(), "controller": "evolution", **kwargs}
    with pytest.raises(ValueError, match=match):
        study.run(**args)
    assert study.trials == [] and ATTR_RUN not in study.optuna.user_attrs


class BothCosts(CostTrainer):
    final_metrics = ("params", "flops")


@pytest.mark.parametrize(
    ("objective", "direction"),
    [(["params", "flops"], ["minimize", "minimize"]), ("params", "minimize")],
)
def test_a_scheduler_needs_an_objective_reported_every_epoch(
    db_url: str, objective, direction
) -> None:
    study = Study.create("s", _space(), objective, direction, storage=db_url)
    with pytest.raises(ValueError, match=r"reports none of \['params'.* every epoch"):
        study.run(BothCosts(), "random", scheduler="asha")
    assert ATTR_RUN not in study.optuna.user_attrs


def test_the_scheduler_judges_the_first_objective_reported_every_epoch() -> None:
    from studies.plan import plan_run
    from studies.settings import RunSettings

    objectives = Objectives.parse(["params", "score"], ["minimize", "maximize"])
    assert objectives.scheduled_for(CostTrainer.metrics).name == "score"
    assert (
        Objectives.parse(["test_acc", "val_acc"], ["maximize"] * 2).scheduled_for(
            ["epoch", "val_acc"]
        )
        == Objectives.parse("val_acc", "maximize")[0]
    ), "a last-epoch metric is skipped"
    plan = plan_run(_space(), objectives, CostTrainer(), "random", RunSettings(), 0)
    assert plan.scheduled.name == "score" and plan.scheduled.mode == "max"


def test_metrics_reported_only_at_the_last_epoch_may_be_objectives(db_url: str) -> None:
    from trainers import ImageClassifier

    reported = ImageClassifier(epochs=1).reported_metrics()
    assert {"val_acc", "params", "flops", "latency_ms", "activation_bytes"} <= set(reported)
    assert (
        "int8_acc" not in reported
        and "int8_acc" in ImageClassifier(epochs=1, quantize=True).reported_metrics()
    )


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_front_through_ray_with_asha_a_conditional_space_and_a_constraint(
    db_url: str, tmp_path, capsys
) -> None:
    study = Study.create("front", _space(limit=6000), storage=db_url, **TWO)
    study.run(
        CostTrainer(epochs=3, seconds=0.0),
        ControllerSpec("nsga2", seed=0, options={"population_size": 8}),
        num_trials=16,
        max_concurrent=2,
        scheduler="asha",
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    trials = optuna.load_study(study_name="front", storage=db_url).trials
    states = {s: [t for t in trials if t.state == s] for s in TrialState}
    complete, pruned = states[TrialState.COMPLETE], states[TrialState.PRUNED]
    assert len(complete) + len(pruned) == 16
    assert pruned, "ASHA stopped the trials whose score fell"
    # Proposals over the parameter budget were rejected before training ...
    rejected = [t for t in states[TrialState.FAIL] if ATTR_REJECTED in t.user_attrs]
    assert all(t.params["width"] > 6 for t in rejected)
    assert all(t.params.get("width", 0) <= 6 for t in complete + pruned)
    # ... and every trained one carries its cost before training and as trained.
    for t in complete:
        cost = 500.0 if t.params["kind"] == "slim" else 1000.0 * t.params["width"]
        assert t.values == [pytest.approx(t.params["x"]), cost]
        assert t.user_attrs[ATTR_STATS]["params"] == cost
        assert list(t.constraints.values()) == [cost - 6000]
    for t in pruned:
        assert t.values is None, "Optuna keeps no values of a stopped multi-objective trial"
    # The front: archtune's, Optuna's and the record's are the same trials, none stopped.
    front = [t.number for t in study.best_trials]
    plain = optuna.load_study(study_name="front", storage=db_url)
    assert front == sorted(t.number for t in plain.best_trials)
    record = load_study_record(open_storage(db_url), "front")
    assert [t.number for t in record.front] == front
    assert not set(front) & {t.number for t in pruned}
    for t in complete:
        dominated = any(
            o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
            for o in complete
        )
        assert (t.number in front) != dominated
    run = json.loads(plain.user_attrs["archtune:run"])
    assert run["controller"] == {"name": "nsga2", "seed": 0, "options": {"population_size": 8}}
    # The command line lists the front first.
    capsys.readouterr()
    assert main(["show", "front", "--storage", db_url]) == 0
    out = capsys.readouterr().out
    assert out.index("front: Pareto front") < out.index("front: the other trials")
    shown = out[: out.index("front: the other trials")]
    assert all(f"│ {n} " in shown for n in front)
    assert f"Pareto front of 'front': {len(front)} trial(s)" in out
    assert main(["ls", "--storage", db_url]) == 0
    assert f"front of {len(front)}" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_resume_continues_the_front_and_answers_repeats_from_the_record(
    db_url: str, tmp_path
) -> None:
    space = SearchSpace({"x": Categorical([0.4, 0.6, 0.8]), "kind": "slim", "width": 1})
    study = Study.create("again", space, storage=db_url, **TWO)
    trainer = CostTrainer(epochs=2, seconds=0.0)
    options = {"run_dir": str(tmp_path / "runs"), "progress": False, "max_concurrent": 1}
    study.run(trainer, "random", num_trials=2, **options)
    run = json.loads(study.optuna.user_attrs["archtune:run"])
    study.optuna.set_user_attr("archtune:run", json.dumps({**run, "num_trials": 3}))
    again = Study.load("again", db_url)
    assert again.resume(progress=False) == 1
    trained = [t for t in again.trials if "archtune:repeat_of" not in t.user_attrs]
    assert sorted(t.params["x"] for t in trained) == [0.4, 0.6, 0.8], "each trained once"
    # Same cost, so the best score is the front (with any repeat of it, as Optuna counts).
    assert {t.params["x"] for t in again.best_trials} == {0.8}
    for t in again.trials:
        assert t.state == TrialState.COMPLETE and len(t.values) == 2


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_the_multi_objective_example_runs_with_a_tiny_budget(tmp_path) -> None:
    from studies.experiment import load_experiment
    from trainers import ImageClassifier

    root = Path(__file__).resolve().parents[2]
    exp = load_experiment(str(root / "examples" / "digits_multi_objective.py"))
    exp = exp.replace(
        trainer=ImageClassifier(dataset="digits", epochs=2),
        num_trials=3,
        scheduler_options={"grace_period": 1},
        storage=f"sqlite:///{tmp_path / 'front.db'}",
    )
    study = exp.run(run_dir=str(tmp_path / "runs"), progress=False)
    trained = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(trained) == 3 and study.best_trials
    for t in study.best_trials:
        val_acc, params = t.values
        assert 0.0 <= val_acc <= 1.0 and 0 < params <= 300_000
        assert t.params["train/optimizer"] == "sgd" or "train/momentum" not in t.params
    assert (
        main(["report", "digits-front", "--storage", exp.storage, "-o", str(tmp_path / "r.html")])
        == 0
    )
    assert "digits-front" in (tmp_path / "r.html").read_text()


def test_repeats_and_stopped_trials_carry_their_constraint_values(db_url: str) -> None:
    from studies.recorder import Recorder

    storage = open_storage(db_url)
    space = SearchSpace(
        {"x": Categorical([0.5, 0.7]), "kind": Categorical(["wide"]), "width": Int(2, 3)},
        constraints=[Constraint("params", max=2500)],
    )
    study = optuna.create_study(
        study_name="rep",
        storage=storage.optuna,
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    trainer = CostTrainer(epochs=2)
    rec = Recorder(
        study,
        storage,
        space,
        Objectives.parse(["score", "params"], ["maximize", "minimize"]),
        budget=lambda c: 2,
        num_trials=3,
        stats=lambda config, metrics: trainer.model_stats(config, space, metrics),
        reuse=True,
    )
    first = rec.ask("a")  # width 3 (3000 params) is rejected: width 2 trains
    assert first["width"] == 2
    rec.result("a", {"epoch": 1, "score": first["x"]})
    rec.complete("a", {"epoch": 2, "score": first["x"], "params": 2000.0})
    study.enqueue_trial(dict(first))  # proposed again: answered from the record
    second = rec.ask("b")
    assert second["x"] != first["x"] and second["width"] == 2
    rec.complete("b", {"epoch": 1, "score": 0.1})  # stopped at epoch 1 by a scheduler
    rec.close()
    by_state: dict[str, list] = {}
    for t in optuna.load_study(study_name="rep", storage=db_url).trials:
        by_state.setdefault(t.state.name, []).append(t)
    trained, *repeats = by_state["COMPLETE"]
    assert dict(trained.constraints) == {"0:params": -500.0}
    assert repeats and all(t.user_attrs["archtune:repeat_of"] == trained.number for t in repeats)
    assert all(dict(t.constraints) == {"0:params": -500.0} for t in repeats)
    (stopped,) = by_state["PRUNED"]
    assert dict(stopped.constraints) == {"0:params": -500.0}, "from the stats before training"
    rejected = [t for t in by_state["FAIL"] if ATTR_REJECTED in t.user_attrs]
    assert rejected and all(dict(t.constraints) == {"0:params": 500.0} for t in rejected)


def test_without_a_feasible_trial_there_is_no_best_trial(db_url: str) -> None:
    from search.optuna_access import set_constraints

    study = Study.create("one", _space(limit=1000), objective="score", storage=db_url)
    for x, excess in ((0.9, 500.0), (0.5, -100.0)):
        trial = study.optuna.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        set_constraints(trial, {"0:params": excess})
        study.optuna.tell(trial, x)
    best = Study.load("one", db_url).best_trial
    assert best is not None and best.value == 0.5, "the infeasible 0.9 is not the best"
    assert load_study_record(open_storage(db_url), "one").best.value == 0.5
    other = Study.create("none", _space(limit=1000), objective="score", storage=db_url)
    trial = other.optuna.ask()
    set_constraints(trial, {"0:params": 1.0})
    other.optuna.tell(trial, 1.0)
    assert other.best_trial is None and other.best_config() is None
    assert load_study_record(open_storage(db_url), "none").best is None


def test_a_study_begun_without_constraint_values_gets_none_on_new_trials(db_url: str) -> None:
    """An archtune before this one recorded no constraint values; Optuna's GP refuses a
    study where only some trials carry them, so none are added to such a study."""
    from studies.recorder import Recorder

    storage = open_storage(db_url)
    space = _space(limit=6000)
    old = optuna.create_study(
        study_name="old", storage=storage.optuna, directions=["maximize", "minimize"]
    )
    for x in (0.2, 0.4, 0.6):
        old.enqueue_trial({"x": x, "kind": "slim"})
        trial = old.ask()
        suggest(trial, space)
        old.tell(trial, [x, 500.0])
    study = optuna.load_study(
        study_name="old", storage=storage.optuna, sampler=ControllerSpec("gp", seed=0).build()
    )
    trainer = CostTrainer()
    rec = Recorder(
        study,
        storage,
        space,
        Objectives.parse(["score", "params"], ["maximize", "minimize"]),
        budget=lambda c: 1,
        num_trials=2,
        stats=lambda config, metrics: trainer.model_stats(config, space, metrics),
    )
    for key in ("a", "b"):
        config = rec.ask(key)  # GP would raise on mixed constraint names
        params = trainer.model_stats(config, space, set())["params"]
        rec.complete(key, {"epoch": 1, "score": config["x"], "params": params})
    rec.close()
    assert all(not t.constraints for t in study.trials if t.state == TrialState.COMPLETE)


def test_statistics_that_fail_without_constraints_do_not_reject(db_url: str) -> None:
    from studies.recorder import Recorder

    storage = open_storage(db_url)
    study = optuna.create_study(
        study_name="s", storage=storage.optuna, directions=["maximize", "minimize"]
    )

    def broken(config, metrics):
        raise RuntimeError("cannot build")

    rec = Recorder(
        study,
        storage,
        _space(),
        Objectives.parse(["score", "params"], ["maximize", "minimize"]),
        budget=lambda c: 1,
        num_trials=1,
        stats=broken,
    )
    assert rec.ask("a") is not None and rec.rejected == 0
    rec.close()


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_stopped_trial_of_a_front_goes_on_from_its_checkpoint(db_url: str, tmp_path) -> None:
    """resume_stopped with several objectives: Optuna keeps no curve of a multi-objective
    trial, so the stopped trial's last epoch is read from archtune's metric rows."""
    from studies.records import ATTR_RESUMED_FROM
    from tests.studies.toy import DyingTrainer

    class Resuming(DyingTrainer):  # checkpoints every epoch, reports where it started
        metrics = ("epoch", "score", "resumed_from")

    trainer = Resuming(str(tmp_path), die_after=0, epochs=4)

    def run(xs: tuple[float, ...]) -> Study:
        study = Study.create(
            "mo-resume",
            SearchSpace({"x": Float(0.0, 1.0)}),
            ["score", "resumed_from"],
            ["maximize", "minimize"],
            storage=db_url,
            load_if_exists=True,
        )
        for x in xs:
            study.optuna.enqueue_trial({"x": x})
        study.run(
            trainer,
            "random",
            num_trials=len(xs),
            max_concurrent=1,
            scheduler="asha",
            resume_stopped=True,
            run_dir=str(tmp_path / "runs"),
            progress=False,
        )
        return study

    study = run((0.9, 0.1, 0.1))
    _, stopped, judged = study.optuna.trials
    assert stopped.state == TrialState.PRUNED
    assert judged.user_attrs[ATTR_RESUMED_FROM] == stopped.number
    assert judged.state == TrialState.PRUNED
    record = load_study_record(open_storage(db_url), "mo-resume")
    assert record.trials[judged.number].metrics == {}, "judged again at epoch 1, not trained"
    run((0.1,))  # a fresh ASHA lets it go on
    again = study.optuna.trials[-1]
    assert again.user_attrs[ATTR_RESUMED_FROM] == judged.number
    assert again.state == TrialState.COMPLETE and again.values == [0.1, 1.0]
    record = load_study_record(open_storage(db_url), "mo-resume")
    assert record.trials[again.number].metrics["resumed_from"] == [(2, 1), (3, 1), (4, 1)]
