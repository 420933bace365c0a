"""Recipe: distil DenseNets from the best ResNet of an earlier study.

The teacher is ``{"study": "digits-resnet", "trial": "best"}``, the study that
``examples/digits_resnet.py`` runs, in this study's database (add ``"storage": URL`` when
it is in another one). Before anything is written, the driver finds that study's best
COMPLETE trial, checks that its checkpoint (the directory in its ``archtune:checkpoint``
attribute) is still there and fits the data, and reads its architecture; then it runs the
teacher once over the training split and shares its logits with every trial through
Ray's object store. The study stores the teacher as that trial's *number*, so
``archtune resume`` distils from the same network even once ``digits-resnet`` has found a
better one (write ``"trial": 7`` to pick a trial yourself).

The students search DenseNet shapes and the two distillation knobs (Hinton et al. 2015):
``distill_alpha``, the weight of the teacher's softened outputs against the labels, and
``distill_temperature``.

Run it with::

    archtune run examples/digits_resnet.py --trials 10      # the teacher's study, first
    archtune run examples/distill_densenet.py
    archtune show digits-densenet-distilled
"""

from search import make_controller
from spaces import Categorical, DenseNetSpace, Float, Int, SearchSpace, TrainingSpace
from studies import Experiment
from trainers import ImageClassifier

space = SearchSpace(
    {
        "model": DenseNetSpace(blocks=Int(1, 3), layers=Int(1, 4), growth=Categorical([6, 12])),
        "train": TrainingSpace(
            lr=Float(1e-3, 3e-2, log=True),
            distill_alpha=Float(0.3, 0.9),
            distill_temperature=Categorical([2.0, 4.0, 8.0]),
        ),
    }
)

experiment = Experiment(
    name="digits-densenet-distilled",
    space=space,
    objective="val_acc",
    direction="maximize",
    trainer=ImageClassifier(
        dataset="digits", epochs=8, teacher={"study": "digits-resnet", "trial": "best"}
    ),
    controller=make_controller("tpe", seed=0),
    num_trials=20,
    max_concurrent=2,
    scheduler="asha",
    resources_per_trial={"cpu": 1, "gpu": 0},
    storage="sqlite:///archtune.db",
)
