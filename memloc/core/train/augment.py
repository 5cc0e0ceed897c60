"""Training-time data augmentation: random crops of the zero-padded image and horizontal flips,
drawn per example on the whole batch at once.

The paper's text names no augmentation.  The authors' released code
(pratyushmaini/localizing-memorization) has it off in its main training script (train.py,
--augmentation 0, whose runs the layer experiments use), but its neuron-flipping script trains
its models through dataloader.py's default: random 32 x 32 crops of the 4-pixel padded image,
random horizontal flips and AutoAugment's CIFAR-10 policy (not implemented here).
Augmentation changes what memorizing an example means: a mislabeled example has to be fitted
in every crop and mirror, not as one fixed input.
Evaluation, flipping and every other measurement see the images as they are.

The draws come from the training's data-order generator (memloc.core.train.sgd.SGD.order), so
a run with augmentation is as reproducible, and resumes as bitwise, as one without; with
augmentation off nothing is drawn and the data order is the one of a run without this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """The config's train.augment."""

    crop_padding: int  # pixels of zero padding on every side; a crop of the original size is drawn from it (0 = none)
    hflip: bool  # mirror each image left-right with probability 1/2

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.hflip


def augment_batch(images: torch.Tensor, augment: Augment, generator: torch.Generator) -> torch.Tensor:
    """uint8 [B, C, H, W] (any device) -> uint8 [B, C, H, W]: each image cropped at its own
    random offset of the zero-padded image and mirrored at random.  Draws on the CPU from
    `generator` (the same draws on any device)."""
    if not augment.active or images.ndim != 4:  # flat inputs (an MLP's) are not images
        return images
    b, _, h, w = images.shape
    out = images
    if augment.crop_padding > 0:
        p = augment.crop_padding
        # offsets in [0, 2p] per example: the crop's top-left corner in the padded image
        dy, dx = torch.randint(0, 2 * p + 1, (2, b), generator=generator).to(images.device)
        padded = F.pad(images, (p, p, p, p))  # [B, C, H + 2p, W + 2p], zeros = black
        rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # [B, H, 1]
        cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]  # [B, 1, W]
        batch = torch.arange(b, device=images.device)[:, None, None]  # [B, 1, 1]
        # advanced indexing over (batch, row, col) with the channel sliced: [B, H, W, C] -> [B, C, H, W]
        out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if augment.hflip:
        mirror = (torch.rand(b, generator=generator) < 0.5).to(images.device)
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out.contiguous()
