"""Recipe: your own image data, and your own trainer class.

**The data** is an image folder, ``ROOT/<class>/<image>.png``: the layout
``trainers.load_data("folder", data_dir=ROOT)`` reads, as does
``ImageClassifier(dataset="folder", data_dir=ROOT)`` (``ROOT/train|val|test/<class>/``
gives fixed splits; ``image_size=`` resizes). This file draws one the first time it is
loaded: 16x16 grayscale circles, squares and crosses of random size and place, under the
system's temporary directory (``ARCHTUNE_SHAPES_DIR`` puts it elsewhere: on a cluster of
several machines, a directory every node mounts).

**The trainer**, ``ShapesMLP``, subclasses ``trainers.Trainer`` and keeps its contract:

- ``check_space`` refuses, before the run, a space it cannot train;
- ``run`` trains one configuration, calls ``session.report`` once per epoch with its
  metrics and a checkpoint (a dict of tensors and plain values), and goes on from
  ``session.restore()`` when Ray restarts the trial or a resume continues it;
- ``spec`` returns its constructor arguments: the study stores them with the class and
  this file's path, so ``archtune resume shapes-mlp`` rebuilds the trainer;
- ``name`` registers it, ``metrics`` names what every epoch reports, ``final_metrics``
  what the last epoch adds (both may be objectives).

Run it with::

    archtune run examples/custom_data_trainer.py
    archtune show shapes-mlp
"""

import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from spaces import Float, Int, SearchSpace
from studies import Experiment
from trainers import Trainer, TrialSession, load_data

SHAPES = ("circle", "square", "cross")
SIZE = 16


def draw_shapes(root: str, per_class: int = 100, seed: int = 0) -> str:
    """Write ``per_class`` PNG images of each shape under ``root/<shape>/``, once."""
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for shape in SHAPES:
        os.makedirs(os.path.join(root, shape), exist_ok=True)
        for i in range(per_class):
            r = rng.uniform(3.0, 6.0)
            cy, cx = rng.uniform(r, SIZE - 1 - r, size=2)
            dy, dx = np.abs(yy - cy), np.abs(xx - cx)
            if shape == "circle":
                mask = dy**2 + dx**2 <= r**2
            elif shape == "square":
                mask = (dy <= 0.8 * r) & (dx <= 0.8 * r)
            else:
                mask = ((dy <= 1) & (dx <= r)) | ((dx <= 1) & (dy <= r))
            pixels = 200.0 * mask + rng.normal(30.0, 20.0, (SIZE, SIZE))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(os.path.join(root, shape, f"{i:03d}.png"))
    open(done, "w").close()
    return root


class ShapesMLP(Trainer):
    """A multilayer perceptron on the pixels of an image folder.

    Args:
        data_dir: The image folder.
        epochs: Epochs of a trial.
        seed: Seed of the split, the initialisation and the batch order.
    """

    name = "example_shapes_mlp"
    metrics = ("epoch", "val_acc", "val_loss", "train_loss")
    final_metrics = ("params",)

    def __init__(self, data_dir: str, epochs: int = 10, seed: int = 0) -> None:
        self.data_dir, self.max_epochs, self.seed = data_dir, epochs, seed

    def spec(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "epochs": self.max_epochs, "seed": self.seed}

    def check_space(self, space: SearchSpace) -> None:
        missing = sorted({"hidden", "layers", "lr", "dropout"} - set(space))
        if missing:
            raise ValueError(f"ShapesMLP needs {missing} in the space.")

    def run(
        self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession
    ) -> dict[str, float]:
        data = load_data("folder", data_dir=self.data_dir, seed=self.seed)  # on the CPU
        x_train, x_val = data.x_train.flatten(1), data.x_val.flatten(1)
        with torch.random.fork_rng():  # a seeded initialisation, the global RNG untouched
            torch.manual_seed(self.seed)
            model = _mlp(x_train.shape[1], data.num_classes, config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"])
        state, start = session.restore(), 0
        if state is not None:  # a restarted or resumed trial goes on from its checkpoint
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = state["epoch"]
        order = torch.Generator()
        metrics: dict[str, float] = {}
        for epoch in range(start + 1, self.max_epochs + 1):
            order.manual_seed(self.seed * 10_000 + epoch)  # the same batches after a restart
            model.train()
            losses = []
            for idx in torch.randperm(len(x_train), generator=order).split(64):
                loss = nn.functional.cross_entropy(model(x_train[idx]), data.y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            model.eval()
            with torch.no_grad():
                logits = model(x_val)
            metrics = {
                "epoch": epoch,
                "val_acc": (logits.argmax(1) == data.y_val).float().mean().item(),
                "val_loss": nn.functional.cross_entropy(logits, data.y_val).item(),
                "train_loss": float(np.mean(losses)),
            }
            if epoch == self.max_epochs:
                metrics["params"] = float(sum(p.numel() for p in model.parameters()))
            checkpoint = {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
            }
            session.report(metrics, checkpoint)
        return metrics


def _mlp(inputs: int, classes: int, config: Mapping[str, Any]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(config["layers"]):
        layers += [nn.Linear(inputs, config["hidden"]), nn.ReLU(), nn.Dropout(config["dropout"])]
        inputs = config["hidden"]
    return nn.Sequential(*layers, nn.Linear(inputs, classes))


DATA_DIR = draw_shapes(
    os.environ.get("ARCHTUNE_SHAPES_DIR")
    or os.path.join(tempfile.gettempdir(), "archtune-example-shapes")
)

experiment = Experiment(
    name="shapes-mlp",
    space=SearchSpace(
        {
            "hidden": Int(16, 256, log=True),
            "layers": Int(1, 3),
            "lr": Float(1e-3, 3e-2, log=True),
            "dropout": Float(0.0, 0.5),
        }
    ),
    objective="val_acc",
    direction="maximize",
    trainer=ShapesMLP(DATA_DIR, epochs=10),
    controller="tpe",
    seed=0,
    num_trials=20,
    max_concurrent=2,
    scheduler="asha",
    resources_per_trial={"cpu": 1, "gpu": 0},
    storage="sqlite:///archtune.db",
)
