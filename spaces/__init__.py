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
from spaces.family import Family
from spaces.optuna_adapter import from_optuna, to_optuna
from spaces.params import Categorical, Fixed, Float, Int, Param, param_from_json
from spaces.resnet import ResNetSpace
from spaces.space import SearchSpace
from spaces.training import TrainingSpace

__all__ = [
    "STATS",
    "Categorical",
    "Constraint",
    "Family",
    "Fixed",
    "Float",
    "Int",
    "Param",
    "ResNetSpace",
    "SearchSpace",
    "TrainingSpace",
    "from_optuna",
    "param_from_json",
    "to_optuna",
]
