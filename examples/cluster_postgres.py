"""Recipe: a study on a Ray cluster, recorded in PostgreSQL.

Where to run and where to record come from the environment, so the file itself holds no
host name and no password:

- ``ARCHTUNE_STORAGE`` (required): the database URL,
  ``postgresql://USER:PASSWORD@HOST:5432/DB`` (``pip install 'archtune[postgres]'``; the
  user must be allowed to create tables). Only the driver writes it; the workers never
  connect to it. Every ``archtune`` command reads the same variable, so ``ls``, ``show``,
  ``report`` and ``dashboard`` find the study without ``--storage``.
- ``ARCHTUNE_ADDRESS``: the cluster, ``HEAD:6379`` (what ``ray start --head`` prints),
  ``auto`` (the cluster this machine belongs to) or ``ray://HEAD:10001`` (Ray Client).
  Unset: a Ray instance of the run's own on this machine (``RAY_ADDRESS`` counts too).
- ``ARCHTUNE_RUN_DIR``: where Ray keeps the trials' checkpoints, which every node must
  reach on a cluster of several machines: a path every node mounts (NFS) or a URI
  (``s3://bucket/runs``). Unset: ``~/archtune_runs``, fine on one machine only (a run
  on several nodes that cannot all see it is refused before it starts).

Run it with::

    # on the head node, then on every worker node
    ray start --head --port 6379
    ray start --address HEAD:6379
    # on the driver (any machine that reaches the head and the database)
    export ARCHTUNE_STORAGE='postgresql://me:s3cret@db.example:5432/studies'
    export ARCHTUNE_ADDRESS=HEAD:6379 ARCHTUNE_RUN_DIR=/mnt/shared/archtune_runs
    archtune run examples/cluster_postgres.py
    archtune show digits-cluster            # from any machine with ARCHTUNE_STORAGE set
    archtune resume digits-cluster --address HEAD:6379   # the run directory is stored

Each trial records the node it ran on (``archtune:node``) and Ray's restarts of it after
a node was lost; see docs/clusters.md.
"""

import os

from search import make_controller
from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies import Experiment, RunSettings
from trainers import ImageClassifier

STORAGE = os.environ.get("ARCHTUNE_STORAGE", "").strip()
if not STORAGE:
    raise RuntimeError(
        "Set ARCHTUNE_STORAGE to the study database, e.g. "
        "export ARCHTUNE_STORAGE='postgresql://USER:PASSWORD@HOST:5432/DB' "
        "(see the top of examples/cluster_postgres.py)."
    )

space = SearchSpace(
    {
        "model": ResNetSpace(stages=Int(1, 3), depth=Int(1, 3), width=Categorical([16, 32, 64])),
        "train": TrainingSpace(
            lr=Float(1e-4, 1e-1, log=True),
            batch_size=Categorical([64, 128]),
            optimizer=Categorical(["adamw", "sgd"]),
        ),
    }
)

experiment = Experiment(
    name="digits-cluster",
    space=space,
    objective="val_acc",
    direction="maximize",
    trainer=ImageClassifier(dataset="digits", epochs=10),
    controller=make_controller("evolution", seed=0),
    settings=RunSettings(
        address=os.environ.get("ARCHTUNE_ADDRESS") or None,
        run_dir=os.environ.get("ARCHTUNE_RUN_DIR") or None,
    ),
    num_trials=40,
    max_concurrent=8,  # as many trials as the cluster has room for
    scheduler="asha",
    resources_per_trial={"cpu": 1, "gpu": 0},  # {"cpu": 4, "gpu": 1} on GPU nodes
    max_retries=2,  # restarts of a trial whose node was lost, from its last checkpoint
    storage=STORAGE,
)
