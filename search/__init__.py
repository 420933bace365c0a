"""Controllers: what to try next. Each is an ``optuna.samplers.BaseSampler``.

Example:
    >>> from search import make_controller
    >>> sampler = make_controller("tpe", seed=0)
"""

# The controllers register themselves when their modules are imported.
from search import evolution, nni_tuners, rl  # noqa: F401
from search.registry import (
    list_controllers,
    make_controller,
    multi_objective_controllers,
    register_controller,
)
from search.spec import ControllerSpec, controller_spec

__all__ = [
    "ControllerSpec",
    "controller_spec",
    "list_controllers",
    "make_controller",
    "multi_objective_controllers",
    "register_controller",
]
