"""Recipe: the reinforcement-learning controller on a conditional ResNet space.

``rl`` samples every decision from a factorised softmax policy and learns it by policy
gradient from the trials' accuracies (REINFORCE with a moving-average baseline, Zoph & Le
2017; ``algorithm="ppo"`` for PPO's clipped objective). The space is conditional: a
decision is sampled, and recorded, only when it is active:

- ``se_ratio`` only when ``se`` (squeeze-and-excitation) is True;
- ``depth_3`` (the blocks of stage 3) only when ``stages`` reaches 3;
- ``momentum`` only when the optimizer is SGD.

Inactive decisions are absent from a trial's parameters and do not count in its
architecture id, so two proposals that differ only there are the same network (and the
second is answered from the record instead of trained again). The policy is rebuilt from
the study's trials, so ``archtune resume`` continues the same search.

Run it with::

    archtune run examples/rl_conditional_resnet.py
    archtune show digits-rl-resnet
"""

from search import make_controller
from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies import Experiment
from trainers import ImageClassifier

space = SearchSpace(
    {
        "model": ResNetSpace(
            stages=Int(1, 3),
            depth=Int(1, 2),
            width=Categorical([8, 16, 32]),
            block=Categorical(["basic", "bottleneck"]),
            se=Categorical([False, True]),
            se_ratio=Categorical([0.125, 0.25, 0.5]),  # active when se is True
            depth_3=Int(1, 3),  # active when stages >= 3
        ),
        "train": TrainingSpace(
            lr=Float(1e-3, 1e-1, log=True),
            optimizer=Categorical(["adamw", "sgd"]),
            momentum=Float(0.8, 0.99, when={"optimizer": "sgd"}),
        ),
    }
)

experiment = Experiment(
    name="digits-rl-resnet",
    space=space,
    objective="val_acc",
    direction="maximize",
    trainer=ImageClassifier(dataset="digits", epochs=6),
    controller=make_controller("rl", seed=0, entropy_weight=0.02),
    num_trials=40,
    max_concurrent=2,
    scheduler="fifo",  # rl learns from every finished trial; see docs/controllers.md
    resources_per_trial={"cpu": 1, "gpu": 0},
    storage="sqlite:///archtune.db",
)
