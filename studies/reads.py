"""The one read path: every view (dashboard, report, ``show``, ``ls``) reads through here.

:class:`StudyReader` queries Optuna's tables and archtune's with SQLAlchemy directly
(:mod:`studies.reads_sql`), a few queries per call whatever the number of trials, and
never builds Optuna's ``FrozenTrial``s: ``Study.get_trials`` took 8.7 s for 10,000 trials
where an SQL count takes 0.05 s. It returns the dataclasses of :mod:`studies.records`, so
figures and the report need no change; ``tests/studies/test_reads.py`` checks it against
``records.load_study_record`` field by field, on SQLite and PostgreSQL.

- :meth:`~StudyReader.summaries`: one line per study for ``archtune ls``, from aggregates
  (:mod:`studies.reads_studies`).
- :meth:`~StudyReader.page`: one page of trials, sorted and filtered in SQL
  (:mod:`studies.reads_rank`); :meth:`~StudyReader.best` and :meth:`~StudyReader.front`.
- :meth:`~StudyReader.poll`: what changed since a :class:`Cursor`, for live views: trials
  added since, and those unfinished at the last poll (optuna-dashboard's ``?after=N``,
  but in SQL too). With nothing new: three small indexed queries, no trial read.
- :meth:`~StudyReader.load_record`: a whole study, one query per table (the report).

Any Optuna RDB study opens, archtune's or not (objectives are then named as
:meth:`Objectives.from_json <studies.objectives.Objectives.from_json>` says). RUNNING
trials of a study that no live driver runs are ``INTERRUPTED`` (:mod:`studies.lease`),
as ``load_study_record`` decides. Times are naive local time, as ``FrozenTrial`` has them.

Example:
    >>> import os, tempfile, optuna
    >>> from studies.storage import open_storage
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> storage = open_storage("sqlite:///" + os.path.join(tempfile.mkdtemp(), "r.db"))
    >>> study = optuna.create_study(study_name="plain", storage=storage.optuna)
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=3)
    >>> reader = StudyReader(storage)
    >>> [(s.name, s.n_trials, s.objective) for s in reader.summaries()]
    [('plain', 3, 'value')]
    >>> page = reader.page("plain", limit=2, order_by="value")
    >>> page.total, page.record.trials[0].number == study.best_trial.number
    (3, True)
    >>> first = reader.poll("plain")
    >>> len(first.trials), reader.poll("plain", first.cursor).trials
    (3, [])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from optuna.trial import TrialState

from studies import reads_sql as q
from studies import reads_studies as s
from studies.objectives import Objectives
from studies.readonly import ReadOnlyStorage
from studies.reads_outline import StudyOutline, read_outline
from studies.reads_rank import ORDERS, best_id, constraint_rows, front_ids, ordered
from studies.reads_studies import StudyOverview
from studies.reads_time import shown_times
from studies.reads_trial import TrialDetail, study_settings, trial_detail
from studies.records import ATTR_OBJECTIVE, ATTR_RUN, ATTR_SPACE, StudyRecord, TrialRecord
from studies.storage import Storage, StorageError

__all__ = [
    "ORDERS",
    "STATES",
    "Cursor",
    "Page",
    "Poll",
    "StudyOutline",
    "StudyOverview",
    "StudyReader",
    "TrialDetail",
]

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING", "INTERRUPTED")
WINDOW = 128
"""Trial ids below the highest one seen that a poll reads again: on PostgreSQL a trial
inserted by a slower transaction may commit after one with a higher id."""


@dataclass(frozen=True)
class Page:
    """One page of a study's trials.

    Attributes:
        record: The study with this page's trials only, in the page's order.
        total: How many trials match the filter, over all pages.
        offset, limit: What was asked.
    """

    record: StudyRecord
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class Cursor:
    """Where a live view's last poll left off; JSON-able (:meth:`to_json`) for a browser.

    Attributes:
        study_id: The study polled (a study deleted and made again has a new one).
        last_id: The highest trial id seen.
        recent: The ids seen within :data:`WINDOW` below ``last_id``.
        open: The ids of trials unfinished (RUNNING, WAITING) at that poll.
        mark: When trial ``last_id`` started, as stored: a study deleted and made again
            under the same name may reuse the ids on SQLite, but not the times.

    Example:
        >>> Cursor.from_json(Cursor(1, 9, (8, 9), (9,)).to_json())
        Cursor(study_id=1, last_id=9, recent=(8, 9), open=(9,), mark=None)
    """

    study_id: int
    last_id: int = -1
    recent: tuple[int, ...] = ()
    open: tuple[int, ...] = ()
    mark: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The cursor as plain JSON data."""
        return {**dataclasses.asdict(self), "recent": list(self.recent), "open": list(self.open)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cursor:
        """The cursor :meth:`to_json` gave."""
        recent, opened = tuple(data["recent"]), tuple(data["open"])
        return cls(int(data["study_id"]), int(data["last_id"]), recent, opened, data["mark"])


@dataclass(frozen=True)
class Poll:
    """What a poll found.

    Attributes:
        trials: The trials added since the cursor, and every trial unfinished at the last
            poll (it may have reported or finished since), in trial order: each replaces
            the trial of the same number that a view holds.
        cursor: Where the next poll starts.
        reset: The poll started over (no cursor, or the study was made again): ``trials``
            is every trial, and a view drops what it held.
        live: Whether a live driver runs the study.
    """

    trials: list[TrialRecord]
    cursor: Cursor
    reset: bool
    live: bool


class StudyReader:
    """Reads the studies of a :class:`~studies.storage.Storage` or a
    :class:`~studies.readonly.ReadOnlyStorage`; never writes.

    Each call opens one connection (one transaction) and returns plain data; a reader
    keeps no state, so the threads of a Dash server may share one. A read-only database
    without archtune's tables (made by plain Optuna) reads without metric rows and with
    no live driver.

    Raises (every method):
        KeyError: no study of that name (the message lists those there are).
        StorageError: the database cannot be read (the message says why).
    """

    def __init__(self, storage: Storage | ReadOnlyStorage) -> None:
        self.storage = storage
        self._engine = storage.engine
        self._ours = getattr(storage, "archtune_tables", True)

    def names(self) -> list[str]:
        """Every study's name, oldest first."""
        with self._reading("the studies") as conn:
            stmt = sa.select(q.studies.c.study_name).order_by(q.studies.c.study_id)
            return list(conn.scalars(stmt))

    def summaries(self) -> list[StudyOverview]:
        """One :class:`StudyOverview` per study (``archtune ls``), oldest first."""
        with self._reading("the studies") as conn:
            return s.summaries(conn)

    def summary(self, name: str) -> StudyOverview:
        """The :meth:`summaries` line of study ``name``."""
        for line in self.summaries():
            if line.name == name:
                return line
        with self._reading(f"study {name!r}") as conn:
            s.study_id(conn, name, self.storage.shown)  # raises KeyError with the names
        raise KeyError(name)  # pragma: no cover (deleted between the two reads)

    def study(self, name: str) -> StudyRecord:
        """Study ``name`` without its trials: objectives, directions, space."""
        with self._reading(f"study {name!r}") as conn:
            return self._head(conn, name).record

    def settings(self, name: str) -> dict[str, Any]:
        """Study ``name``'s last run settings and trainer as recorded:
        ``{"run": {...}, "trainer": {...}}`` (each {} for a plain Optuna study)."""
        with self._reading(f"study {name!r}") as conn:
            return study_settings(conn, s.study_id(conn, name, self.storage.shown))

    def outline(self, name: str) -> StudyOutline:
        """Every trial of study ``name`` as columns: number, state, values and times (no
        params, intermediate values or metrics); what a study page draws first."""
        with self._reading(f"study {name!r}") as conn:
            head = self._head(conn, name)
            sid = head.study_id
            return read_outline(conn, sid, sid in s.live_studies(conn, sid), head.record)

    def trial(self, name: str, number: int) -> TrialDetail:
        """Trial ``number`` of study ``name`` in full: its record with every metric, its
        checkpoint, lineage, interruptions and other user attributes.

        Raises:
            KeyError: no such trial (the message says how many the study has).
        """
        with self._reading(f"study {name!r}") as conn:
            sid = s.study_id(conn, name, self.storage.shown)
            live = sid in s.live_studies(conn, sid)
            found = trial_detail(conn, sid, number, live, metrics=self._ours)
            if found is None:
                count = sa.select(sa.func.count()).where(q.trials.c.study_id == sid)
                n = int(conn.scalar(count) or 0)
                numbered = f"its trials are numbered 0 to {n - 1}" if n else "it has none yet"
                raise KeyError(f"Study {name!r} has no trial {number}; {numbered}.")
            return found

    def page(
        self,
        name: str,
        offset: int = 0,
        limit: int = 50,
        order_by: str = "number",
        descending: bool = False,
        state: str | Sequence[str] | None = None,
    ) -> Page:
        """Trials ``offset`` to ``offset + limit`` of study ``name``, sorted and filtered in SQL.

        Args:
            order_by: One of :data:`ORDERS` or an objective's name (``"value"``: the first
                objective). Trials without that value come last either way; ties go by
                number. ``"state"`` sorts COMPLETE, PRUNED, FAIL, RUNNING, WAITING.
            descending: Largest first.
            state: Only the trials in this state, or these (:data:`STATES`).

        Raises:
            ValueError: a bad offset, limit, order or state (the message lists valid ones).
        """
        if offset < 0 or limit < 1:
            raise ValueError(f"offset must be >= 0 and limit >= 1, got {offset} and {limit}.")
        with self._reading(f"study {name!r}") as conn:
            head = self._head(conn, name)
            ranked = ordered(head.record.objectives, order_by, descending, conn.dialect.name)
            live = head.study_id in s.live_studies(conn, head.study_id)
            where = [q.trials.c.study_id == head.study_id, *_state_filter(state, live)]
            count = sa.select(sa.func.count()).select_from(q.trials).where(*where)
            total = int(conn.scalar(count) or 0)
            rows = conn.execute(ranked.where(*where).offset(offset).limit(limit)).all()
            trials = _records(conn, rows, [r[0] for r in rows], live)
        return Page(replace(head.record, trials=trials), total, offset, limit)

    def best(self, name: str) -> TrialRecord | None:
        """:attr:`StudyRecord.best <studies.records.StudyRecord.best>`, without loading the
        study: the complete, feasible trial with the best finite first value."""
        picked = self._pick(name, front=False)
        return picked[0] if picked else None

    def front(self, name: str) -> list[TrialRecord]:
        """:attr:`StudyRecord.front <studies.records.StudyRecord.front>`, without loading
        the study: complete, feasible trials with finite values that none dominates."""
        return self._pick(name, front=True)

    def poll(self, name: str, cursor: Cursor | None = None) -> Poll:
        """What changed in study ``name`` since ``cursor`` (None: everything, a reset).

        Reads the trials with an id above ``cursor.last_id - WINDOW`` (an index range)
        and those in ``cursor.open`` (by id), keeps those not seen or then unfinished,
        and reads their params, values and metrics only.
        """
        t = q.trials
        with self._reading(f"study {name!r}") as conn:
            sid = s.study_id(conn, name, self.storage.shown)
            live = sid in s.live_studies(conn, sid)
            reset = cursor is None or cursor.study_id != sid
            if not reset:
                assert cursor is not None
                recent, opened = set(cursor.recent), set(cursor.open)
                # Two index ranges (an OR would scan the study's whole index on SQLite);
                # an open trial may be in both.
                newer = _rows().where(t.c.study_id == sid, t.c.trial_id > cursor.last_id - WINDOW)
                known = _rows().where(t.c.study_id == sid, t.c.trial_id.in_(opened))
                both = sa.union_all(newer.order_by(None), known.order_by(None))
                rows = {r[0]: r for r in conn.execute(both)}
                found = [rows[i] for i in sorted(rows) if i in opened or i not in recent]
                which: q.Selection = [r[0] for r in found]
                reset = _replaced(cursor, rows.get(cursor.last_id))
            if reset:  # (again) from the start
                cursor = Cursor(sid)
                found = conn.execute(_rows().where(t.c.study_id == sid)).all()
                rows, which = {r[0]: r for r in found}, q.in_study(sid)
            trials = _records(conn, found, which, live) if found else []
        last = max([cursor.last_id, *(r[0] for r in found)])
        seen = sorted(i for i in {*cursor.recent, *(r[0] for r in found)} if i > last - WINDOW)
        still = tuple(r[0] for r in found if r[2] in q.UNFINISHED)
        mark = _mark(rows.get(last)) if last in rows else cursor.mark
        return Poll(trials, Cursor(sid, last, tuple(seen), still, mark), reset, live)

    def load_record(self, name: str) -> StudyRecord:
        """Study ``name`` with every trial and metric, as ``records.load_study_record``
        gives it, in one query per table."""
        with self._reading(f"study {name!r}") as conn:
            head = self._head(conn, name)
            sid = head.study_id
            rows = conn.execute(_rows().where(q.trials.c.study_id == sid)).all()
            trials = _records(conn, rows, q.in_study(sid), sid in s.live_studies(conn, sid))
        return replace(head.record, trials=trials)

    def metrics(
        self, name: str, numbers: Sequence[int] | None = None, names: Sequence[str] | None = None
    ) -> dict[int, dict[str, list[tuple[int, float]]]]:
        """``{number: {metric: [(step, value), ...]}}``: archtune's per-epoch metric rows of
        trials ``numbers`` (None: all) of study ``name``; only metrics ``names`` if given.

        A trial without rows is left out.
        """
        t = q.trials
        with self._reading(f"study {name!r}") as conn:
            sid = s.study_id(conn, name, self.storage.shown)
            which: q.Selection = q.in_study(sid)
            if numbers is not None:
                pick = sa.select(t.c.trial_id, t.c.number).where(t.c.study_id == sid)
                found = q.each(conn, list(numbers), t.c.number, pick.where)
                number_of = dict(found)
                which = list(number_of)
            else:
                number_of = dict(
                    conn.execute(
                        sa.select(t.c.trial_id, t.c.number).where(t.c.study_id == sid)
                    ).all()
                )
            rows = q.metric_rows(conn, which, names) if self._ours else {}
        return {number_of[i]: series for i, series in rows.items()}

    @contextmanager
    def _reading(self, what: str) -> Iterator[sa.Connection]:
        try:
            with self._engine.connect() as conn:
                conn.info["archtune_tables"] = self._ours
                yield conn
        except sa.exc.SQLAlchemyError as e:
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            password = sa.engine.make_url(self.storage.url).password
            if password:
                reason = reason.replace(str(password), "***")
            raise StorageError(f"Cannot read {what} from {self.storage.shown}: {reason}.") from e

    def _head(self, conn: sa.Connection, name: str) -> s.Head:
        sid = s.study_id(conn, name, self.storage.shown)
        return s.heads(conn, sid, (ATTR_OBJECTIVE, ATTR_SPACE, ATTR_RUN))[sid]

    def _pick(self, name: str, front: bool) -> list[TrialRecord]:
        with self._reading(f"study {name!r}") as conn:
            head = self._head(conn, name)
            sid, rec = head.study_id, head.record
            objectives = Objectives.parse(rec.objectives, rec.directions)
            infeasible = constraint_rows(conn, sid)[1]
            if front:
                ids = front_ids(objectives, s.complete_values(conn, sid), infeasible)
            else:
                best = best_id(conn, sid, objectives[0].maximize, infeasible)
                ids = [] if best is None else [best]
            by_id = {r[0]: r for r in q.each(conn, ids, q.trials.c.trial_id, _rows().where)}
            rows = [by_id[i] for i in ids]
            return _records(conn, rows, ids, sid in s.live_studies(conn, sid))


def _rows() -> sa.Select:
    """``SELECT`` of the ``trials`` columns a record needs, by trial id."""
    t = q.trials
    cols = (t.c.trial_id, t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete)
    return sa.select(*cols).order_by(t.c.trial_id)


def _mark(row: Any) -> str | None:
    """A trial's stored start time, to know it again (None before it starts)."""
    return None if row is None or row[3] is None else row[3].isoformat()


def _replaced(cursor: Cursor, last: Any) -> bool:
    """Whether the trial a cursor saw last is gone or another: the study was made again."""
    if cursor.last_id < 0:
        return False
    return last is None or (cursor.mark is not None and _mark(last) != cursor.mark)


def _records(
    conn: sa.Connection, rows: Sequence[Any], which: q.Selection, live: bool
) -> list[TrialRecord]:
    """The records of ``rows`` (of :func:`_rows`), the trials ``which`` are."""
    with q.gc_paused():  # millions of small objects at 100,000 trials
        parts = q.details(conn, which, metrics=conn.info.get("archtune_tables", True))
        started = shown_times(r[3] for r in rows)
        completed = shown_times(r[4] for r in rows)
        return [
            q.record_of(r[1], q.state_name(r[2], live), parts.get(r[0]) or q.Parts(), s, c)
            for r, s, c in zip(rows, started, completed, strict=True)
        ]


def _state_filter(state: str | Sequence[str] | None, live: bool) -> list[Any]:
    if state is None:
        return []
    wanted = [state] if isinstance(state, str) else list(state)
    unknown = sorted(set(wanted) - set(STATES))
    if unknown:
        raise ValueError(f"Unknown state(s) {unknown}; choose from {list(STATES)}.")
    db = {TrialState[w] for w in wanted if w not in ("RUNNING", "INTERRUPTED")}
    if ("RUNNING" in wanted and live) or ("INTERRUPTED" in wanted and not live):
        db.add(TrialState.RUNNING)
    return [q.trials.c.state.in_(sorted(db, key=lambda x: x.value))]
