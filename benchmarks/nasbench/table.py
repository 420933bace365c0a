"""A tabular NAS benchmark held in memory: look up an architecture instead of training it.

The file format (``archtune-nasbench/1``, written by ``build.py``) is gzip JSON (or
plain JSON) with the archtune ``space`` (``SearchSpace.to_json``), ``epochs`` and
``rows``; each row has ``arch_id`` (:meth:`~spaces.SearchSpace.arch_id` of its flat
``config``), ``params``, ``flops`` and per-epoch ``val_acc``, ``test_acc`` and
``train_seconds`` lists. As in NAS-Bench-201 (Dong & Yang, 2020), a search on the table
is judged by the validation accuracy it sees and the test accuracy of what it picks.

Example:
    >>> from spaces import Categorical, SearchSpace
    >>> space = SearchSpace({"w": Categorical([1, 2])})
    >>> rows = [{"config": {"w": w}, "val_acc": [0.5, w / 2], "test_acc": [0.5, w / 2],
    ...          "train_seconds": [1.0, 1.0]} for w in (1, 2)]
    >>> table = Table.from_dict(make_table_dict(space, rows))
    >>> table.best_val, table.lookup({"w": 1})["val_acc"][-1]
    (1.0, 0.5)
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from spaces import Categorical, Fixed, Int, SearchSpace

FORMAT = "archtune-nasbench/1"


DEFAULT_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits_resnet.json.gz")


def make_table_dict(space: SearchSpace, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A table in the file format from a space and rows holding at least the curves.

    Missing ``arch_id``, ``params`` and ``flops`` are filled in (ids from the space,
    costs as 0), so tests can write small tables in the real format.
    """
    full = []
    for r in rows:
        row = {"params": 0, "flops": 0, **r}
        row.setdefault("arch_id", space.arch_id(row["config"]))
        full.append(row)
    epochs = len(full[0]["val_acc"]) if full else 0
    return {
        "format": FORMAT,
        "complete": True,
        "space": space.to_json(),
        "epochs": epochs,
        "rows": full,
    }


class Table:
    """The rows of a benchmark, by architecture id, with the facts a replay needs.

    Attributes:
        space: The archtune space the table enumerates.
        epochs: Epochs of every training curve (``max_t`` for ASHA).
        rows: Every row, in file order.
        best_val: The best final-epoch validation accuracy.
        best_test: The best final-epoch test accuracy (the oracle for test regret).
        top_threshold: Final validation accuracy of the ``ceil(top_fraction * n)``-th best
            row; a row at or above it is in the top set (ties included).
    """

    def __init__(self, data: Mapping[str, Any], top_fraction: float = 0.01) -> None:
        if data.get("format") != FORMAT:
            raise ValueError(f"Not a {FORMAT} table (format={data.get('format')!r}).")
        if not 0.0 < top_fraction <= 1.0:
            raise ValueError(f"top_fraction must lie in (0, 1], got {top_fraction}.")
        self.meta = {k: v for k, v in data.items() if k != "rows"}
        self.space = SearchSpace.from_json(data["space"])
        self.epochs = int(data["epochs"])
        self.rows: list[dict[str, Any]] = list(data["rows"])
        if not self.rows:
            raise ValueError("The table has no rows.")
        self._by_id = {r["arch_id"]: r for r in self.rows}
        for r in self.rows:
            if len(r["val_acc"]) != self.epochs or len(r["train_seconds"]) != self.epochs:
                raise ValueError(f"Row {r['arch_id']} does not have {self.epochs} epochs.")
        finals = sorted((r["val_acc"][-1] for r in self.rows), reverse=True)
        self.best_val = finals[0]
        self.best_test = max(r["test_acc"][-1] for r in self.rows)
        self.top_fraction = top_fraction
        self.top_threshold = finals[math.ceil(top_fraction * len(finals)) - 1]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], top_fraction: float = 0.01) -> Table:
        """A table from its decoded JSON."""
        return cls(data, top_fraction)

    @classmethod
    def load(cls, path: str, top_fraction: float = 0.01) -> Table:
        """Read a table from ``.json.gz`` or ``.json``."""
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            return cls(json.load(f), top_fraction)

    def __len__(self) -> int:
        return len(self.rows)

    def lookup(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The row of a flat configuration of :attr:`space`.

        Raises:
            KeyError: for a configuration the table does not hold, or one outside its space.
        """
        try:
            aid = self.space.arch_id(config)
            return self._by_id[aid]
        except (KeyError, ValueError) as e:
            raise KeyError(f"{dict(config)} is not in the table ({e}).") from None

    def is_top(self, row: Mapping[str, Any]) -> bool:
        """Whether a row's final validation accuracy is in the top set."""
        return row["val_acc"][-1] >= self.top_threshold

    def decisions(self) -> dict[str, list[Any]]:
        """Every decision of the space with its values, and constants as one-value lists."""
        out: dict[str, list[Any]] = {}
        for path, param in self.space.flatten().items():
            if isinstance(param, Categorical):
                out[path] = list(param.choices)
            elif isinstance(param, Int):
                out[path] = list(range(param.low, param.high + 1, param.step or 1))
            elif isinstance(param, Fixed):
                out[path] = [param.value]
            else:
                out[path] = [repr(param)]
        return out

    def summary(self) -> dict[str, Any]:
        """Size, spread and cost of the table (for reports)."""
        finals = sorted(r["val_acc"][-1] for r in self.rows)
        secs = [sum(r["train_seconds"]) for r in self.rows]
        n = len(finals)
        return {
            "rows": n,
            "decisions": self.decisions(),
            "epochs": self.epochs,
            "best_val": self.best_val,
            "best_test": self.best_test,
            "median_val": finals[n // 2],
            "worst_val": finals[0],
            "top_fraction": self.top_fraction,
            "top_threshold": self.top_threshold,
            "top_rows": sum(v >= self.top_threshold for v in finals),
            "train_seconds_total": sum(secs),
            "train_seconds_mean": sum(secs) / n,
            "early_ranking": self.early_ranking([e for e in (1, 3, 4, 9) if e < self.epochs]),
        }

    def early_ranking(self, epochs: Sequence[int]) -> dict[str, dict[str, Any]]:
        """How well the validation accuracy after each of ``epochs`` ranks the final one.

        What an early-stopping scheduler relies on. Per epoch: Spearman's rank correlation
        with the final validation accuracy over all networks (``all``) and within the top
        10% by final accuracy (``top10``), and the ranks (1 = best) that the top set holds
        after that epoch (``top_ranks``).

        Example:
            >>> from spaces import Categorical, SearchSpace
            >>> rows = [{"config": {"w": w}, "val_acc": [1 - w / 4, w / 4],
            ...          "test_acc": [0, 0], "train_seconds": [1, 1]} for w in (1, 2, 3)]
            >>> space = SearchSpace({"w": Categorical([1, 2, 3])})
            >>> t = Table.from_dict(make_table_dict(space, rows))
            >>> t.early_ranking([1])["1"]["all"], t.early_ranking([1])["1"]["top_ranks"]
            (-1.0, [3])
        """
        from scipy.stats import rankdata, spearmanr

        finals = [r["val_acc"][-1] for r in self.rows]
        cut = sorted(finals)[int(0.9 * len(finals))]
        top10 = [i for i, v in enumerate(finals) if v >= cut]
        out = {}
        for e in epochs:
            early = [r["val_acc"][e - 1] for r in self.rows]
            ranks = rankdata([-v for v in early], method="min")
            top = None
            if len(top10) > 2:
                top = spearmanr([early[i] for i in top10], [finals[i] for i in top10])[0]
            out[str(e)] = {
                "all": round(float(spearmanr(early, finals)[0]), 2),
                "top10": None if top is None else round(float(top), 2),
                "top_ranks": sorted(
                    int(ranks[i]) for i, v in enumerate(finals) if v >= self.top_threshold
                ),
            }
        return out


# The table a replay process searches: set once per process, by ``use_table`` in the main
# process or by ``init_worker`` in a ``multiprocessing.Pool`` worker, so the jobs sent to
# the workers need not carry it (replay.py and mo.py share these three).
_WORKER_TABLE: Table | None = None


def use_table(table: Table) -> None:
    """Make ``table`` the one :func:`worker_table` returns in this process."""
    global _WORKER_TABLE
    _WORKER_TABLE = table


def init_worker(path: str) -> None:
    """A replay worker's initializer: one torch thread (GPSampler fits its model with
    torch), Optuna's logging quiet, and the table at ``path`` loaded."""
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    use_table(Table.load(path))


def worker_table() -> Table:
    """The table this process searches.

    Raises:
        RuntimeError: when none was loaded (neither :func:`use_table` nor
            :func:`init_worker` ran here).
    """
    if _WORKER_TABLE is None:
        raise RuntimeError("No table loaded in this replay process.")
    return _WORKER_TABLE
