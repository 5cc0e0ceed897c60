"""A localization benchmark with ground truth (issue 23): which units does each method of the
literature (neuron flipping, zero-out, activations, integrated gradients, slimming, hard
concrete, random) point at, against the memorization units that example-tied dropout ties to
each example by construction, and what zeroing them does (docs/localization.md)."""
