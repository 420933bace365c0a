"""Knowledge distillation: a trained teacher's softened outputs guide a student.

Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network"
(arXiv:1503.02531). The student minimises a weighted sum of the usual cross-entropy on
the labels and the Kullback-Leibler divergence between the teacher's and its own
class distributions, both softened by a temperature ``T``. The soft term is multiplied
by ``T**2`` so that its gradients keep the same scale whatever ``T`` is (the soft-target
gradients shrink as ``1/T**2``; section 2 of the paper).

The pieces, in the order a trainer uses them:

- :class:`TeacherSource` names the teacher in the trainer's JSON spec: an archtune
  checkpoint file (or a Ray checkpoint directory), or a trial of an earlier study,
  whose checkpoint directory the driver recorded in the trial's user attribute
  :data:`ATTR_CHECKPOINT`. :meth:`TeacherSource.resolve` turns it into a path.
- :func:`load_teacher` rebuilds the frozen network with
  :func:`trainers.checkpoint.model_from_checkpoint`; :func:`check_teacher` says how it
  differs from the data, if it does.
- :func:`teacher_logits` runs the teacher once over the training split (the teacher is
  fixed and the inputs are indexed, so its logits never change), and
  :class:`SharedLogits` hands that one tensor to every trial of a study through Ray's
  object store.
- :func:`distillation_loss` is the per-batch objective, with the cached logits indexed
  by the batch's example indices.

Caching logits means the teacher sees the *un-augmented* images; with augmentation the
student is matched to the teacher's outputs on the original image, which is the usual
trade for not running the teacher in every step.

Example:
    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
    >>> loss = distillation_loss(logits, logits, torch.tensor([0]), alpha=1.0, temperature=4.0)
    >>> float(loss)
    0.0
    >>> TeacherSource.parse({"study": "digits", "trial": 3, "storage": "sqlite:///a.db"}).trial
    3
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainers.base import ATTR_CHECKPOINT
from trainers.checkpoint import CHECKPOINT_FILE, load_checkpoint, model_from_checkpoint
from trainers.data import LoaderData, TensorData

# Trial user attribute holding the directory of the trial's last Ray checkpoint; the
# driver's recorder writes it and :meth:`TeacherSource.resolve` reads it.

_CHECKPOINT_KEYS = frozenset({"checkpoint"})
_STUDY_KEYS = frozenset({"study", "trial", "storage"})
_FETCHED_MAX = 4
# (object id, device) -> logits already fetched by this process (see SharedLogits.get).
_FETCHED: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """Hinton et al.'s distillation objective, in fp32 whatever the autocast dtype.

    ``alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T))`` (averaged over
    the batch) ``+ (1 - alpha) * cross_entropy(student, targets)``. No gradient flows
    into ``teacher_logits``.

    Args:
        student_logits: ``(batch, classes)`` outputs of the network being trained.
        teacher_logits: ``(batch, classes)`` outputs of the teacher on the same examples.
        targets: ``(batch,)`` class indices.
        alpha: Weight of the soft (teacher) term, in [0, 1]; 0 is plain cross-entropy.
        temperature: Softmax temperature ``T`` > 0; larger values soften both
            distributions and expose more of the teacher's "dark knowledge".

    Returns:
        The scalar loss (fp32).

    Raises:
        ValueError: for ``alpha`` outside [0, 1], a non-positive ``temperature``, or
            logits of different shapes.

    Example:
        >>> s, t = torch.zeros(1, 2), torch.tensor([[math.log(3.0), 0.0]])
        >>> round(float(distillation_loss(s, t, torch.tensor([0]), 0.0, 1.0)), 4)  # ln 2
        0.6931
    """
    check_distill_knobs(alpha, temperature)
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            f"Student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} must both be (batch, classes); check that the "
            "teacher was trained on the same classes and that its logits are indexed by "
            "the batch's example indices."
        )
    with torch.autocast(student_logits.device.type, enabled=False):
        student = student_logits.float()
        loss = student.new_zeros(())
        if alpha > 0:
            t = float(temperature)
            soft = nn.functional.kl_div(
                nn.functional.log_softmax(student / t, dim=1),
                nn.functional.log_softmax(teacher_logits.detach().float() / t, dim=1),
                reduction="batchmean",
                log_target=True,
            )
            loss = loss + alpha * t * t * soft
        if alpha < 1:
            loss = loss + (1.0 - alpha) * nn.functional.cross_entropy(student, targets)
    return loss


def check_distill_knobs(alpha: float, temperature: float) -> None:
    """Raise ``ValueError`` unless ``0 <= alpha <= 1`` and ``temperature > 0`` (finite)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"Distillation alpha must be a number in [0, 1], got {alpha!r}.")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not (temperature > 0 and math.isfinite(temperature))
    ):
        raise ValueError(
            f"Distillation temperature must be a finite number > 0, got {temperature!r}; "
            "the paper uses values from 1 to 20."
        )


@dataclass(frozen=True)
class TeacherSource:
    """Where the teacher's weights come from; JSON-able, for a trainer's spec.

    Exactly one of two forms:

    - ``checkpoint``: an archtune checkpoint file, or a Ray checkpoint directory that
      holds one (``checkpoint.pt``);
    - ``study``, ``trial`` and ``storage``: trial number ``trial`` of study ``study`` in
      the Optuna database at URL ``storage``; the checkpoint is the directory stored in
      that trial's user attribute :data:`ATTR_CHECKPOINT`.

    Resolve in the driver (``Trainer.check_space``): relative paths are taken from the
    current directory, and Ray workers run elsewhere and never open the database.

    Example:
        >>> TeacherSource.parse("runs/best/checkpoint.pt").to_json()
        {'checkpoint': 'runs/best/checkpoint.pt'}
    """

    checkpoint: str | None = None
    study: str | None = None
    trial: int | None = None
    storage: str | None = None

    def __post_init__(self) -> None:
        if self.checkpoint is not None:
            if not isinstance(self.checkpoint, str) or not self.checkpoint:
                raise TypeError(
                    f"TeacherSource checkpoint must be a non-empty path string, "
                    f"got {self.checkpoint!r}."
                )
            if (self.study, self.trial, self.storage) != (None, None, None):
                raise ValueError(
                    "Give a TeacherSource either checkpoint=... or study=..., trial=..., "
                    "storage=..., not both."
                )
            return
        missing = [k for k in ("study", "trial", "storage") if getattr(self, k) is None]
        if missing:
            raise ValueError(
                f"TeacherSource needs checkpoint=PATH, or all of study, trial and storage "
                f"(missing {missing})."
            )
        if not isinstance(self.study, str) or not isinstance(self.storage, str):
            raise TypeError(
                f"TeacherSource study and storage must be strings, got {self.study!r} "
                f"and {self.storage!r}."
            )
        if isinstance(self.trial, bool) or not isinstance(self.trial, int) or self.trial < 0:
            raise TypeError(
                f"TeacherSource trial must be a trial number (an int >= 0), got {self.trial!r}."
            )

    @classmethod
    def parse(
        cls, value: TeacherSource | str | os.PathLike[str] | Mapping[str, Any]
    ) -> TeacherSource:
        """A source from a path, a dict as :meth:`to_json` writes, or a source.

        Raises:
            ValueError: for a dict with unknown or missing keys.
            TypeError: for any other kind of value.
        """
        if isinstance(value, TeacherSource):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls(checkpoint=os.fspath(value))
        if isinstance(value, Mapping):
            keys = frozenset(value)
            if keys not in (_CHECKPOINT_KEYS, _STUDY_KEYS):
                raise ValueError(
                    f"A teacher is {{'checkpoint': PATH}} or {{'study': NAME, 'trial': N, "
                    f"'storage': URL}}; got keys {sorted(keys)}."
                )
            return cls(**value)
        raise TypeError(
            "A teacher is a checkpoint path, a dict {'checkpoint': PATH} or "
            f"{{'study': NAME, 'trial': N, 'storage': URL}}, or a TeacherSource; "
            f"got {type(value).__name__}."
        )

    def to_json(self) -> dict[str, Any]:
        """The dict :meth:`parse` reads back."""
        if self.checkpoint is not None:
            return {"checkpoint": self.checkpoint}
        return {"study": self.study, "trial": self.trial, "storage": self.storage}

    def resolve(self) -> str:
        """The absolute path of the teacher's checkpoint (a file or a Ray checkpoint dir).

        The study database is only read (no tables are created, nothing is written).

        Raises:
            FileNotFoundError: when the checkpoint, or a SQLite database, does not exist.
            ValueError: for an unknown study (the message lists the known ones), trial
                number, a trial that is not COMPLETE, or one without a recorded checkpoint.
            RuntimeError: when the database cannot be read.
        """
        if self.checkpoint is not None:
            path = self.checkpoint
            where = "TeacherSource checkpoint"
        else:
            path = _trial_checkpoint(self.study, self.trial, self.storage)  # type: ignore[arg-type]
            where = f"The checkpoint recorded for trial {self.trial} of study {self.study!r}"
        path = os.path.abspath(os.path.expanduser(path))
        target = os.path.join(path, CHECKPOINT_FILE) if os.path.isdir(path) else path
        if not os.path.isfile(target):
            raise FileNotFoundError(
                f"{where}, {target!r}, does not exist; give an archtune checkpoint file or "
                f"the Ray checkpoint directory that holds its {CHECKPOINT_FILE}."
            )
        return path


def _trial_checkpoint(study: str, trial: int, url: str) -> str:
    """The checkpoint path stored in a COMPLETE trial's :data:`ATTR_CHECKPOINT`."""
    import optuna
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as e:
        raise ValueError(f"Malformed storage URL {url!r}: {e}") from None
    db = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if db and db != ":memory:" and not os.path.isfile(db):
        raise FileNotFoundError(f"No study database at {os.path.abspath(db)!r} (from {url!r}).")
    try:
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, RuntimeError) as e:
        raise RuntimeError(f"Cannot read the study database {url!r}: {e}") from e
    try:
        try:
            study_id = storage.get_study_id_from_name(study)
        except KeyError:
            known = sorted(s.study_name for s in storage.get_all_studies())
            raise ValueError(f"No study {study!r} in {url!r}; known studies: {known}.") from None
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial)
        except KeyError:
            count = len(storage.get_all_trials(study_id, deepcopy=False))
            raise ValueError(
                f"Study {study!r} has no trial {trial}; its trials are numbered 0 to {count - 1}."
                if count
                else f"Study {study!r} has no trials."
            ) from None
        frozen = storage.get_trial(trial_id)
    except sa.exc.SQLAlchemyError as e:
        raise RuntimeError(f"Cannot read the study database {url!r}: {e}") from e
    finally:
        storage.engine.dispose()
    if frozen.state != optuna.trial.TrialState.COMPLETE:
        raise ValueError(
            f"Trial {trial} of study {study!r} is {frozen.state.name}, not COMPLETE; "
            "distil from a trial that finished its training."
        )
    path = frozen.user_attrs.get(ATTR_CHECKPOINT)
    if not isinstance(path, str) or not path:
        raise ValueError(
            f"Trial {trial} of study {study!r} has no recorded checkpoint (user attribute "
            f"{ATTR_CHECKPOINT!r}); give TeacherSource(checkpoint=PATH) instead."
        )
    return path


def check_teacher(
    state_or_model: Mapping[str, Any] | nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int,
) -> None:
    """Raise ``ValueError`` saying what differs when the teacher does not fit the data.

    Args:
        state_or_model: A checkpoint dict (its recorded ``input_shape`` and
            ``num_classes`` are compared) or a network (run on a zero batch).
        input_shape: ``(channels, height, width)`` of the data.
        num_classes: Classes of the data.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if isinstance(state_or_model, Mapping):
        teacher_shape = tuple(int(s) for s in state_or_model["input_shape"])
        teacher_classes = int(state_or_model["num_classes"])
    else:
        teacher_shape = input_shape
        teacher_classes = _output_width(state_or_model, input_shape)
    diffs = []
    if teacher_shape != input_shape:
        diffs.append(f"input shape {teacher_shape} vs the data's {input_shape}")
    if teacher_classes != num_classes:
        diffs.append(f"{teacher_classes} classes vs the data's {num_classes}")
    if diffs:
        raise ValueError(
            f"The teacher does not fit the data: {'; '.join(diffs)}. Distil from a teacher "
            "trained on the same dataset."
        )


def _output_width(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Classes a network outputs for a zero batch of ``input_shape`` (-1 if it fails)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape, device=device))
    except RuntimeError as e:
        raise ValueError(
            f"The teacher does not fit the data: it fails on inputs of shape {input_shape} "
            f"({e}). Distil from a teacher trained on the same dataset."
        ) from None
    finally:
        model.train(was_training)
    return int(out.shape[-1]) if out.dim() == 2 else -1


def load_teacher(
    source: TeacherSource | str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device = "cpu",
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """The frozen teacher network: eval mode, no parameter requires a gradient.

    Args:
        source: Anything :meth:`TeacherSource.parse` accepts.
        device: Where to put the network.
        input_shape: When given with ``num_classes``, the data the teacher must fit
            (checked with :func:`check_teacher` before the network is built).
        num_classes: Classes of the data.
    """
    state = load_checkpoint(TeacherSource.parse(source).resolve())
    if input_shape is not None and num_classes is not None:
        check_teacher(state, input_shape, num_classes)
    model = model_from_checkpoint(state, device)
    model.requires_grad_(False)
    return model.eval()


@torch.no_grad()
def teacher_logits(
    teacher: nn.Module, data: TensorData | LoaderData, batch_size: int = 512
) -> torch.Tensor:
    """The teacher's fp32 logits of every training example, in index order, on the CPU.

    Row ``i`` belongs to training example ``i`` (the ``idx`` that ``train_batches``
    yields), so a training step indexes the result with its batch indices. The batches
    come from ``data.train_batches(..., shuffle=False, drop_last=False)``, so
    :class:`~trainers.data.LoaderData` works as well. The teacher runs in eval mode
    without autocast; its mode is restored afterwards.

    Example:
        >>> data = TensorData(torch.randn(5, 1, 2, 2), torch.zeros(5, dtype=torch.long),
        ...                   torch.randn(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), 3)
        >>> teacher_logits(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), data, 2).shape
        torch.Size([5, 3])
    """
    param = next(teacher.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = teacher.training
    teacher.eval()
    out: torch.Tensor | None = None
    try:
        with torch.autocast(device.type, enabled=False):
            batches = data.train_batches(batch_size, None, shuffle=False, drop_last=False)
            for idx, x, _ in batches:
                logits = teacher(x.to(device)).float().cpu()
                if out is None:
                    out = torch.empty(data.num_train, logits.shape[1])
                out[idx.cpu()] = logits
    finally:
        teacher.train(was_training)
    if out is None:
        raise ValueError("The data has no training examples to compute teacher logits on.")
    return out


class SharedLogits:
    """One tensor of teacher logits shared by every trial of a study.

    :meth:`put` stores the tensor in Ray's object store when Ray is initialised (else
    keeps it in this object). The object pickles into a trial's closure as an
    ``ObjectRef``; :meth:`get` fetches it once per process and device, so a reused
    actor running its next trial does not fetch again. The driver that put it owns the
    object: keep this object alive in the driver (e.g. on the trainer) for the study.

    Treat the tensor :meth:`get` returns as read-only: it is shared by later calls.

    Example:
        >>> shared = SharedLogits.put(torch.ones(4, 3))
        >>> shared.get("cpu").shape, shared.shape
        (torch.Size([4, 3]), (4, 3))
    """

    def __init__(self, ref: Any = None, tensor: torch.Tensor | None = None) -> None:
        if (ref is None) == (tensor is None):
            raise ValueError("SharedLogits holds either a Ray ObjectRef or a tensor; use put().")
        self._ref = ref
        self._tensor = tensor
        self._local: dict[str, torch.Tensor] = {}
        self.shape: tuple[int, ...] = ()

    @classmethod
    def put(cls, tensor: torch.Tensor) -> SharedLogits:
        """Share ``tensor`` (stored as contiguous fp32 on the CPU)."""
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2:
            raise TypeError(
                f"SharedLogits.put takes a (examples, classes) tensor, got {tensor!r:.80}."
            )
        tensor = tensor.detach().to("cpu", torch.float32).contiguous()
        import ray

        shared = cls(ref=ray.put(tensor)) if ray.is_initialized() else cls(tensor=tensor)
        shared.shape = tuple(tensor.shape)
        return shared

    @property
    def in_object_store(self) -> bool:
        """Whether the tensor lives in Ray's object store (else in this object)."""
        return self._ref is not None

    def get(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """The logits on ``device``, fetched and copied at most once per process."""
        key = str(torch.device(device))
        if self._ref is None:
            if key not in self._local:
                self._local[key] = self._tensor.to(key)  # type: ignore[union-attr]
            return self._local[key]
        ref_id = self._ref.hex()
        cached = _FETCHED.get((ref_id, key))
        if cached is None:
            cpu = _FETCHED.get((ref_id, "cpu"))
            if cpu is None:
                import ray

                cpu = _remember((ref_id, "cpu"), ray.get(self._ref))
            cached = cpu if key == "cpu" else _remember((ref_id, key), cpu.to(key))
        return cached

    def __getstate__(self) -> dict[str, Any]:
        return {"_ref": self._ref, "_tensor": self._tensor, "shape": self.shape}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = {}

    def __repr__(self) -> str:
        where = "object store" if self._ref is not None else "in process"
        return f"SharedLogits(shape={self.shape}, {where})"


def _remember(key: tuple[str, str], tensor: torch.Tensor) -> torch.Tensor:
    """Keep ``tensor`` in the per-process cache (the few most recent entries)."""
    _FETCHED[key] = tensor
    while len(_FETCHED) > _FETCHED_MAX:
        _FETCHED.popitem(last=False)
    return tensor
