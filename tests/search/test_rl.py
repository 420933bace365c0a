"""The policy-gradient controller: proposals, seeding, rebuilt state, learning, bad trials."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

import search.rl  # registers "rl"
from search import list_controllers, make_controller
from search.pareto import hypervolume, pareto_reward
from search.rl import ReinforceSampler, _Actions
from spaces import Categorical, Float, Int, SearchSpace
from spaces.optuna_adapter import suggest

MIXED = SearchSpace(
    {
        "block": Categorical(["basic", "bottleneck"]),
        "depth": Int(1, 40),
        "width": Int(8, 512, log=True),
        "groups": Int(1, 33, step=4),
        "lr": Float(1e-5, 1.0, log=True),
        "drop": Float(0.0, 0.5),
        "prune": Float(0.0, 0.8, step=0.1),
        "expansion": Int(2, 6, when={"block": "bottleneck"}),
        "act": Categorical(["relu", "gelu"], when={"block": "bottleneck"}),
    }
)
# One best choice per decision ("a", 7, x near 0.85): the score is how many are right.
TOY = SearchSpace(
    {f"c{i}": Categorical(list("abcd")) for i in range(4)} | {"n": Int(0, 9), "x": Float(0.0, 1.0)}
)


def toy_score(c: dict[str, Any]) -> float:
    right = sum(c[f"c{i}"] == "a" for i in range(4)) + (c["n"] == 7)
    return right + 1 - abs(c["x"] - 0.85)


def run(
    sampler: optuna.samplers.BaseSampler,
    n: int,
    space: SearchSpace = TOY,
    score: Callable[[dict[str, Any]], float] = toy_score,
    direction: str = "maximize",
) -> optuna.Study:
    sign = 1.0 if direction == "maximize" else -1.0
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(lambda t: sign * score(suggest(t, space)), n_trials=n)
    return study


def test_registered_and_made_by_name() -> None:
    assert "rl" in list_controllers()
    assert "Zoph" in list_controllers()["rl"]
    sampler = make_controller("rl", seed=0, learning_rate=0.1, bins=5)
    assert isinstance(sampler, search.rl.ReinforceSampler)
    assert (sampler.learning_rate, sampler.bins, sampler.batch_size) == (0.1, 5, 1)
    assert make_controller("rl", algorithm="ppo").batch_size == 8


def test_proposals_lie_in_the_space_and_follow_conditions() -> None:
    def score(c: dict[str, Any]) -> float:
        return c["lr"] + c["depth"] / 40

    study = run(ReinforceSampler(seed=0, bins=4), 80, MIXED, score)
    bottleneck = 0
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        config = MIXED.unflatten(t.params)  # raises for a value outside its parameter
        assert set(t.params) == set(MIXED.active(t.params))
        assert all(isinstance(t.params[k], int) for k in ("depth", "width", "groups"))
        bottleneck += config["block"] == "bottleneck"
    assert 0 < bottleneck < len(study.trials)


@pytest.mark.parametrize(
    "dist",
    [
        IntDistribution(1, 40),
        IntDistribution(1, 6),
        IntDistribution(1, 20, log=True),
        IntDistribution(8, 512, log=True),
        IntDistribution(1, 33, step=4),
        FloatDistribution(0.0, 0.8, step=0.1),
        FloatDistribution(0.0, 100.0, step=0.5),
        FloatDistribution(1e-5, 1.0, log=True),
        FloatDistribution(-2.0, 3.0),
    ],
)
def test_actions_cover_the_range_and_map_values_back(dist: Any) -> None:
    actions = _Actions(dist, bins=10)
    rng = np.random.default_rng(0)
    assert 2 <= actions.n <= 10
    seen = set()
    for a in range(actions.n):
        for _ in range(20):
            v = actions.value(a, rng)
            assert dist._contains(dist.to_internal_repr(v)), v
            assert actions.index(v) == a
            seen.add(v)
    assert actions.index(dist.low) == 0 and actions.index(dist.high) == actions.n - 1
    if dist.step is not None and (dist.high - dist.low) / dist.step < 10:  # exact grid
        assert actions.n == round((dist.high - dist.low) / dist.step) + 1
    if isinstance(dist, IntDistribution) and dist.step == 1 and dist.high - dist.low < 60:
        assert len(seen) == dist.high - dist.low + 1  # every integer can be drawn


def test_log_bins_are_equal_on_the_log_scale() -> None:
    actions = _Actions(FloatDistribution(1e-5, 1.0, log=True), bins=5)
    assert [actions.index(v) for v in (1e-5, 1e-4, 1e-3, 0.5e-1, 0.5)] == [0, 1, 2, 3, 4]


def proposals(seed: int, n: int = 25) -> list[dict[str, Any]]:
    return [t.params for t in run(ReinforceSampler(seed=seed), n, MIXED, lambda c: c["lr"]).trials]


def test_same_seed_same_sequence() -> None:
    assert proposals(3) == proposals(3)
    assert proposals(3) != proposals(4)


def test_unseeded_samplers_draw_their_own_seed() -> None:
    assert ReinforceSampler().seed != ReinforceSampler().seed


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_reloaded_sampler_makes_the_same_next_proposal(kind: str, db_url: str) -> None:
    storage = optuna.storages.InMemoryStorage() if kind == "memory" else db_url
    study = optuna.create_study(
        study_name="s", storage=storage, direction="maximize", sampler=ReinforceSampler(seed=5)
    )
    study.optimize(lambda t: toy_score(suggest(t, TOY)), n_trials=20)
    proposal = suggest(study.ask(), TOY)  # by the sampler that ran the study (warm cache)

    reloaded = optuna.load_study(study_name="s", storage=storage, sampler=ReinforceSampler(seed=5))
    running = reloaded.trials[20]  # RUNNING, so not part of the history it learns from
    again = {
        name: reloaded.sampler.sample_independent(reloaded, running, name, dist)
        for name, dist in running.distributions.items()
    }
    assert again == proposal

    copy = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=5))
    copy.add_trials(study.trials[:20])  # the same history in another study, end to end
    assert suggest(copy.ask(), TOY) == proposal


def test_incremental_replay_equals_a_rebuild_and_resume_changes_nothing() -> None:
    one = ReinforceSampler(seed=2)
    study = run(one, 40)
    resumed = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=2))
    for _ in range(5):  # a new sampler instance every 8 trials, as after a crash
        resumed.sampler = ReinforceSampler(seed=2)
        resumed.optimize(lambda t: toy_score(suggest(t, TOY)), n_trials=8)
    assert [t.params for t in resumed.trials] == [t.params for t in study.trials]
    fresh = ReinforceSampler(seed=2).action_probabilities(study)
    warm = one.action_probabilities(study)
    assert fresh.keys() == warm.keys()
    for name in fresh:
        np.testing.assert_allclose(fresh[name], warm[name], rtol=1e-12)


@pytest.mark.parametrize(
    ("algorithm", "direction"),
    [
        ("reinforce", "maximize"),
        ("reinforce", "minimize"),
        ("ppo", "maximize"),
        ("ppo", "minimize"),
    ],
)
def test_policy_learns_the_best_choices_and_beats_random_search(
    algorithm: str, direction: str
) -> None:
    # 60 trials; the best of 6 (4 x 1 right choice of 4, 1 of 10 ints, x near 0.85).
    sign = 1.0 if direction == "maximize" else -1.0
    p_best, best, best_random = [], [], []
    for seed in range(5):
        sampler = ReinforceSampler(seed=seed, algorithm=algorithm)
        study = run(sampler, 60, direction=direction)
        probs = sampler.action_probabilities(study)
        p_best.append(np.mean([probs[f"c{i}"][0] for i in range(4)]))
        best.append(sign * study.best_value)
        random = run(optuna.samplers.RandomSampler(seed=seed), 60, direction=direction)
        best_random.append(sign * random.best_value)
    assert np.median(p_best) > 0.5  # uniform is 0.25; 0.74-0.89 over 6 groups of seeds
    rl, rs = np.median(best), np.median(best_random)
    assert rl > rs + 0.5, (rl, rs)  # 5.0-5.95 against 3.65-4.6 over 6 groups of seeds


def fail_on_d(how: str) -> Callable[[optuna.Trial], float]:
    """An objective whose choice "d" fails in the way ``how`` names; "a" is best."""

    def objective(trial: optuna.Trial) -> float:
        c = trial.suggest_categorical("c", list("abcd"))
        if c != "d":
            return {"a": 1.0, "b": 0.5, "c": 0.0}[c]
        if how == "raise":
            raise RuntimeError("out of memory")
        if how == "nan":
            return math.nan  # Optuna records it FAIL
        if how == "pruned-nan":
            trial.report(math.nan, 1)
        raise optuna.TrialPruned()

    return objective


@pytest.mark.parametrize("how", ["raise", "nan", "pruned-nan"])
def test_failed_and_nan_trials_teach_the_policy_to_avoid_them(how: str) -> None:
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(fail_on_d(how), n_trials=40, catch=(RuntimeError,))
    assert any(t.state == TrialState.FAIL for t in study.trials) == (how != "pruned-nan")
    probs = sampler.action_probabilities(study)["c"]
    assert probs[3] < 0.1 and probs[0] > 0.5


def test_constraint_rejected_proposals_are_avoided() -> None:
    # What studies.recorder does: a proposal breaking a constraint is told FAIL at once.
    space = SearchSpace({"width": Categorical([16, 32, 64, 128]), "lr": Float(1e-3, 1.0)})
    sampler = ReinforceSampler(seed=1)
    study = optuna.create_study(sampler=sampler)
    for _ in range(60):
        trial = study.ask()
        config = suggest(trial, space)
        if config["width"] == 128:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, config["lr"])
    rejected = [t.params["width"] == 128 for t in study.trials]
    assert sum(rejected[30:]) <= 3  # uniform would reject 7.5 of 30
    assert sampler.action_probabilities(study)["width"][3] < 0.1


def test_fail_reward_none_skips_failed_trials() -> None:
    sampler = ReinforceSampler(seed=0, fail_reward=None)
    study = optuna.create_study(sampler=sampler)
    study.optimize(fail_on_d("raise"), n_trials=30, catch=(RuntimeError,))
    skipped = optuna.create_study(sampler=ReinforceSampler(seed=0, fail_reward=None))
    skipped.add_trials([t for t in study.trials if t.state != TrialState.FAIL])
    np.testing.assert_allclose(
        sampler.action_probabilities(study)["c"],
        skipped.sampler.action_probabilities(skipped)["c"],
    )


def test_pruned_trials_count_by_their_last_value_or_are_skipped_without_one() -> None:
    def objective(trial: optuna.Trial) -> float:
        c = trial.suggest_categorical("c", list("abcd"))
        if trial.number % 2 or c == "b":
            trial.report(1.0 if c == "b" else 0.0, 1)  # low fidelity, b best
            raise optuna.TrialPruned()
        raise optuna.TrialPruned()  # before any report: nothing to learn

    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=40)
    assert all(t.state == TrialState.PRUNED for t in study.trials)
    assert sampler.action_probabilities(study)["c"][1] > 0.5
    copy = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    copy.add_trials([t for t in study.trials if t.intermediate_values])
    assert len(copy.trials) < len(study.trials)
    np.testing.assert_allclose(
        sampler.action_probabilities(study)["c"], copy.sampler.action_probabilities(copy)["c"]
    )


def test_parallel_asks_do_not_wait_and_differ() -> None:
    sampler = ReinforceSampler(seed=0)
    study = run(sampler, 20)
    before = sampler.action_probabilities(study)
    running = [study.ask() for _ in range(4)]
    configs = [suggest(t, TOY) for t in running]
    assert len({tuple(sorted(c.items())) for c in configs}) == 4
    after = sampler.action_probabilities(study)  # RUNNING trials do not count
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    for t, c in zip(running, configs, strict=True):
        study.tell(t, toy_score(c))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 24


def test_conditional_decisions_learn_only_when_active() -> None:
    space = SearchSpace(
        {
            "block": Categorical(["basic", "bottleneck"]),
            "e": Int(2, 5, when={"block": "bottleneck"}),
        }
    )
    sampler = ReinforceSampler(seed=0)
    study = run(sampler, 40, space, lambda c: float(c["block"] == "bottleneck" and c["e"] == 4))
    probs = sampler.action_probabilities(study)
    assert probs["block"][1] > 0.6
    assert probs["e"].shape == (4,) and probs["e"].argmax() == 2


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("learning_rate", 0, "learning_rate must be a positive"),
        ("learning_rate", math.inf, "learning_rate"),
        ("entropy_weight", -0.1, "entropy_weight must be >= 0"),
        ("baseline_decay", 1.0, r"baseline_decay must lie in \[0, 1\)"),
        ("bins", 1, "bins must be an int >= 2"),
        ("bins", 4.5, "bins"),
        ("algorithm", "a2c", "'reinforce' or 'ppo'"),
        ("batch_size", 0, "batch_size must be an int >= 1"),
        ("ppo_epochs", 0, "ppo_epochs"),
        ("ppo_clip", 1.5, r"ppo_clip must lie in \(0, 1\)"),
        ("fail_reward", math.nan, "fail_reward must be a finite number"),
        ("seed", -1, "seed must be a non-negative int"),
    ],
)
def test_bad_options_raise_with_a_fix(option: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_controller("rl", **{option: value})


def test_unknown_option_is_refused() -> None:
    with pytest.raises(TypeError, match="learning_rate"):
        make_controller("rl", lr=0.1)


# Several objectives -------------------------------------------------------------------
def test_pareto_reward_ranks_a_dominating_trial_above_one_it_dominates() -> None:
    earlier = np.array([[0.2, 0.8], [0.8, 0.2], [0.6, 0.6], [0.9, 0.9]])
    front, lo, hi = earlier[:3], earlier.min(axis=0), earlier.max(axis=0)

    def reward(loss: list[float]) -> float:
        return pareto_reward(earlier, front, np.array(loss), lo, hi)

    # A new front member (a share of the hypervolume) against one [0.6, 0.6] dominates.
    assert 0 < reward([0.4, 0.4]) <= 1 and reward([0.7, 0.7]) == pytest.approx(-1 / 4)
    # Dominated by 1 of 4 against dominated by all 4; nobody's first trial learns.
    assert reward([0.7, 0.7]) > reward([0.95, 0.95]) == pytest.approx(-1.0)
    # A bigger hypervolume gain, a bigger reward; a copy of a front member adds none.
    assert reward([0.1, 0.1]) > reward([0.4, 0.4]) and reward([0.6, 0.6]) == 0.0
    assert pareto_reward(earlier[:0], front[:0], np.array([1.0, 1.0]), lo, hi) == 0.0


def test_pareto_reward_never_prefers_a_dominated_trial() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        earlier = rng.random((int(rng.integers(1, 12)), 2))
        earlier = np.vstack([earlier, [[0.0, 1.0], [1.0, 0.0]]])  # p, q inside the range
        keep = [not ((earlier <= e).all(1) & (earlier < e).any(1)).any() for e in earlier]
        p = rng.random(2)
        q = p + rng.random(2) * 0.2 + 1e-3  # p dominates q
        lo, hi = np.minimum(earlier.min(0), q), np.maximum(earlier.max(0), q)
        assert pareto_reward(earlier, earlier[keep], p, lo, hi) >= pareto_reward(
            earlier, earlier[keep], q, lo, hi
        )


def test_hypervolume_matches_an_exact_count() -> None:
    rng = np.random.default_rng(1)
    for m in (2, 3):
        points = rng.integers(0, 5, size=(6, m)).astype(float)
        ref = np.full(m, 5.0)
        cells = np.stack(np.meshgrid(*[np.arange(5.0)] * m, indexing="ij"), -1).reshape(-1, m)
        covered = [(points <= c).all(axis=1).any() for c in cells]  # unit cells [c, c+1)
        assert hypervolume(points, ref) == pytest.approx(sum(covered))


def two_objectives(c: dict[str, Any]) -> tuple[float, float]:
    """Per decision: "a" gains 1 at cost 1, "b" costs nothing, "c" and "d" cost 1 for
    nothing or a loss, so the front is every mix of "a" and "b" only."""
    gain = sum({"a": 1, "b": 0, "c": 0, "d": -1}[c[f"c{i}"]] for i in range(4))
    cost = sum(c[f"c{i}"] != "b" for i in range(4))
    return float(gain), float(cost)


def test_policy_moves_towards_the_front_of_two_objectives() -> None:
    space = SearchSpace({f"c{i}": Categorical(list("abcd")) for i in range(4)})
    on_front = {"rl": [], "random": []}
    for seed in range(3):
        for name in on_front:
            study = optuna.create_study(
                directions=["maximize", "minimize"], sampler=make_controller(name, seed=seed)
            )
            study.optimize(lambda t: two_objectives(suggest(t, space)), n_trials=80)
            last = [t.params for t in study.trials[-30:]]
            on_front[name].append(np.mean([set(p.values()) <= {"a", "b"} for p in last]))
    # Uniform proposals land on the front 1 time in 16; the policy, after 50 trials, in 3+.
    assert np.mean(on_front["rl"]) > 0.25 > 2 * np.mean(on_front["random"])
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda t: two_objectives(suggest(t, space)), n_trials=80)
    for p in sampler.action_probabilities(study).values():  # "c" and "d" are dominated
        assert p[2] + p[3] < 0.3


def test_multi_objective_policy_is_rebuilt_from_the_study() -> None:
    space = SearchSpace({f"c{i}": Categorical(list("abcd")) for i in range(4)})
    sampler = ReinforceSampler(seed=4)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def objective(t: optuna.Trial) -> tuple[float, float]:
        if t.number % 9 == 4:
            raise optuna.TrialPruned()  # no values: skipped
        if t.number % 11 == 6:
            return math.nan, 1.0  # counts as FAIL
        return two_objectives(suggest(t, space))

    study.optimize(objective, n_trials=40)
    copy = optuna.create_study(
        directions=["maximize", "minimize"], sampler=ReinforceSampler(seed=4)
    )
    copy.add_trials(study.trials)
    for name, p in sampler.action_probabilities(study).items():
        np.testing.assert_allclose(p, copy.sampler.action_probabilities(copy)[name])
    # The same seed over the same history: the same next proposal.
    asked = [s.ask() for s in (study, copy)]
    assert asked[0].number == asked[1].number == 40
    assert suggest(asked[0], space) == suggest(asked[1], space)
