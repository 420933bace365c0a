"""Recipe: search ResNet shapes and training knobs on the bundled digits data.

The starting point: one objective (validation accuracy), TPE proposing, ASHA stopping
weak trainings early, two trials at a time on a local Ray instance, everything recorded
in ``archtune.db``. ``examples/distill_densenet.py`` distils from this study's best trial.

Run it with::

    archtune run examples/digits_resnet.py --trials 20
    archtune show digits-resnet
    archtune report digits-resnet -o report.html
"""

from search import make_controller
from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies import Experiment
from trainers import ImageClassifier

space = SearchSpace(
    {
        "model": ResNetSpace(stages=Int(1, 3), depth=Int(1, 3), width=Categorical([16, 32, 64])),
        "train": TrainingSpace(
            lr=Float(1e-4, 1e-1, log=True),
            batch_size=Categorical([64, 128]),
            optimizer=Categorical(["adamw", "sgd"]),
            weight_decay=Float(1e-6, 1e-2, log=True),
            precision=Categorical(["fp32", "bf16"]),
        ),
    }
)

experiment = Experiment(
    name="digits-resnet",
    space=space,
    objective="val_acc",
    direction="maximize",
    trainer=ImageClassifier(dataset="digits", epochs=10),
    controller=make_controller("tpe", seed=0),
    num_trials=30,
    max_concurrent=2,
    scheduler="asha",
    resources_per_trial={"cpu": 1, "gpu": 0},
    storage="sqlite:///archtune.db",
)
