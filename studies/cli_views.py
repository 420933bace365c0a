"""What ``archtune ls`` and ``archtune show`` print: studies and trials as terminal tables.

Everything here reads through :class:`studies.reads.StudyReader` (a page of trials, the
best trial, the front), never the whole study, and prints plain text: study names,
parameter values and errors are :class:`rich.text.Text`, never markup. The command line
(:mod:`studies.cli`) parses the arguments and calls these.

Example:
    >>> _num(1234567.0), _num(0.5), _fmt(None)
    ('1.235e+06', '0.5000', '-')
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from studies.readonly import ReadOnlyStorage
    from studies.reads import StudyReader
    from studies.records import StudyRecord, TrialRecord


class _Out:
    """Standard output, resolved at each print (tests and pipes swap sys.stdout).

    Piped output is 200 columns wide (not wrapped at 80), or ``$COLUMNS`` when set.
    """

    def __getattr__(self, name: str):
        width = None
        if not sys.stdout.isatty():
            columns = os.environ.get("COLUMNS", "")
            width = int(columns) if columns.isdigit() and int(columns) >= 40 else 200
        return getattr(Console(file=sys.stdout, width=width), name)


out = _Out()


SHOW_LIMIT = 25  # trials `archtune show` lists unless told otherwise


def open_reader(storage_url: str) -> StudyReader:
    """The read path every view of the CLI goes through (:mod:`studies.reads`).

    An SQLite file whose archtune tables are at the newest revision opens read-only
    (:func:`~studies.readonly.open_readonly`): no Optuna storage and no Alembic to import,
    nothing written. Anything else (no file yet, a plain Optuna database, an older or
    newer schema, a server) opens through :func:`~studies.storage.open_storage`, which
    creates, upgrades or refuses it as every other command does.
    """
    from studies.reads import StudyReader
    from studies.storage import open_storage

    storage = _current_sqlite(storage_url)
    return StudyReader(storage if storage is not None else open_storage(storage_url))


def _current_sqlite(storage_url: str) -> ReadOnlyStorage | None:
    """The SQLite file at ``storage_url`` opened read-only if nothing in it is to create
    or upgrade (archtune's tables at :func:`newest_revision`), else None."""
    import sqlalchemy as sa

    from studies.errors import StorageError
    from studies.migrations import VERSION_TABLE
    from studies.readonly import open_readonly

    try:
        url = sa.engine.make_url(storage_url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        return None
    if url.get_backend_name() != "sqlite" or not os.path.isfile(url.database or ""):
        return None
    try:
        storage = open_readonly(storage_url)
    except StorageError:
        return None
    try:
        with storage.engine.connect() as conn:
            revision = storage.archtune_tables and conn.scalar(
                sa.select(sa.column("version_num")).select_from(sa.table(VERSION_TABLE))
            )
    except sa.exc.SQLAlchemyError:
        revision = None
    if revision and revision == newest_revision():
        return storage
    storage.engine.dispose()
    return None


def newest_revision() -> str:
    """The newest revision of archtune's tables, by the file names in
    ``studies/migrations/versions`` (``0003_driver_leases.py``): Alembic, which
    :func:`studies.migrations.head_revision` asks, costs a reading command 0.2 s to import.

    Example:
        >>> from studies.migrations import head_revision
        >>> newest_revision() == head_revision()
        True
    """
    from studies import migrations

    versions = Path(migrations.__file__).parent / "versions"
    return max(p.name.split("_", 1)[0] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))


def print_best(study_name: str, storage_url: str, reader: StudyReader | None = None) -> None:
    """Print the best trial and its configuration (several objectives: the front).

    ``reader`` reads the study when given (a command that has one open), else a reader of
    ``storage_url``.
    """
    reader = reader or open_reader(storage_url)
    head = reader.study(study_name)
    if head.multi:
        _print_front(head, reader.front(study_name))
        return
    best = reader.best(study_name)
    if best is None or best.value is None:
        out.print(f"No trial of {study_name!r} completed yet.", markup=False)
        return
    out.print(
        f"Best trial #{best.number}: {escape(head.objective)} = [bold]{best.value:.4f}"
        f"[/bold] ({head.direction})"
    )
    out.print_json(json.dumps(_config(head, best.params), default=str))


def _config(head: StudyRecord, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's nested configuration (its flat params, for a study without a space)."""
    from spaces import SearchSpace

    return SearchSpace.from_json(head.space).unflatten(params) if head.space else params


def _print_front(head: StudyRecord, front: list[TrialRecord]) -> None:
    names = head.objectives
    if not front:
        out.print(f"No trial of {head.name!r} completed yet.", markup=False)
        return
    heads = ", ".join(f"{o} ({d[:3]})" for o, d in zip(names, head.directions, strict=True))
    out.print(f"Pareto front of {head.name!r}: {len(front)} trial(s); {heads}", markup=False)
    for t in front:
        values = "  ".join(
            f"{escape(n)} = [bold]{_num(v)}[/bold]" for n, v in zip(names, t.values, strict=True)
        )
        out.print(f"  #{t.number}: {values}")
        decisions = "  ".join(f"{k}={_param(v)}" for k, v in sorted(t.params.items()))
        out.print(f"    {decisions}", markup=False)


def _fmt(v: float | None) -> str:
    return "-" if v is None else ("nan" if math.isnan(v) else f"{v:.4f}")


def _num(v: float | None) -> str:
    """A value in 4 significant figures: accuracies and parameter counts alike."""
    if v is None:
        return "-"
    if math.isnan(v):
        return "nan"
    return f"{v:.4f}" if abs(v) < 10 else f"{v:.4g}"


def cmd_ls(args: argparse.Namespace) -> None:
    table = Table(
        "study",
        "objective",
        "trials",
        "complete",
        "pruned",
        "failed",
        "best",
        "controller",
        "started",
    )
    for s in open_reader(args.storage).summaries():
        objectives = ", ".join(
            f"{o} ({d[:3]})" for o, d in zip(s.objectives, s.directions, strict=True)
        )
        best = f"front of {s.front_size}" if len(s.objectives) > 1 else _fmt(s.best_value)
        table.add_row(
            Text(s.name),  # Text, not markup: a name may hold brackets ('[/b]')
            Text(objectives),
            str(s.n_trials),
            str(s.states.get("COMPLETE", 0)),
            str(s.states.get("PRUNED", 0)),
            str(s.states.get("FAIL", 0)),
            best,
            Text(s.controller or "-"),
            s.started.strftime("%Y-%m-%d %H:%M") if s.started else "-",
        )
    if table.row_count == 0:
        from studies.storage import shown_url

        out.print(f"No studies in {shown_url(args.storage)}.", markup=False)
    else:
        out.print(table)


def cmd_show(args: argparse.Namespace) -> None:
    """A page of the study's trials (read in SQL, whatever the study's size): the
    complete ones best first (several objectives: the front, then the others by the
    first objective), or those in ``--state``, or ``--all`` in trial order."""
    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}.")
    reader = open_reader(args.storage)
    name = args.name
    if args.all:
        record = reader.load_record(name)
        out.print(_trials_table(record, record.trials, None))
        print_best(name, args.storage, reader)
        return
    head = reader.study(name)
    first = head.direction == "maximize"
    front = reader.front(name) if head.multi and args.state is None else []
    if front:
        out.print(_trials_table(replace(head, trials=front), front, f"{name}: Pareto front"))
    state = args.state or "COMPLETE"
    page = reader.page(name, 0, args.limit + len(front), "value", descending=first, state=state)
    on_front = {t.number for t in front}
    rest = [t for t in page.record.trials if t.number not in on_front][: args.limit]
    what = "the other trials" if front else f"{state.lower()} trials, best first"
    title = f"{name}: {what} ({len(rest)} of {page.total - len(front)})"
    out.print(_trials_table(replace(head, trials=rest), rest, title))
    _print_counts(reader, name)
    print_best(name, args.storage, reader)


def _print_counts(reader: StudyReader, name: str) -> None:
    """One line: the study's trials by state, and how to list the others."""
    summary = next((s for s in reader.summaries() if s.name == name), None)
    if summary is None:
        return
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(summary.states.items()))
    out.print(
        f"{summary.n_trials} trials ({counts}); --state STATE or --all lists others.",
        markup=False,
    )


def _trials_table(record: StudyRecord, trials: list[TrialRecord], title: str | None) -> Table:
    """One row per trial: state, objective value(s), epochs, seconds, the network's cost
    (params, FLOPs, latency) when recorded, its configuration in one folding column (so
    the table fits an 80-column terminal), and its error; the node each ran on when the
    study ran on several, and Ray's restarts when there were."""
    names = sorted({k for t in record.trials for k in t.params})
    short = _short_names(names)
    heads = [f"{o} ({d[:3]})" for o, d in zip(record.objectives, record.directions, strict=True)]
    nodes = len({t.node for t in record.trials if t.node}) > 1
    restarts = any(t.restarts for t in record.trials)
    costs = [
        c for c in _COSTS if c[0] not in record.objectives and any(_cost(t, c) for t in trials)
    ]
    errors = any(t.error for t in trials)
    table = Table(
        title=Text(
            title or f"{record.name}: {record.objective} ({record.direction})",
            style="table.title",
        ),
    )
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for head in heads if record.multi else [record.objective]:
        table.add_column(escape(head), justify="right", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    for cost in costs:
        table.add_column(cost[1], justify="right", no_wrap=True)
    if nodes:
        table.add_column("node", overflow="fold")
    if restarts:
        table.add_column("restarts", justify="right")
    table.add_column("config", overflow="fold", ratio=3, min_width=16)
    if errors:
        table.add_column("error", overflow="fold", ratio=1, min_width=8)
    for t in trials:
        if record.multi:
            values = (
                [_num(v) for v in t.values]
                if t.values
                else [_last(t, n) for n in record.objectives]
            )
        else:
            values = [_fmt(t.value)]
        trained = t.state in ("COMPLETE", "PRUNED")
        config = " ".join(f"{short[n]}={_param(t.params[n])}" for n in names if n in t.params)
        table.add_row(
            str(t.number),
            t.state if t.feasible or not trained else f"{t.state} (infeasible)",
            *values,
            str(_epochs(t)),
            "-" if t.duration_s is None else f"{t.duration_s:.1f}",
            *(_cost(t, c) or "-" for c in costs),
            *([Text(t.node or "-")] if nodes else []),
            *([str(len(t.restarts))] if restarts else []),
            Text(config),
            *([Text(t.error or "")] if errors else []),
        )
    return table


_COSTS = (("params", "params"), ("flops", "FLOPs"), ("latency_ms", "ms"))
"""What ``show`` lists of a network's cost: (stat or metric name, column)."""


def _cost(t: TrialRecord, cost: tuple[str, str]) -> str:
    """A trial's cost ``cost`` (its last measured value, else the statistic computed
    before training), e.g. ``1.2M``; "" when not recorded."""
    series = t.metrics.get(cost[0])
    value = series[-1][1] if series else (t.stats or {}).get(cost[0])
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return ""
    if cost[0] == "latency_ms":
        return f"{value:.3g}"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def _short_names(names: list[str]) -> dict[str, str]:
    """Each parameter path's last part (``model/depth`` -> ``depth``), or the whole path
    where two paths end alike.

    Example:
        >>> _short_names(["model/depth", "train/lr", "a/x", "b/x"])
        {'model/depth': 'depth', 'train/lr': 'lr', 'a/x': 'a/x', 'b/x': 'b/x'}
    """
    last = [n.rsplit("/", 1)[-1] for n in names]
    return {n: s if last.count(s) == 1 else n for n, s in zip(names, last, strict=True)}


def _last(t: TrialRecord, name: str) -> str:
    """A stopped trial's last reported value of ``name`` and its epoch, e.g. ``0.93@2``."""
    series = t.metrics.get(name) if t.state == "PRUNED" else None
    if not series:
        return "-"
    step, value = series[-1]
    return f"{_num(value)}@{step}"


def _epochs(t: TrialRecord) -> int:
    """The last epoch a trial reported (Optuna's intermediate values, else its metrics)."""
    if t.intermediate:
        return max(t.intermediate)
    return max((step for series in t.metrics.values() for step, _ in series), default=0)


def _param(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)
