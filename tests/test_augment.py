"""Training-time augmentation (memloc.core.train.augment): what a crop and a flip do to real
Fashion-MNIST images and that it is off by default (an augmented run resumes bitwise:
tests/test_training.py)."""

import torch
import torch.nn.functional as F
from schema_defaults import data_source, default_config, train_config

from memloc.core.train.augment import Augment, augment_batch


def _images(fashion_root, n=64):
    return data_source(fashion_root).load("fashion_mnist", train=True).images[:n]  # uint8 [n, 1, 28, 28]


def test_each_crop_is_a_window_of_the_padded_image_at_its_own_offset(fashion_root):
    images, p = _images(fashion_root), 4
    out = augment_batch(images, Augment(crop_padding=p, hflip=False), torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (p, p, p, p))
    offsets = []
    for i in range(len(images)):
        found = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                 if torch.equal(out[i], padded[i, :, dy : dy + 28, dx : dx + 28])]
        assert found, f"image {i} is no window of its padded image"
        offsets.append(found[0])
    assert len(set(offsets)) > 20  # drawn per example, not one offset for the batch


def test_flips_mirror_about_half_the_images(fashion_root):
    images = _images(fashion_root)
    out = augment_batch(images, Augment(crop_padding=0, hflip=True), torch.Generator().manual_seed(1))
    mirrored = torch.tensor([torch.equal(o, x.flip(-1)) and not torch.equal(o, x) for o, x in zip(out, images)])
    kept = torch.tensor([torch.equal(o, x) for o, x in zip(out, images)])
    assert bool((mirrored | kept).all()) and 16 < int(mirrored.sum()) < 48


def test_same_generator_same_batch_and_off_draws_nothing(fashion_root):
    images, aug = _images(fashion_root), Augment(crop_padding=2, hflip=True)
    a = augment_batch(images, aug, torch.Generator().manual_seed(3))
    assert torch.equal(a, augment_batch(images, aug, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, augment_batch(images, aug, torch.Generator().manual_seed(4)))
    # off (the default config): the batch as it is, and the data order's generator untouched
    off = train_config().augment
    assert off == Augment(**default_config()["train"]["augment"]) and not off.active
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    assert augment_batch(images, off, g) is images and torch.equal(g.get_state(), state)

