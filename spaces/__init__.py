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

from spaces.constraints import STATS, Constraint
from spaces.densenet import DenseNetSpace
from spaces.family import Family
from spaces.nni_adapter import from_nni_json, to_nni_json
from spaces.nni_model import NniModelSpace, from_nni
from spaces.optuna_adapter import from_optuna, to_optuna
from spaces.params import Categorical, Fixed, Float, Int, Param, param_from_json
from spaces.ray_adapter import from_ray_tune, to_ray_tune
from spaces.resnet import ResNetSpace
from spaces.space import SearchSpace
from spaces.stats import ModelStats, model_stats
from spaces.training import TrainingSpace

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
