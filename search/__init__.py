"""Controllers: what to try next. Each is an ``optuna.samplers.BaseSampler``.

Example:
    >>> from search import make_controller
    >>> sampler = make_controller("tpe", seed=0)
"""

# The controllers register themselves when their modules are imported.
from search import evolution, nni_tuners, rl  # noqa: F401
from search.registry import list_controllers, make_controller, register_controller

__all__ = ["list_controllers", "make_controller", "register_controller"]
