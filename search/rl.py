"""A policy-gradient controller: REINFORCE with a moving-average baseline, or PPO.

The controller keeps one softmax distribution per decision and learns it from the
trials' results, as the controller of Zoph & Le, "Neural Architecture Search with
Reinforcement Learning" (ICLR 2017) and of ENAS (Pham et al., "Efficient Neural
Architecture Search via Parameter Sharing", ICML 2018). ``algorithm="ppo"`` replaces
the plain policy gradient by the clipped surrogate of Schulman et al., "Proximal Policy
Optimization Algorithms" (2017), as Zoph et al. did in NASNet (CVPR 2018).

**A factorised policy, not an RNN.** Zoph & Le sample the decisions one after the other
from an LSTM, so each decision can depend on the earlier ones. Here every decision
(parameter name and distribution) has its own logits. Reasons: HPO/NAS budgets are tens
to a few hundred trials, far too few to train an LSTM (Zoph & Le used 12,800
architectures); the parameters are few and each gets a direct gradient; and
conditional spaces need no extra machinery, since Optuna asks only for the active
decisions (define-by-run) and a decision gets gradient only from the trials where it
was active. Dependence between decisions is what is given up.

**Actions.** A categorical decision picks one of its choices. A numeric one picks one of
``bins`` intervals of its range, equal on a log scale for ``log=True``, then draws
uniformly inside it; an integer or stepped range with at most ``bins`` grid points gets
one action per point (exact), a larger grid is cut into ``bins`` runs of points.

**Rewards.** The objective is turned into a score (negated when minimising), and the
reward is the score's rank among the scores of the trials before it, mapped to
``[-1, 1]`` (ties count half): robust to the objective's scale and to outliers, which a
z-score is not. The advantage is the reward minus an exponential moving average of
past rewards (the baseline, ``baseline_decay``). A FAIL trial (a crash, a NaN, or a
proposal rejected by the space's constraints) gets ``fail_reward`` (-1 by default, the
worst rank), so the policy learns to avoid what fails; ``fail_reward=None`` skips them.
A PRUNED trial is scored by its last intermediate value, which Optuna keeps as its
value: a low-fidelity result, usually worse than full-budget ones and so ranked low,
as the scheduler judged it. It joins the ranking, so a study whose scheduler stops most
trials early learns from the start. A PRUNED trial with no value is skipped, one whose
last report was NaN counts as FAIL.

**Several objectives.** With several directions a trial is rewarded as SMS-EMOA selects
(Beume, Naujoks & Emmerich, EJOR 2007): minus the share of earlier trials that dominate
it, or, on the front, its share of the front's hypervolume (:mod:`search.pareto`, which
gives the reward, its papers and how it was chosen). A trial of a multi-objective study
has no intermediate values, so a PRUNED one is skipped; FAIL and NaN get ``fail_reward``.

**State that can be rebuilt.** The policy is a pure function of the finished trials
replayed in a fixed order (by ``datetime_complete``, then number): a resumed study, a
reloaded sampler or a second driver continues the same policy. The replay is
incremental: the policy after the first ``k`` trials is cached with their numbers and
completion times and extended while that list stays a prefix, and rebuilt otherwise.
The policy changes only between batches, so with one driver the trials of a batch are
all drawn from the policy PPO's probability ratio is taken against; with parallel
workers some were drawn from an older one, and the ratio is then approximate.

**Randomness.** Each decision of trial ``n`` is drawn from
``np.random.default_rng([seed, n, crc32(name)])``, so a new sampler with the same seed
over the same storage makes the same next proposal, and parallel asks (RUNNING trials
are not waited for) differ through their trial numbers.

Example:
    >>> import optuna
    >>> sampler = ReinforceSampler(seed=0)
    >>> study = optuna.create_study(direction="maximize", sampler=sampler)
    >>> study.optimize(lambda t: float(t.suggest_categorical("c", ["a", "b"]) == "b"), 40)
    >>> bool(sampler.action_probabilities(study)["c"][1] > 0.5)
    True
"""

from __future__ import annotations

import bisect
import math
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from search.base import DefineByRunSampler, resolve_seed
from search.pareto import ParetoHistory
from search.registry import register_controller

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class _Actions:
    """The discrete actions of one distribution: value -> action, and action -> value."""

    def __init__(self, dist: BaseDistribution, bins: int) -> None:
        self.dist = dist
        self.starts: np.ndarray | None = None  # grid-index runs of a discrete range
        if isinstance(dist, CategoricalDistribution):
            self.n = len(dist.choices)
            return
        low, high = float(dist.low), float(dist.high)  # type: ignore[attr-defined]
        self.log: bool = dist.log  # type: ignore[attr-defined]
        step = dist.step  # type: ignore[attr-defined]
        if step is None:  # a continuous float
            self.n = bins if high > low else 1
            self.lo, self.hi = (math.log(low), math.log(high)) if self.log else (low, high)
            return
        size = round((high - low) / step) + 1
        if size <= bins:
            starts = np.arange(size + 1)
        elif self.log:  # runs of grid points inside equal log intervals; empty ones dropped
            edges = np.exp(np.linspace(math.log(low), math.log(high), bins + 1))
            starts = np.ceil((edges - low) / step - 1e-9).astype(np.int64)
        else:
            starts = (np.arange(bins + 1) * size) // bins
        starts = np.clip(starts, 0, size)
        starts[0], starts[-1] = 0, size
        self.starts = np.unique(starts)
        self.n = len(self.starts) - 1

    def index(self, value: Any) -> int:
        """The action that produces ``value``."""
        dist = self.dist
        if isinstance(dist, CategoricalDistribution):
            return int(dist.to_internal_repr(value))
        if self.starts is not None:
            k = round((value - dist.low) / dist.step)  # type: ignore[attr-defined]
            return min(max(int(np.searchsorted(self.starts, k, side="right")) - 1, 0), self.n - 1)
        if self.n == 1:
            return 0
        t = math.log(value) if self.log else float(value)
        return min(max(int((t - self.lo) / (self.hi - self.lo) * self.n), 0), self.n - 1)

    def value(self, action: int, rng: np.random.Generator) -> Any:
        """A value of ``action``: the choice, a grid point of the run, or a point of the bin."""
        dist = self.dist
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[action]
        low, high = dist.low, dist.high  # type: ignore[attr-defined]
        if self.starts is not None:
            k = int(rng.integers(self.starts[action], self.starts[action + 1]))
            if isinstance(dist, IntDistribution):
                return int(low + k * dist.step)
            return min(float(low + k * dist.step), float(high))  # type: ignore[attr-defined]
        if self.n == 1:
            return float(low)
        t = self.lo + (action + rng.uniform()) * (self.hi - self.lo) / self.n
        return min(max(math.exp(t) if self.log else t, float(low)), float(high))


class _Decision:
    """The logits of one decision (a parameter name and distribution) and its actions."""

    __slots__ = ("actions", "logits")

    def __init__(self, actions: _Actions) -> None:
        self.actions = actions
        self.logits = np.zeros(actions.n)


@dataclass
class _Policy:
    """The learned state, a function of the trials replayed so far (``order``)."""

    order: tuple[tuple[int, datetime | None], ...] = ()  # (number, datetime_complete)
    decisions: dict[tuple[str, tuple[Any, ...]], _Decision] = field(default_factory=dict)
    latest: dict[str, _Decision] = field(default_factory=dict)  # by name, latest trial's
    baseline: float = 0.0
    scores: list[float] = field(default_factory=list)  # sorted scores so far
    pareto: ParetoHistory | None = None  # several objectives: the trials so far
    batch: list[tuple[float, list[tuple[_Decision, int]]]] = field(default_factory=list)


def _signature(dist: BaseDistribution) -> tuple[Any, ...]:
    """A cheap, hashable stand-in for ``dist`` (Optuna's own ``__eq__`` is slow)."""
    if isinstance(dist, CategoricalDistribution):
        return (CategoricalDistribution, dist.choices, tuple(map(type, dist.choices)))
    return (type(dist), dist.low, dist.high, dist.log, dist.step)  # type: ignore[attr-defined]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _entropy_grad(p: np.ndarray) -> np.ndarray:
    """Gradient of the entropy ``-sum p log p`` with respect to the logits."""
    logp = np.log(np.maximum(p, 1e-300))
    return -p * (logp - float(p @ logp))


@register_controller(
    "rl",
    "REINFORCE policy gradient with baseline and entropy bonus (Zoph & Le, 2017)",
    multi_objective=True,
)
class ReinforceSampler(DefineByRunSampler):
    """Learn a factorised softmax policy over the decisions with a policy gradient.

    See the module docstring for the policy, the rewards and how the state is rebuilt.
    Every finished trial is one sample; the policy is updated after each ``batch_size``
    of them (in replay order) with plain gradient ascent on the logits.

    Args:
        seed: Seed of the per-trial generators; None draws one at construction.
        learning_rate: Step size of the gradient ascent on the logits.
        entropy_weight: Weight of the entropy bonus, which keeps the policy exploring.
        baseline_decay: Decay of the exponential moving-average baseline, in ``[0, 1)``.
        bins: Number of actions a numeric range is cut into (at least 2).
        algorithm: ``"reinforce"`` (Williams, 1992; Zoph & Le, 2017) or ``"ppo"``
            (clipped surrogate, Schulman et al., 2017).
        batch_size: Trials per update; None means 1 for REINFORCE, 8 for PPO.
        ppo_epochs: Gradient steps PPO takes on each batch.
        ppo_clip: PPO's clipping range epsilon of the probability ratio, in ``(0, 1)``.
        fail_reward: Reward of a FAIL or NaN trial, on the rank scale ``[-1, 1]``; None
            skips them.

    Raises:
        ValueError: for an option out of range (the message says which values work).

    Registered as controller ``"rl"``; :func:`search.make_controller` passes the options.

    Example:
        >>> from search import make_controller
        >>> sampler = make_controller("rl", seed=1, algorithm="ppo", batch_size=4)
        >>> sampler.batch_size, sampler.algorithm
        (4, 'ppo')
    """

    # Randomness per (seed, trial number), state from the study: resumable with its seed.
    rebuildable = True

    def __init__(
        self,
        seed: int | None = None,
        learning_rate: float = 0.5,
        entropy_weight: float = 0.02,
        baseline_decay: float = 0.9,
        bins: int = 10,
        algorithm: str = "reinforce",
        batch_size: int | None = None,
        ppo_epochs: int = 4,
        ppo_clip: float = 0.2,
        fail_reward: float | None = -1.0,
    ) -> None:
        self.seed = resolve_seed(seed)
        _check_options(learning_rate, entropy_weight, baseline_decay, bins, algorithm)
        _check_options_ppo(batch_size, ppo_epochs, ppo_clip, fail_reward)
        self.learning_rate = float(learning_rate)
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.bins = int(bins)
        self.algorithm = algorithm
        self.batch_size = batch_size or (8 if algorithm == "ppo" else 1)
        self.ppo_epochs = int(ppo_epochs)
        self.ppo_clip = float(ppo_clip)
        self.fail_reward = None if fail_reward is None else float(fail_reward)
        self._policy = _Policy()
        self._actions: dict[tuple[Any, ...], _Actions] = {}  # by _signature
        self._synced_for: tuple[str, int] | None = None  # (study name, trial number)
        self._lock = threading.Lock()

    # BaseSampler -------------------------------------------------------------------
    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Draw one decision of ``trial`` from the policy, as of its first decision."""
        with self._lock:
            if self._synced_for != (study.study_name, trial.number):
                self._sync(study)
                self._synced_for = (study.study_name, trial.number)
            sig = _signature(param_distribution)
            decision = self._policy.decisions.get((param_name, sig))
            actions = decision.actions if decision else self._actions_of(sig, param_distribution)
            p = _softmax(decision.logits) if decision else np.full(actions.n, 1.0 / actions.n)
        rng = np.random.default_rng([self.seed, trial.number, zlib.crc32(param_name.encode())])
        return actions.value(int(rng.choice(actions.n, p=p)), rng)

    def reseed_rng(self) -> None:
        """Keep the seed: each trial's generator already differs by its trial number."""

    # Inspection --------------------------------------------------------------------
    def action_probabilities(self, study: optuna.Study) -> dict[str, np.ndarray]:
        """The policy's action probabilities after all finished trials of ``study``.

        Keyed by parameter name, for the distribution the latest trial gave that name;
        a numeric decision's entries are its bins in increasing order.
        """
        with self._lock:
            self._sync(study)
            self._synced_for = None
            return {name: _softmax(d.logits) for name, d in self._policy.latest.items()}

    # Replay ------------------------------------------------------------------------
    def _sync(self, study: optuna.Study) -> None:
        """Bring the policy up to date with the finished trials, incrementally."""
        trials = study.get_trials(deepcopy=False, states=_FINISHED)
        trials.sort(key=lambda t: (t.datetime_complete or datetime.max, t.number))
        order = tuple((t.number, t.datetime_complete) for t in trials)
        done = len(self._policy.order)
        if order[:done] != self._policy.order:
            self._policy, done = _Policy(), 0
        directions = study.directions
        for trial in trials[done:]:
            self._replay(trial, directions)
        self._policy.order = order

    def _replay(self, trial: FrozenTrial, directions: list[optuna.study.StudyDirection]) -> None:
        """Add one finished trial to the batch; update the policy when the batch is full."""
        policy = self._policy
        if len(directions) == 1:
            reward = self._reward(trial, directions[0])
        else:
            reward = self._reward_multi(trial, directions)
        if reward is None or not trial.distributions:
            return
        taken = []
        for name, dist in trial.distributions.items():
            sig = _signature(dist)
            decision = policy.decisions.get((name, sig))
            if decision is None:
                decision = policy.decisions[(name, sig)] = _Decision(self._actions_of(sig, dist))
            policy.latest[name] = decision
            taken.append((decision, decision.actions.index(trial.params[name])))
        policy.batch.append((reward, taken))
        if len(policy.batch) >= self.batch_size:
            self._update()

    def _reward(self, trial: FrozenTrial, direction: optuna.study.StudyDirection) -> float | None:
        """The rank reward in ``[-1, 1]``, ``fail_reward``, or None to skip the trial."""
        value = trial.value if trial.state != TrialState.FAIL else math.nan
        if trial.state == TrialState.PRUNED and value is None:  # no (finite) report
            # Optuna drops a NaN last report; with none at all there is nothing to learn.
            return self.fail_reward if trial.intermediate_values else None
        if value is None or math.isnan(value):
            return self.fail_reward
        score = -value if direction == optuna.study.StudyDirection.MINIMIZE else value
        scores = self._policy.scores
        if scores:
            below = bisect.bisect_left(scores, score) + bisect.bisect_right(scores, score)
            reward = below / len(scores) - 1.0
        else:
            reward = 0.0
        bisect.insort(scores, score)
        return reward

    def _reward_multi(
        self, trial: FrozenTrial, directions: list[optuna.study.StudyDirection]
    ) -> float | None:
        """The Pareto reward in ``[-1, 1]``, ``fail_reward``, or None to skip the trial."""
        if trial.state == TrialState.PRUNED:  # no values in a multi-objective study
            return None
        values = trial.values if trial.state == TrialState.COMPLETE else None
        if values is None or len(values) != len(directions) or any(map(math.isnan, values)):
            return self.fail_reward
        loss = np.array(
            [
                -v if d == optuna.study.StudyDirection.MAXIMIZE else v
                for v, d in zip(values, directions, strict=True)
            ],
            dtype=float,
        )
        policy = self._policy
        if policy.pareto is None:
            policy.pareto = ParetoHistory(len(directions))
        reward = policy.pareto.reward(loss)
        return reward

    def _update(self) -> None:
        """One policy update on the full batch, then move the baseline."""
        policy = self._policy
        batch, policy.batch = policy.batch, []
        advantages = [reward - policy.baseline for reward, _ in batch]
        for reward, _ in batch:
            policy.baseline = (
                self.baseline_decay * policy.baseline + (1.0 - self.baseline_decay) * reward
            )
        decisions = list(dict.fromkeys(d for _, taken in batch for d, _ in taken))
        ppo = self.algorithm == "ppo"
        old = {d: np.log(_softmax(d.logits)) for d in decisions} if ppo else {}
        for _ in range(self.ppo_epochs if ppo else 1):
            probs = {d: _softmax(d.logits) for d in decisions}
            grads = {d: self.entropy_weight * _entropy_grad(p) for d, p in probs.items()}
            for (_, taken), advantage in zip(batch, advantages, strict=True):
                weight = advantage  # gradient of A * log pi(a): A * (onehot(a) - p)
                if ppo:
                    weight *= self._ppo_ratio(taken, probs, old, advantage)
                for d, action in taken if weight else ():
                    grads[d] -= weight * probs[d]
                    grads[d][action] += weight
            for d, g in grads.items():
                d.logits += self.learning_rate * g

    def _ppo_ratio(
        self,
        taken: list[tuple[_Decision, int]],
        probs: dict[_Decision, np.ndarray],
        old: dict[_Decision, np.ndarray],
        advantage: float,
    ) -> float:
        """The joint probability ratio, or 0 where the clipped surrogate has no gradient."""
        log_ratio = sum(math.log(probs[d][a]) - old[d][a] for d, a in taken)
        ratio = math.exp(log_ratio)
        if (advantage > 0 and ratio > 1 + self.ppo_clip) or (
            advantage < 0 and ratio < 1 - self.ppo_clip
        ):
            return 0.0
        return ratio

    def _actions_of(self, sig: tuple[Any, ...], dist: BaseDistribution) -> _Actions:
        actions = self._actions.get(sig)
        if actions is None:
            actions = self._actions[sig] = _Actions(dist, self.bins)
        return actions


def _check_options(
    learning_rate: Any, entropy_weight: Any, decay: Any, bins: Any, algorithm: Any
) -> None:
    if not _real(learning_rate) or learning_rate <= 0:
        raise ValueError(
            f"learning_rate must be a positive number (e.g. 0.5), got {learning_rate!r}."
        )
    if not _real(entropy_weight) or entropy_weight < 0:
        raise ValueError(
            f"entropy_weight must be >= 0 (0 turns the bonus off), got {entropy_weight!r}."
        )
    if not _real(decay) or not 0 <= decay < 1:
        raise ValueError(f"baseline_decay must lie in [0, 1) (e.g. 0.9), got {decay!r}.")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an int >= 2 (e.g. 10), got {bins!r}.")
    if algorithm not in ("reinforce", "ppo"):
        raise ValueError(f"algorithm must be 'reinforce' or 'ppo', got {algorithm!r}.")


def _check_options_ppo(batch_size: Any, epochs: Any, clip: Any, fail_reward: Any) -> None:
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}.")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"ppo_epochs must be an int >= 1 (e.g. 4), got {epochs!r}.")
    if not _real(clip) or not 0 < clip < 1:
        raise ValueError(f"ppo_clip must lie in (0, 1) (e.g. 0.2), got {clip!r}.")
    if fail_reward is not None and not _real(fail_reward):
        raise ValueError(
            f"fail_reward must be a finite number (on the reward scale [-1, 1]) or None "
            f"to skip failed trials, got {fail_reward!r}."
        )


def _real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
