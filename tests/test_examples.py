"""Every recipe in examples/ runs, and records what its header says it shows.

Each study file is loaded as ``archtune run`` loads it (``load_experiment``), given a tiny
budget the way ``--trials`` does (``Experiment.replace``: 2 trials; the trainer rebuilt
from its own ``spec()`` with 2 epochs), and run in this process through the session's
real Ray (``ray_session``) into a scratch SQLite file, or into PostgreSQL for the cluster
recipe (``pg_url``: skipped without ``ARCHTUNE_TEST_POSTGRES_URL``, failed under
``CI=true``). The distillation recipe distils from the best trial of the ``digits_resnet``
recipe's study in the same database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studies import Study
from studies.experiment import Experiment, StudyFileError, load_experiment
from studies.records import ATTR_RUN, ATTR_TRAINER, StudyRecord
from studies.teacher import resolve_teacher
from trainers import trainer_from_json
from trainers.base import ATTR_CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EPOCHS = 2
TRIALS = 2

slow = pytest.mark.slow
on_ray = pytest.mark.usefixtures("ray_session")


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """What the recipes read from the environment: a scratch folder for the drawn images,
    no cluster address (the session's local Ray)."""
    monkeypatch.setenv("ARCHTUNE_SHAPES_DIR", str(tmp_path_factory.getbasetemp() / "shapes"))
    monkeypatch.delenv("ARCHTUNE_ADDRESS", raising=False)
    monkeypatch.delenv("ARCHTUNE_RUN_DIR", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def tiny(path: str, **changes: Any) -> Experiment:
    """The experiment of study file ``examples/<path>``, with 2 trials of 2 epochs."""
    experiment = load_experiment(str(EXAMPLES / path))
    trainer = experiment.trainer
    small = type(trainer)(**{**trainer.spec(), "epochs": EPOCHS})
    return experiment.replace(trainer=small, num_trials=TRIALS, **changes)


def run(experiment: Experiment) -> StudyRecord:
    """Run it; return its record, every trial of which ended (none left RUNNING)."""
    record = experiment.run(progress=False).record()
    assert len(record.trials) >= TRIALS
    assert {t.state for t in record.trials} <= {"COMPLETE", "PRUNED", "FAIL"}
    assert any(t.state == "COMPLETE" for t in record.trials), [t.error for t in record.trials]
    return record


def stored(study: str, url: str, attr: str) -> dict[str, Any]:
    return json.loads(Study.load(study, url).optuna.user_attrs[attr])


def last(t: Any, metric: str) -> float:
    return t.metrics[metric][-1][1]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One database for the recipes (each its own study), as their ``archtune.db``."""
    return f"sqlite:///{tmp_path_factory.mktemp('examples') / 'archtune.db'}"


# ---------------------------------------------------------------- every file


def test_every_recipe_loads_and_says_what_it_shows_and_how_to_run_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARCHTUNE_STORAGE", "postgresql://me@db.example/studies")
    names = set()
    for path in sorted(EXAMPLES.glob("*.py")):
        experiment = load_experiment(str(path))
        header = path.read_text().split('"""')[1]
        assert "Run it with::" in header, path.name
        assert f"archtune run examples/{path.name}" in header, path.name
        assert experiment.name not in names, f"{path.name}: two recipes share a study name"
        names.add(experiment.name)
    assert len(names) >= 7


def test_the_cluster_recipe_says_which_variable_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ARCHTUNE_STORAGE", raising=False)
    with pytest.raises(StudyFileError, match="Set ARCHTUNE_STORAGE"):
        load_experiment(str(EXAMPLES / "cluster_postgres.py"))


# ---------------------------------------------------------------- each recipe, on Ray


@pytest.fixture(scope="module")
def teacher_study(db: str) -> str:
    """The ``digits_resnet`` recipe's study: the distillation recipe's teacher."""
    run(tiny("digits_resnet.py", storage=db))
    return "digits-resnet"


@slow
@on_ray
def test_distillation_from_the_best_trial_of_an_earlier_study(db: str, teacher_study: str) -> None:
    best = Study.load(teacher_study, db).best_trial
    experiment = tiny("distill_densenet.py", storage=db)
    record = run(experiment)
    # The shortcut was resolved before the run; the study stores the trial's number.
    teacher = {"study": teacher_study, "trial": best.number}
    trainer = stored(record.name, db, ATTR_TRAINER)
    assert trainer["kwargs"]["teacher"] == teacher
    assert experiment.trainer._teacher_path == best.user_attrs[ATTR_CHECKPOINT]
    for t in record.trials:
        assert t.params["train/distill_alpha"] > 0, "every trial distils"
        assert t.params["model/blocks"] >= 1 and "model/depth" not in t.params, "DenseNets"
    # A resume rebuilds the trainer from what was stored, and finds the same teacher
    # (tests/studies/test_teacher.py pins the lookup; a resume through Ray costs 30 s).
    again = trainer_from_json(trainer)
    found = resolve_teacher(again, db)
    assert found is not None and found.checkpoint == best.user_attrs[ATTR_CHECKPOINT]
    assert found.architecture["family"] == "resnet"
    assert again.identity() == experiment.trainer.identity(), "its interrupted trials go on"


@slow
@on_ray
def test_pruning_and_mixed_precision(db: str) -> None:
    record = run(tiny("prune_mixed_precision.py", storage=db))
    finished = [t for t in record.trials if t.state == "COMPLETE"]
    pruned = [t for t in finished if t.params["train/prune_ratio"] > 0]
    assert pruned, [t.params for t in finished]
    for t in pruned:
        assert last(t, "params") < last(t, "dense_params"), "pruned below the dense network"
        assert last(t, "flops") < last(t, "dense_flops")
    for t in finished:
        assert t.params["train/precision"] in ("fp32", "bf16", "fp16")
        assert "skipped_steps" in t.metrics, "the loss scaler's count is recorded"
        if t.params["train/prune_ratio"] == 0:
            assert "dense_params" not in t.metrics


@slow
@on_ray
def test_the_rl_controller_on_a_conditional_resnet_space(db: str) -> None:
    record = run(tiny("rl_conditional_resnet.py", storage=db))
    assert stored(record.name, db, ATTR_RUN)["controller"]["name"] == "rl"
    for t in record.trials:
        p = t.params
        assert ("model/se_ratio" in p) == p["model/se"], p
        assert ("model/depth_3" in p) == (p["model/stages"] >= 3), p
        assert ("train/momentum" in p) == (p["train/optimizer"] == "sgd"), p


@slow
@on_ray
def test_a_custom_dataset_and_a_custom_trainer(db: str, tmp_path_factory) -> None:
    record = run(tiny("custom_data_trainer.py", storage=db))
    folder = tmp_path_factory.getbasetemp() / "shapes"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["circle", "cross", "square"]
    assert len(list((folder / "circle").glob("*.png"))) == 100
    trainer = stored(record.name, db, ATTR_TRAINER)
    assert trainer["class"].endswith(":ShapesMLP")
    assert trainer["file"] == str(EXAMPLES / "custom_data_trainer.py"), "resume finds it"
    assert trainer["kwargs"] == {"data_dir": str(folder), "epochs": EPOCHS, "seed": 0}
    for t in record.trials:
        if t.state == "COMPLETE":
            assert last(t, "params") > 0 and sorted(dict(t.metrics["val_acc"])) == [1, 2]
    assert max(t.value for t in record.trials if t.value is not None) > 0.5, "chance is 1/3"


@slow
@on_ray
def test_several_objectives_give_a_front(db: str) -> None:
    record = run(tiny("digits_multi_objective.py", storage=db))
    assert record.objectives == ["val_acc", "params"]
    front = Study.load(record.name, db).best_trials
    assert front and [t.number for t in front] == [t.number for t in record.front]
    assert all(len(t.values) == 2 and t.values[1] <= 300_000 for t in front)


@pytest.fixture
def cluster_env(monkeypatch: pytest.MonkeyPatch, pg_url: str, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv("ARCHTUNE_STORAGE", pg_url)
    monkeypatch.setenv("ARCHTUNE_RUN_DIR", str(tmp_path / "runs"))
    yield pg_url


@slow
@on_ray
def test_a_cluster_run_recorded_in_postgresql(cluster_env: str, tmp_path: Path) -> None:
    experiment = tiny("cluster_postgres.py")
    assert experiment.storage == cluster_env, "the storage comes from ARCHTUNE_STORAGE"
    assert experiment.settings.run_dir == str(tmp_path / "runs")
    assert experiment.settings.address is None, "no ARCHTUNE_ADDRESS: the local Ray"
    record = run(experiment)
    assert Study.load(record.name, cluster_env).storage.url.startswith("postgresql")
    for t in record.trials:
        assert t.state != "FAIL", t.error
        assert t.node, "each trial records the node it ran on"
    assert (tmp_path / "runs").is_dir(), "checkpoints went to ARCHTUNE_RUN_DIR"
