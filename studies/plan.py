"""Everything a run is checked against before anything is written: the study's
arguments, the settings, the trainer (and its teacher), the objectives and the controller.

:meth:`Study.run <studies.Study.run>`, :meth:`Study.resume <studies.Study.resume>` and
:meth:`Experiment.run <studies.Experiment.run>` call :func:`plan_run` first, so a bad
setting, controller, objective or trainer raises before a study is created or changed. A
teacher named by study and trial is found there too (:mod:`studies.teacher`), so the
trainer the study stores names it by trial number.

Example:
    >>> plan = make_sampler("evolution", trials_before=0)
    >>> plan.spec.name, isinstance(plan.spec.seed, int)
    ('evolution', True)
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from search.registry import multi_objective_controllers
from search.spec import ControllerSpec, controller_spec, importable
from spaces import SearchSpace
from studies.objectives import Objective, Objectives
from studies.settings import RunSettings
from studies.teacher import ResolvedTeacher, resolve_teacher
from trainers import Trainer

Controller = optuna.samplers.BaseSampler | ControllerSpec | str | None


def check_study_args(
    name: Any, space: Any, objective: str | Sequence[str], direction: str | Sequence[str]
) -> Objectives:
    """Check what :meth:`Study.create` is given; return the objectives.

    Raises:
        ValueError / TypeError: what is wrong and how to fix it.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"Study name must be a non-empty string, got {name!r}.")
    if not isinstance(space, SearchSpace):
        raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}.")
    if not space.decisions():
        raise ValueError("The space has no decisions; add a Float, Int or Categorical.")
    return Objectives.parse(objective, direction)


def run_settings(settings: RunSettings | None, overrides: Mapping[str, Any]) -> RunSettings:
    """``settings`` (default ``RunSettings()``) with the ``overrides`` that are not None.

    Raises:
        TypeError: for ``settings`` that is not a RunSettings, or an unknown setting (the
            message lists the valid ones).
        ValueError: for a bad value (see :class:`~studies.settings.RunSettings`).
    """
    if settings is None:
        settings = RunSettings()
    if not isinstance(settings, RunSettings):
        raise TypeError(
            f"settings must be a studies.RunSettings, got {settings!r}; pass num_trials=..., "
            "scheduler=... as keywords, or RunSettings(num_trials=..., ...)."
        )
    names = {f.name for f in dataclasses.fields(RunSettings)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"Unknown run setting(s) {unknown}; the settings are {sorted(names)}.")
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(settings, **given) if given else settings


@dataclass(frozen=True)
class RunPlan:
    """What a run will use, checked before anything is written.

    Attributes:
        sampler: The controller.
        spec: How to make it again (what the study stores).
        scheduled: The objective an early-stopping scheduler judges, epoch by epoch (see
            :meth:`~studies.objectives.Objectives.scheduled_for`); the first objective
            when no objective is reported every epoch (then only ``fifo`` is allowed).
        teacher: The trial of an earlier study the trainer distils from, when it names
            one (:func:`studies.teacher.resolve_teacher`).
    """

    sampler: optuna.samplers.BaseSampler
    spec: ControllerSpec
    scheduled: Objective | None = None
    teacher: ResolvedTeacher | None = None


def plan_run(
    space: SearchSpace,
    objectives: Objectives,
    trainer: Trainer,
    controller: Controller,
    settings: RunSettings,
    trials_before: int,
    *,
    storage: str | None = None,
) -> RunPlan:
    """Check that ``trainer`` can run ``space`` for ``objectives`` with ``settings``, and
    make the controller for a study already holding ``trials_before`` trials.

    A teacher the trainer names by study and trial is found (read only) and handed to
    the trainer (:func:`studies.teacher.resolve_teacher`); ``storage``, the URL of the
    database of the study being run, is where a teacher without a storage of its own is
    looked for.

    Raises:
        ValueError / TypeError: what is wrong and how to fix it.
        FileNotFoundError: the teacher trial's checkpoint is gone (the message says where
            it was expected).
        studies.storage.StorageError: the teacher's database cannot be read.
    """
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be an archtune Trainer, got {type(trainer).__name__}.")
    trainer.check_space(space)
    teacher = resolve_teacher(trainer, storage)
    if space.constraints and type(trainer).model_stats is Trainer.model_stats:
        raise ValueError(
            f"The space has constraints, but {type(trainer).__name__} cannot compute model "
            "statistics to check them; remove the constraints or use ImageClassifier."
        )
    reported = trainer.reported_metrics()
    for objective in objectives:
        if objective.name not in reported:
            raise ValueError(
                f"The study optimises {objective.name!r}, which {type(trainer).__name__} "
                f"does not report; it reports {list(reported)}."
            )
    scheduled = objectives.scheduled_for(trainer.metrics)
    if scheduled is None and settings.scheduler != "fifo":
        raise ValueError(
            f"Scheduler {settings.scheduler!r} judges an objective epoch by epoch, but "
            f"{type(trainer).__name__} reports none of {list(objectives.names)} every epoch "
            f"(only at the last: a network's cost is fixed); add a learning objective it "
            f"reports every epoch ({list(trainer.metrics)}), or use scheduler='fifo'."
        )
    if settings.resume_stopped and "epoch" not in trainer.metrics:
        raise ValueError(
            f"resume_stopped needs a trainer that reports 'epoch'; "
            f"{type(trainer).__name__} reports {list(trainer.metrics)}. Report the epoch "
            "number (and a checkpoint) each epoch, or leave resume_stopped off."
        )
    grace = settings.scheduler_config().get("grace_period", 1)
    if grace > trainer.max_epochs:
        raise ValueError(
            f"scheduler_options grace_period={grace} is more than the trainer's "
            f"{trainer.max_epochs} epochs, so no trial could be stopped; lower it."
        )
    plan = dataclasses.replace(
        make_sampler(controller, trials_before),
        scheduled=scheduled or objectives[0],
        teacher=teacher,
    )
    if objectives.multi and plan.spec.registered:
        several = multi_objective_controllers()
        if plan.spec.name not in several:
            raise ValueError(
                f"Controller {plan.spec.name!r} searches one objective; this study has "
                f"{len(objectives)} {list(objectives.names)}. Use one of {several}."
            )
    return plan


def make_sampler(controller: Controller, trials_before: int = 0) -> RunPlan:
    """The sampler a run uses and the spec the study stores of it.

    A controller given by name or spec, or a sampler :func:`search.make_controller` made,
    is made for a study that holds ``trials_before`` trials
    (:meth:`~search.ControllerSpec.continued`: a non-rebuildable controller moves its seed
    on, so it does not replay its first proposals). Any other sampler is used as given and
    stored by its class's import path, with a warning that a resume will rebuild it with
    its default options.

    Raises:
        ValueError: for an unknown controller name.
        TypeError: for something that is not a controller, or an unknown option.
    """
    if controller is None or isinstance(controller, str):
        controller = ControllerSpec(controller or "tpe")
    if isinstance(controller, ControllerSpec):
        return _built(controller.continued(trials_before))
    spec, exact = controller_spec(controller)  # raises TypeError for a non-sampler
    if exact:
        continued = spec.continued(trials_before)
        return _built(continued) if continued != spec else RunPlan(controller, spec)
    how = (
        "`archtune resume` rebuilds it with its default options"
        if importable(spec)
        else "`archtune resume` cannot import it (resume with Study.resume(controller=...))"
    )
    warnings.warn(
        f"The controller {type(controller).__name__} was not made by archtune, so the study "
        f"records only its class ({spec.name}); {how}. To keep its options, pass "
        f"ControllerSpec({spec.name!r}, seed=..., options={{...}}) instead of the sampler.",
        UserWarning,
        stacklevel=3,
    )
    return RunPlan(controller, spec)


def _built(spec: ControllerSpec) -> RunPlan:
    """The sampler ``spec`` makes, and the spec it was made with (with the seed a
    rebuildable controller drew when ``spec`` has none, so a resume continues it)."""
    sampler = spec.build()
    return RunPlan(sampler, controller_spec(sampler)[0])
