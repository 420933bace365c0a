"""The search-space language and the architecture families.

Example:
    >>> from spaces import SearchSpace, ResNetSpace, TrainingSpace, Int, Float, Categorical
    >>> space = SearchSpace({
    ...     "model": ResNetSpace(depth=Int(1, 3), width=Categorical([16, 32])),
    ...     "train": TrainingSpace(lr=Float(1e-4, 1e-1, log=True)),
    ... })
    >>> sorted(space.decisions())
    ['model/depth', 'model/width', 'train/lr']
"""

from __future__ import annotations

import importlib
from typing import Any

from spaces.constraints import STATS, Constraint
from spaces.family import Family
from spaces.nni_adapter import from_nni_json, to_nni_json
from spaces.params import Categorical, Fixed, Float, Int, Param, param_from_json
from spaces.ray_adapter import from_ray_tune, to_ray_tune
from spaces.space import SearchSpace
from spaces.training import TrainingSpace

# Imported on first use: these pull in torch, Optuna or NNI. A Ray trial that only
# unpickles a space (or the CLI listing studies) does not pay for them.
_LAZY = {
    "DenseNetSpace": "spaces.densenet",
    "ModelStats": "spaces.stats",
    "NniModelSpace": "spaces.nni_model",
    "ResNetSpace": "spaces.resnet",
    "from_nni": "spaces.nni_model",
    "from_optuna": "spaces.optuna_adapter",
    "model_stats": "spaces.stats",
    "to_optuna": "spaces.optuna_adapter",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spaces' has no attribute {name!r}")


__all__ = [
    "STATS",
    "Categorical",
    "Constraint",
    "DenseNetSpace",
    "Family",
    "Fixed",
    "Float",
    "Int",
    "ModelStats",
    "NniModelSpace",
    "Param",
    "ResNetSpace",
    "SearchSpace",
    "TrainingSpace",
    "from_nni",
    "from_nni_json",
    "from_optuna",
    "from_ray_tune",
    "model_stats",
    "param_from_json",
    "to_nni_json",
    "to_optuna",
    "to_ray_tune",
]
