"""The numbers the paper reports for neuron flipping (Sec. 6.1, fig05) and mislabeled-example
detection, which the paper-vs-ours table (memloc.report.paper_vs_ours) and the auc table set
beside ours.  Shares are in percent, AUCs fractions; each block names the paper's setting."""

from __future__ import annotations

# -- neuron flipping (Sec. 6.1, fig05) ----------------------------------------------------

FIG05_SETTING = "ResNet-9, CIFAR-10, 10% noise, 1000 + 1000 examples, 30 models"
PAPER_FIG05 = {
    "mean_removals_noisy": 5.1,  # units zeroed until the prediction flips, mean over noisy examples
    "mean_removals_clean": 15.7,
    "noisy_flipped_below_10": 90.0,  # % of noisy examples flipped by < 10 removals (the paper: > 90)
    "accuracy_gap": 10.0,  # post-removal training accuracy, noisy minus clean (points)
}

# -- mislabeled-example detection (Sec. 6.1, last paragraph) ------------------------------

AUC_SETTING = "ResNet-9, CIFAR-10, 10% noise"
PAPER_AUC = {"flip count": 0.89, "learning time": 0.87, "second-split forgetting time": 0.93}
