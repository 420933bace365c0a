"""Take a study's winner home: choose trials, find their checkpoints, export each.

:func:`export_study` is what ``archtune export`` and :meth:`studies.Study.export` run.
It exports the best trial (the default), one trial by number, or with ``front=True``
every trial on a multi-objective study's Pareto front (the best trial of a
single-objective one). One trial is written straight into the directory; a front goes
into ``trial-<number>/`` folders beside an ``index.json`` that lists each trial with its
objective values and costs (parameters, FLOPs, latency). Each trial's folder is
:func:`trainers.export.export_model`'s: model file, slim checkpoint, model card; the card
adds the study, the trial, its objective values and everything its last epoch reported.
A study whose trainer reports int8 figures (``ImageClassifier(quantize=True)``) exports
each trial's int8 model beside it (``model.int8.onnx``, or ``model.int8.pt2`` for the
other formats), as :func:`trainers.export.export_model` says; the index names it too.

Only COMPLETE trials are exported (a PRUNED one stopped early and is never on a front;
a FAIL one has nothing to export); their checkpoint is the directory the driver recorded
in the trial's ``archtune:checkpoint`` attribute (under the run directory of Ray). Every
choice and every checkpoint is checked before anything is written.

Example:
    >>> index_entry(TrialRecord(0, "COMPLETE", {}, value=0.9, metrics={"params": [(3, 1e4)]}),
    ...             ["val_acc"], "trial-0", "model.onnx")["params"]
    10000.0
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studies.records import ATTR_TRAINER, StudyRecord, TrialRecord
from trainers.base import ATTR_CHECKPOINT, trainer_from_json
from trainers.checkpoint import CHECKPOINT_FILE, load_checkpoint
from trainers.export import (
    ExportedModel,
    ExportError,
    check_format,
    export_model,
    prepare_directory,
)
from trainers.model_card import CARD_VERSION, write_json

if TYPE_CHECKING:
    from studies.study import Study

INDEX_FILE = "index.json"
# The costs a trial's last epoch reports that the index lists beside the objectives.
COSTS = ("params", "flops", "activation_bytes", "latency_ms", "latency_batch_ms")
INT8_COSTS = ("int8_acc", "int8_latency_ms", "fp32_latency_ms")  # with quantize=True


def export_study(
    study: Study,
    directory: str | os.PathLike[str],
    format: str,
    *,
    trial: int | None = None,
    front: bool = False,
    force: bool = False,
    int8: bool | None = None,
) -> list[ExportedModel]:
    """Export the best trial, trial number ``trial``, or the Pareto front of ``study``.

    Args:
        study: The study.
        directory: Where to write (created; must be empty unless ``force``).
        format: ``"torchscript"``, ``"onnx"`` or ``"checkpoint"``.
        trial: Export this trial (COMPLETE) instead of the best one.
        front: Export every trial on the Pareto front, each in ``trial-<n>/``, with
            ``index.json`` (a single-objective study's front is its best trial).
        force: Write into a non-empty directory, replacing files of the same names.
        int8: Export each trial's int8 model too (True) or not (False); by default when
            the study's trainer has ``quantize=True``.

    Returns:
        What was written for each trial, in trial order.

    Raises:
        trainers.export.ExportError: for an unknown format, a trial that does not exist
            or is not COMPLETE, no trial to export, a multi-objective study without
            ``front`` or ``trial``, a checkpoint that is gone, or a non-empty directory.
    """
    check_format(format)
    if trial is not None and front:
        raise ExportError("Give either a trial number or front, not both.")
    record = study.record()
    chosen = choose_trials(record, trial, front)
    attrs = {t.number: t.user_attrs for t in study.trials}
    paths = {t.number: trial_checkpoint(record.name, t.number, attrs[t.number]) for t in chosen}
    states = {n: load_checkpoint(path) for n, path in paths.items()}  # weights_only, checked
    out = prepare_directory(directory, force)
    trainer = _trainer(study.optuna.user_attrs.get(ATTR_TRAINER))
    exported = []
    for t in chosen:
        where = out / f"trial-{t.number}" if front else out
        card = trial_card(record, t, study.storage.shown)
        exported.append(
            export_model(
                states[t.number], where, format, trainer=trainer, card=card, force=True, int8=int8
            )
        )
    if front:
        write_index(out / INDEX_FILE, record, chosen, exported, format)
    return exported


def _trainer(spec: str | None) -> Any:
    """The study's trainer when it can be rebuilt here and has a data source (its data
    gives the card's preprocessing and the verification inputs), else None."""
    try:
        trainer = trainer_from_json(json.loads(spec)) if spec else None
    except (ValueError, TypeError, ImportError):
        return None  # a trainer defined in a script: the card goes without its data
    return trainer if hasattr(trainer, "source") and hasattr(trainer, "load_data") else None


def choose_trials(record: StudyRecord, number: int | None, front: bool) -> list[TrialRecord]:
    """The trials to export: trial ``number``, the front, or the best trial.

    Raises:
        ExportError: as :func:`export_study` says.
    """
    done = [t.number for t in record.trials if t.state == "COMPLETE"]
    exportable = f"COMPLETE trials: {_numbers(done)}" if done else "no trial is COMPLETE yet"
    if number is not None:
        found = [t for t in record.trials if t.number == number]
        if not found:
            span = f"0 to {len(record.trials) - 1}" if record.trials else "none yet"
            raise ExportError(
                f"Study {record.name!r} has no trial {number} (trials: {span}); {exportable}."
            )
        if found[0].state != "COMPLETE":
            raise ExportError(
                f"Trial {number} of study {record.name!r} is {found[0].state}; only COMPLETE "
                f"trials can be exported ({exportable})."
            )
        return found
    if record.multi and not front and record.front:
        numbers = _numbers([t.number for t in record.front])
        raise ExportError(
            f"Study {record.name!r} has {len(record.objectives)} objectives, so no single best "
            f"trial; export --front (trials {numbers}) or --trial N."
        )
    chosen = record.front if record.multi else [t for t in [record.best] if t is not None]
    if not chosen:
        raise ExportError(f"Study {record.name!r} has nothing to export: {exportable}.")
    return chosen


def _numbers(numbers: Sequence[int], most: int = 20) -> str:
    shown = ", ".join(str(n) for n in numbers[:most])
    return shown + (f", ... ({len(numbers)} in all)" if len(numbers) > most else "")


def trial_checkpoint(study: str, number: int, attrs: dict[str, Any]) -> str:
    """The checkpoint directory recorded for a trial, checked to hold a checkpoint.

    Raises:
        ExportError: when none was recorded, or it is gone (the message says where).
    """
    path = attrs.get(ATTR_CHECKPOINT)
    if not isinstance(path, str) or not path:
        raise ExportError(
            f"Trial {number} of study {study!r} has no recorded checkpoint "
            f"({ATTR_CHECKPOINT!r}); its trainer saved none."
        )
    target = os.path.join(path, CHECKPOINT_FILE) if not path.endswith(".pt") else path
    if not os.path.isfile(target):
        raise ExportError(
            f"The checkpoint of trial {number} of study {study!r} is gone: expected {target} "
            "(Ray's run directory was moved or deleted)."
        )
    return path


def _last(t: TrialRecord) -> dict[str, float]:
    """Every metric's value at the trial's last report."""
    return {name: series[-1][1] for name, series in t.metrics.items() if series}


def trial_card(record: StudyRecord, t: TrialRecord, storage: str) -> dict[str, Any]:
    """The study's entries of a trial's model card."""
    return {
        "study": record.name,
        "storage": storage,
        "trial": t.number,
        "state": t.state,
        "objectives": [
            {"name": n, "direction": d, "value": v}
            for n, d, v in zip(record.objectives, record.directions, t.values or [], strict=False)
        ],
        "on_front": record.multi and any(f.number == t.number for f in record.front),
        "metrics": _last(t),
        "params_sampled": t.params,
        "completed": t.completed.isoformat() if t.completed else None,
    }


def index_entry(
    t: TrialRecord,
    objectives: Sequence[str],
    folder: str,
    model_file: str | None,
    int8_file: str | None = None,
) -> dict[str, Any]:
    """One trial's line of ``index.json``: where it is, its values and its costs (and its
    int8 model and figures, when it has them)."""
    last = _last(t)
    entry = {
        "trial": t.number,
        "directory": folder,
        "model": model_file,
        "values": dict(zip(objectives, t.values or [], strict=False)),
        **{c: last.get(c) for c in COSTS},
    }
    if int8_file is not None:
        entry["int8_model"] = int8_file
        entry.update({c: last.get(c) for c in INT8_COSTS})
    return entry


def write_index(
    path: Path,
    record: StudyRecord,
    chosen: Sequence[TrialRecord],
    exported: Sequence[ExportedModel],
    format: str,
) -> None:
    """Write the front's ``index.json``."""
    trials = [
        index_entry(
            t,
            record.objectives,
            e.directory.name,
            e.model_file.name if e.model_file else None,
            e.int8_file.name if e.int8_file else None,
        )
        for t, e in zip(chosen, exported, strict=True)
    ]
    write_json(
        path,
        {
            "card_version": CARD_VERSION,
            "study": record.name,
            "format": format,
            "objectives": [
                {"name": n, "direction": d}
                for n, d in zip(record.objectives, record.directions, strict=True)
            ],
            "trials": trials,
        },
    )
