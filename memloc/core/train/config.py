"""One training's settings (`TrainConfig`) and the checks of its one-cycle schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

from memloc.core.train.augment import Augment


class SettingsError(ValueError):
    """A relation between a settings object's fields that cannot work (TrainConfig's, the
    schedule's); `fields` names them, so that memloc.config names the keys they came from."""

    def __init__(self, message: str, fields: tuple[str, ...]):
        super().__init__(message)
        self.fields = tuple(fields)


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Batches of an epoch over `examples` (the last one may be smaller)."""
    return math.ceil(examples / batch_size)


def check_warmup(cfg: TrainConfig, steps: int) -> None:
    """The one-cycle warm-up of `steps` batches an epoch spans more than one step: OneCycleLR
    divides by (warm-up steps - 1).  memloc.config_settings checks it when the DAG is parsed."""
    total = cfg.epochs * steps
    if cfg.peak_epoch / cfg.epochs * total <= 1:
        raise SettingsError(f"one-cycle schedule of {total} steps ({cfg.epochs} epochs x {steps} batches of "
                            f"{cfg.batch_size}) peaking at epoch {cfg.peak_epoch}: the warm-up must span more than "
                            f"one step; train on more examples, or with a smaller batch_size or a later peak_epoch",
                            ("peak_epoch", "batch_size"))


@dataclass
class TrainConfig:
    """One training's settings: the config's `train` section (or a study's schedule in its
    place), the seed, whether the gradient is accounted per group, and the names of the two
    groups of examples (memloc.runs.plan.train_settings and the other plans make them)."""

    epochs: int
    batch_size: int
    peak_lr: float
    peak_epoch: float  # the one-cycle lr rises linearly from 0 to peak_lr here, then falls to 0
    momentum: float
    weight_decay: float
    seed: int
    eval_batch_size: int
    gradient_accounting: bool
    group_names: tuple[str, str]  # names of group False / True (the data table's group column: RunInputs)
    augment: Augment  # random crops and flips of the training batches (the config's train.augment; a dict is converted)

    def __post_init__(self):
        if isinstance(self.augment, dict):
            self.augment = Augment(**self.augment)
        if not 0 < self.peak_epoch < self.epochs:  # OneCycleLR needs steps on both sides of the peak
            raise SettingsError(f"the one-cycle schedule needs 0 < peak_epoch < epochs, steps on both sides of "
                                f"its learning-rate peak (got peak_epoch {self.peak_epoch}, epochs {self.epochs})",
                                ("peak_epoch", "epochs"))
        self.group_names = tuple(self.group_names)
