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

Speed.  The forward pass is split into stages (`forward_stages`: ResNet-9's children,
ResNet-50's stem / blocks / head, the ViT's embedding / each encoder block / head).  The
layers before l are the final ones whatever t is, so per batch the final model's
activation at the input of l's first stage is computed once and each epoch's pass starts
there.  For ResNet-9 this halves the work; for the ViT each block's pass runs only the
blocks from it on.

Memory.  Layers are done one at a time: a layer's states at every rewind epoch (its
history: one layer x E epochs, not the whole model x E) are read from the checkpoint
files, memory-mapped so that only that layer's bytes are read, and put on the device.
The host holds the final model, the data and one checkpoint's mapping at a time.  Since
layer l's results do not depend on any other layer's, a job can stop after any layer and
resume (memloc.layers.jobs.rewind_run keeps the finished layers' rows).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from memloc.core.device import autocast_for
from memloc.core.models.layer_rule import Layer, model_layers
from memloc.core.train.evaluation import prepare_batch

# Where a rewind epoch's state comes from: a model state_dict, or a checkpoint file (only
# the layer's tensors are read from it: open_checkpoint maps the file).
StateSource = Mapping[str, torch.Tensor] | str | os.PathLike


def open_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint, memory-mapped (on the CPU): its tensors are read from the file when
    touched, so taking one layer's tensors reads that layer's bytes, not the whole file
    (nor the optimizer state of a full checkpoint)."""
    return torch.load(path, map_location="cpu", mmap=True, weights_only=False)


def layer_state_keys(model: nn.Module, layer: Layer) -> list[str]:
    """The model's state_dict keys that belong to `layer`: its parameters and its modules'
    buffers (BatchNorm running mean / variance / count), each once; non-persistent buffers
    are not in checkpoints, so they are not part of a layer's state."""
    key_of = {id(t): k for k, t in model.state_dict(keep_vars=True).items()}
    tensors = layer.parameters() + [b for m in layer.modules for b in m.buffers()]
    return list(dict.fromkeys(key_of[id(t)] for t in tensors if id(t) in key_of))


@torch.no_grad()
def rewind_layer(model: nn.Module, layer: Layer, state: Mapping[str, torch.Tensor]) -> None:
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
    def from_states(cls, model: nn.Module, layer: Layer, states: Mapping[int, StateSource]) -> LayerHistory:
        """Read the layer's tensors of every epoch in `states`, one source at a time (a file's
        mapping is dropped once its tensors are copied to the model's device)."""
        keys = layer_state_keys(model, layer)
        own = model.state_dict(keep_vars=True)
        device = next(iter(own.values())).device
        values = {}
        for t, source in states.items():
            state = source if isinstance(source, Mapping) else open_checkpoint(source)["model"]
            values[t] = [state[k].to(device, copy=True) for k in keys]  # a copy: no view into a mapped file
            del state
        targets = [own[k] for k in keys]
        return cls(layer, targets, values, [t.detach().clone() for t in targets])

    @torch.no_grad()
    def load(self, epoch: int | None) -> None:
        """Put in the layer's state of `epoch`; None: its state when the history was made."""
        for target, value in zip(self.targets, self.final if epoch is None else self.values[epoch]):
            target.copy_(value)


class VitEmbedding(nn.Module):
    """torchvision VisionTransformer's forward up to its first encoder block, op for op:
    `_process_input` (patch conv [n, C, H, W] -> [n, dim, H/p, W/p] -> [n, H/p * W/p, dim]),
    the class token prepended, then the encoder's `input + pos_embedding` and dropout.
    Shares the ViT's modules and parameters (holds no copies)."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout
        self.image_size, self.patch_size, self.hidden_dim = vit.image_size, vit.patch_size, vit.hidden_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(f"ViT input {h}x{w}, expected {self.image_size}x{self.image_size}")
        x = self.conv_proj(x)
        x = x.reshape(n, self.hidden_dim, (h // self.patch_size) * (w // self.patch_size)).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


class VitHead(nn.Module):
    """The ViT's forward after its last encoder block: the encoder's final LayerNorm (over
    every token, as the encoder applies it), the class token [n, dim], the classifier."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.ln = vit.encoder.ln
        self.heads = vit.heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.ln(x)[:, 0])


def forward_stages(model: nn.Module) -> list[nn.Module]:
    """The model as a chain of modules whose composition is its (eval-mode) forward pass.

    nn.Sequential (ResNet-9, any sequential model): its children; torchvision ResNet: conv1,
    bn1, relu, maxpool, layer1-4, pool, flatten, fc; torchvision VisionTransformer: the
    embedding, each encoder block, the head; any other model: itself as a single stage
    (then every pass starts at the input).  A layer's pass starts at its first stage from
    the cached input of that stage, so a stage that a layer can start at must not modify
    its input in place (none does: each starts with a conv / linear / LayerNorm).
    """
    from torchvision.models import ResNet, VisionTransformer

    if isinstance(model, nn.Sequential):
        return list(model)
    if isinstance(model, ResNet):
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]
        return [getattr(model, n) for n in names] + [nn.Flatten(1), model.fc]
    if isinstance(model, VisionTransformer):
        return [VitEmbedding(model), *model.encoder.layers, VitHead(model)]
    return [model]


def first_stage(stages: list[nn.Module], layer: Layer) -> int:
    """Index of the first stage that holds any of the layer's parameters or buffers."""
    own = {id(p) for p in layer.parameters()} | {id(b) for m in layer.modules for b in m.buffers()}
    for i, stage in enumerate(stages):
        if own & ({id(p) for p in stage.parameters()} | {id(b) for b in stage.buffers()}):
            return i
    raise ValueError(f"layer {layer.name} is in no forward stage")


@dataclass
class Examples:
    """What a rewound model is measured on: images [n, C, H, W] (uint8, or a declared dataset's
    float), labels [n] and the subset of each, an index into `names` (e.g. 0 = clean, 1 = noisy,
    2 = test)."""

    images: torch.Tensor
    labels: torch.Tensor
    subset: torch.Tensor
    names: list[str]


@torch.no_grad()
def rewound_layers(model: nn.Module, states: Mapping[int, StateSource], examples: Examples, device: torch.device,
                   batch_size: int = 1024, progress: bool = True,
                   skip: frozenset[int] | set[int] = frozenset()) -> Iterator[tuple[int, list[dict]]]:
    """Accuracy of `model` with each layer rewound to each epoch of `states`, per subset of
    `examples`; one layer at a time: yields (layer index, its rows) for each layer of
    `model_layers(model)` not in `skip`.

    model: the final model (on `device`; in eval mode while this runs, restored to its own
    state and mode after each layer).  states: {epoch: model state_dict or checkpoint path}
    of the rewind epochs.
    Rows: (layer_index, layer, epoch, subset, accuracy) for every epoch x present subset.
    """
    was_training = model.training
    model.eval()
    layers = model_layers(model)
    stages = forward_stages(model)
    epochs = sorted(states)
    subset_names = examples.names
    # uint8: one copy per job
    images, labels, subset = examples.images.to(device), examples.labels.to(device), examples.subset.to(device)
    counts = torch.bincount(subset, minlength=len(subset_names))
    totals, present = counts.clamp(min=1), counts.cpu() > 0
    todo = [li for li in range(len(layers)) if li not in skip]
    batches = range(0, len(labels), batch_size)
    bar = tqdm(total=len(batches) * len(todo), desc="rewind", disable=not progress)
    try:
        for li in todo:
            history = LayerHistory.from_states(model, layers[li], states)
            start = first_stage(stages, layers[li])
            # correct[t, s]: correctly classified examples of subset s with the layer at epochs[t]
            correct = torch.zeros(len(epochs), len(subset_names), dtype=torch.int64, device=device)
            for lo in batches:
                y, s = labels[lo : lo + batch_size], subset[lo : lo + batch_size]
                x = prepare_batch(images[lo : lo + batch_size], device)
                with autocast_for(device):
                    for stage in stages[:start]:  # the final model's layers before this one
                        x = stage(x)
                for ti, epoch in enumerate(epochs):
                    history.load(epoch)
                    h = x
                    with autocast_for(device):
                        for stage in stages[start:]:
                            h = stage(h)
                    correct[ti].index_add_(0, s, (h.float().argmax(1) == y).long())
                bar.update()
            history.load(None)  # the next layer is rewound on the final model
            acc = (correct.float() / totals).cpu()
            yield li, [
                {"layer_index": li, "layer": layers[li].name, "epoch": epoch, "subset": name,
                 "accuracy": acc[ti, si].item()}
                for ti, epoch in enumerate(epochs)
                for si, name in enumerate(subset_names)
                if present[si]
            ]
    finally:
        bar.close()
        model.train(was_training)

