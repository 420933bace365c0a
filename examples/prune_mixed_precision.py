"""Recipe: structural pruning and mixed precision, searched with the network.

Each trial trains in fp32, bf16 (autocast; norms and the loss in fp32) or fp16 (autocast
with dynamic loss scaling: steps whose gradients overflow are skipped and counted in
``skipped_steps``), and prunes ``prune_ratio`` of the channels of every prunable layer
(Torch-Pruning's dependency graph, Fang et al. 2023) before its last quarter of epochs,
which fine-tune the smaller network. A pruned trial reports the trained network's
``params``, ``flops`` and ``latency_ms`` and, beside them, the figures of the network
before pruning (``dense_params``, ``dense_flops``, ``dense_latency_ms``); 0.0 keeps the
dense network.

Mixed precision is for GPUs: set ``resources_per_trial={"cpu": 1, "gpu": 1}`` there. On
a CPU without native bf16/fp16 it runs, emulated and slower than fp32.

Run it with::

    archtune run examples/prune_mixed_precision.py
    archtune show digits-prune-amp
    archtune report digits-prune-amp -o prune.html
"""

from search import make_controller
from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies import Experiment
from trainers import ImageClassifier

space = SearchSpace(
    {
        "model": ResNetSpace(stages=Int(2, 3), depth=Int(1, 2), width=Categorical([16, 32, 64])),
        "train": TrainingSpace(
            lr=Float(1e-3, 3e-2, log=True),
            precision=Categorical(["fp32", "bf16", "fp16"]),
            prune_ratio=Categorical([0.0, 0.3, 0.5, 0.7]),
        ),
    }
)

experiment = Experiment(
    name="digits-prune-amp",
    space=space,
    objective="val_acc",
    direction="maximize",
    # The last max(1, ceil(8 * 0.25)) = 2 epochs fine-tune a pruned network.
    trainer=ImageClassifier(dataset="digits", epochs=8, finetune_fraction=0.25),
    controller=make_controller("tpe", seed=0),
    num_trials=20,
    max_concurrent=2,
    scheduler="asha",
    resources_per_trial={"cpu": 1, "gpu": 0},
    storage="sqlite:///archtune.db",
)
