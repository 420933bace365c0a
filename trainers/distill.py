"""Knowledge distillation: a trained teacher's softened outputs guide a student.

Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network"
(arXiv:1503.02531). The student minimises a weighted sum of the usual cross-entropy on
the labels and the Kullback-Leibler divergence between the teacher's and its own
class distributions, both softened by a temperature ``T``. The soft term is multiplied
by ``T**2`` so that its gradients keep the same scale whatever ``T`` is (the soft-target
gradients shrink as ``1/T**2``; section 2 of the paper).

The pieces, in the order a trainer uses them:

- :class:`~trainers.teacher.TeacherSource` names the teacher in the trainer's JSON
  spec, and :func:`~trainers.teacher.load_teacher` rebuilds the frozen network (both in
  :mod:`trainers.teacher`, re-exported here).
- :func:`teacher_logits` runs the teacher once over the training split (the teacher is
  fixed and the inputs are indexed, so its logits never change), and
  :class:`SharedLogits` hands that one tensor to every trial of a study through Ray's
  object store.
- :func:`distillation_loss` is the per-batch objective, with the cached logits indexed
  by the batch's example indices.

Cached logits are the teacher's outputs on the *un-augmented* images, so they stand in
for the teacher only when the data is not augmented; with augmentation a trainer runs
the teacher on each augmented batch (as :class:`~trainers.ImageClassifier` does).

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
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from trainers.data import LoaderData, TensorData

# The teacher's source and loading live in trainers.teacher; re-exported here.
from trainers.teacher import TeacherSource, check_teacher, load_teacher

__all__ = [
    "SharedLogits",
    "TeacherSource",
    "check_distill_knobs",
    "check_teacher",
    "distillation_loss",
    "load_teacher",
    "teacher_logits",
]

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
