"""Recipe: several objectives, the accuracy / size front of ResNets on digits.

Two objectives: validation accuracy (maximised) against the trained network's parameter
count (minimised), under a parameter budget (a constraint: proposals over it are refused
before they train). ASHA stops weak trainings early; it judges the accuracy, the learning
objective, epoch by epoch (a network's parameter count does not change while it trains).
A stopped trial is PRUNED and never on the front.

For speed instead of size, write ``objective=["val_acc", "latency_ms"]`` (one input,
measured on the trial's own device; ``latency_batch_ms`` for a batch), or list all three
with three directions; ``flops`` and ``activation_bytes`` are costs too (see
docs/objectives.md).

Run it with::

    archtune run examples/digits_multi_objective.py --trials 40
    archtune show digits-front         # the Pareto front first, then the other trials
    archtune report digits-front       # with a Pareto figure

and from Python, ``Study.load("digits-front").best_trials`` is the front (the same trials
as ``optuna.load_study(...).best_trials``).
"""

from search import make_controller
from spaces import Categorical, Constraint, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies import Experiment
from trainers import ImageClassifier

space = SearchSpace(
    {
        "model": ResNetSpace(
            stages=Int(1, 3), depth=Int(1, 3), width=Categorical([8, 16, 32, 64])
        ),
        "train": TrainingSpace(
            lr=Float(1e-3, 1e-1, log=True),
            batch_size=Categorical([64, 128]),
            optimizer=Categorical(["adamw", "sgd"]),
            # Conditional: SGD's momentum is searched only when SGD is picked.
            momentum=Float(0.8, 0.99, when={"optimizer": "sgd"}),
        ),
    },
    constraints=[Constraint("params", max=300_000)],
)

experiment = Experiment(
    name="digits-front",
    space=space,
    objective=["val_acc", "params"],
    direction=["maximize", "minimize"],
    trainer=ImageClassifier(dataset="digits", epochs=8),
    # Regularized evolution ranks by Pareto rank, then crowding distance.
    controller=make_controller("evolution", seed=0),
    num_trials=40,
    max_concurrent=2,
    scheduler="asha",
    scheduler_options={"grace_period": 2},
    resources_per_trial={"cpu": 1, "gpu": 0},
    storage="sqlite:///archtune.db",
)
