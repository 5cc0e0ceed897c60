"""Layer rewinding (Sec. 5.1 of the paper).

For a trained run with checkpoints theta^0 .. theta^T, rewinding layer l to epoch t gives
the model (theta_1^T, .., theta_l^t, .., theta_d^T); we measure its accuracy on the two
groups of training examples (group False / True of the data table, e.g. clean / noisy)
and on the test set, for every layer l and every rewind epoch t.

BatchNorm.  A layer's state is everything its modules hold: parameters *and* buffers, so
rewinding a ResNet-9 ConvBN layer also puts back that layer's BatchNorm running mean and
variance of epoch t; the other layers keep their final statistics, and nothing is
re-estimated.  Why: the running statistics of layer l normalise the output of layer l's
own convolution.  They were estimated for that convolution's weights, so they belong
with them: the final statistics beside the epoch-0 weights would rescale the initial
convolution's output by the final one's variance (off by orders of magnitude), which
measures a mismatch we created, not what the layer has learned.  With the whole state
swapped the model is exactly theta^T with layer l's checkpoint state, as the paper
defines it, and rewinding to t = T is the final model, bit for bit.  Re-estimating
statistics on the training data after rewinding would adapt the model to the data,
which rewinding is meant to avoid.  The model is evaluated in eval mode throughout.

Speed.  A job loads the data and all checkpoints once and keeps every epoch's state of
every layer on the device.  The layers before l are the final ones whatever t is, so the
forward pass is split into stages (`forward_stages`): per batch the final model's
activations at every stage boundary are computed once, and each (layer, epoch) pass
starts at the first stage that contains layer l.  For ResNet-9 this halves the work.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from memloc.core.evaluation import autocast_for, prepare_batch
from memloc.core.models import Layer, model_layers


def layer_state_keys(model: nn.Module, layer: Layer) -> list[str]:
    """The model's state_dict keys that belong to `layer`: its parameters and its modules'
    buffers (BatchNorm running mean / variance / count)."""
    key_of = {id(t): k for k, t in model.state_dict(keep_vars=True).items()}
    tensors = layer.parameters() + [b for m in layer.modules for b in m.buffers()]
    return [key_of[id(t)] for t in tensors]


@torch.no_grad()
def rewind_layer(model: nn.Module, layer: Layer, state: dict[str, torch.Tensor]) -> None:
    """Replace `layer`'s whole state (parameters and BatchNorm buffers) in `model`, in place,
    by its values in `state` (a checkpoint's model state_dict); the rest is untouched."""
    own = model.state_dict(keep_vars=True)
    for key in layer_state_keys(model, layer):
        own[key].copy_(state[key])


@dataclass
class LayerHistory:
    """One layer's tensors in the model and their values at each rewind epoch (on the device)."""

    layer: Layer
    targets: list[torch.Tensor]  # the model's own parameter / buffer tensors
    values: dict[int, list[torch.Tensor]]  # epoch -> values, in the order of `targets`
    final: list[torch.Tensor]  # the model's values when the history was made

    @classmethod
    def from_states(cls, model: nn.Module, layer: Layer, states: dict[int, dict]) -> LayerHistory:
        keys = layer_state_keys(model, layer)
        own = model.state_dict(keep_vars=True)
        device = next(iter(own.values())).device
        values = {t: [s[k].to(device) for k in keys] for t, s in states.items()}
        targets = [own[k] for k in keys]
        return cls(layer, targets, values, [t.detach().clone() for t in targets])

    @torch.no_grad()
    def load(self, epoch: int | None) -> None:
        """Put in the layer's state of `epoch`; None: its state when the history was made."""
        for target, value in zip(self.targets, self.final if epoch is None else self.values[epoch]):
            target.copy_(value)


def forward_stages(model: nn.Module) -> list[nn.Module]:
    """The model as a chain of modules whose composition is its (eval-mode) forward pass.

    nn.Sequential (ResNet-9): its children; torchvision ResNet: stem, layer1-4, pool, fc;
    any other model: itself as a single stage (then every pass starts at the input).
    A layer's pass starts at its first stage from the cached input of that stage, so that
    stage must not modify its input in place (none does: each starts with a conv / linear).
    """
    if isinstance(model, nn.Sequential):
        return list(model)
    if all(hasattr(model, n) for n in ("conv1", "bn1", "maxpool", "layer4", "avgpool", "fc")):
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]
        return [getattr(model, n) for n in names] + [nn.Flatten(1), model.fc]
    return [model]


def first_stage(stages: list[nn.Module], layer: Layer) -> int:
    """Index of the first stage that holds any of the layer's parameters or buffers."""
    own = {id(p) for p in layer.parameters()} | {id(b) for m in layer.modules for b in m.buffers()}
    for i, stage in enumerate(stages):
        if own & ({id(p) for p in stage.parameters()} | {id(b) for b in stage.buffers()}):
            return i
    raise ValueError(f"layer {layer.name} is in no forward stage")


@torch.no_grad()
def rewinding_accuracy(
    model: nn.Module,
    states: dict[int, dict],
    images: torch.Tensor,
    labels: torch.Tensor,
    subset: torch.Tensor,
    subset_names: list[str],
    device: torch.device,
    batch_size: int = 1024,
    progress: bool = True,
) -> pd.DataFrame:
    """Accuracy of `model` with each layer rewound to each epoch of `states`, per subset.

    model: the final model (on `device`; restored to its own state on return).
    states: {epoch: model state_dict} of the rewind epochs.
    images [n, C, H, W] uint8, labels [n], subset [n] int: index into `subset_names` of
    each example (e.g. 0 = clean, 1 = noisy, 2 = test).
    Returns rows (layer_index, layer, epoch, subset, accuracy) for every layer x epoch x subset.
    """
    was_training = model.training
    model.eval()
    layers = model_layers(model)
    stages = forward_stages(model)
    start = [first_stage(stages, layer) for layer in layers]
    histories = [LayerHistory.from_states(model, layer, states) for layer in layers]
    epochs = sorted(states)
    labels, subset = labels.to(device), subset.to(device)
    # correct[l, t, s]: correctly classified examples of subset s with layer l at epochs[t]
    correct = torch.zeros(len(layers), len(epochs), len(subset_names), dtype=torch.int64, device=device)
    batches = range(0, len(labels), batch_size)
    bar = tqdm(total=len(batches) * len(layers), desc="rewind", disable=not progress)
    for lo in batches:
        y, s = labels[lo : lo + batch_size], subset[lo : lo + batch_size]
        acts = [prepare_batch(images[lo : lo + batch_size], device)]  # acts[i] = input of stages[i]
        with autocast_for(device):
            for stage in stages[:-1]:
                acts.append(stage(acts[-1]))
        for li, history in enumerate(histories):
            for ti, epoch in enumerate(epochs):
                history.load(epoch)
                h = acts[start[li]]
                with autocast_for(device):
                    for stage in stages[start[li] :]:
                        h = stage(h)
                hit = (h.float().argmax(1) == y).long()
                correct[li, ti].index_add_(0, s, hit)
            history.load(None)  # the next layer is rewound on the final model
            bar.update()
    bar.close()
    model.train(was_training)
    totals = torch.bincount(subset, minlength=len(subset_names)).clamp(min=1)
    acc = (correct.float() / totals).cpu()
    present = torch.bincount(subset, minlength=len(subset_names)).cpu() > 0
    rows = [
        {"layer_index": li, "layer": layer.name, "epoch": epoch, "subset": name, "accuracy": acc[li, ti, si].item()}
        for li, layer in enumerate(layers)
        for ti, epoch in enumerate(epochs)
        for si, name in enumerate(subset_names)
        if present[si]
    ]
    return pd.DataFrame(rows)

