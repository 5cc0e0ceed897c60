"""The numbers the paper reports for example-tied dropout (Sec. 6.2, tab1-tab3), which the
paper-vs-ours table (memloc.report.paper_vs_ours) sets beside ours.  Accuracies are in percent."""

from __future__ import annotations

# -- example-tied dropout (Sec. 6.2, tab1-tab3) -------------------------------------------

DROPOUT_SETTING = "{dataset}, ResNet-9, 10% noise, 50 epochs"
# tab1: dataset -> clean / noisy / test accuracy before and after dropping.
PAPER_TAB1 = {
    "cifar10": {"before": (99.9, 99.3, 79.3), "after": (90.8, 3.1, 82.7)},
    "mnist": {"before": (100.0, 100.0, 99.0), "after": (99.2, 0.1, 99.3)},
    "svhn": {"before": (99.9, 99.6, 89.5), "after": (95.8, 1.4, 89.6)},
}
# tab2 (CIFAR-10): p_mem -> (clean, noisy) after dropping, for p_gen = 0.1, 0.2, ..., 0.6.
_TAB2_ROWS = {
    0.1: [(84.2, 2.9), (86.9, 2.8), (87.1, 2.9), (89.9, 3.1), (92.0, 3.9), (93.0, 4.9)],
    0.2: [(86.9, 2.8), (88.2, 3.0), (90.8, 3.1), (91.7, 3.4), (93.6, 4.7), (95.0, 6.9)],
}
# (p_mem, p_gen) -> (clean, noisy) after dropping.
PAPER_TAB2 = {(p_mem, round(0.1 * (i + 1), 1)): v for p_mem, row in _TAB2_ROWS.items() for i, v in enumerate(row)}
# tab3 (CIFAR-10, p_gen = 0.4, p_mem = 0.2): method -> (clean, noisy) training accuracy.
PAPER_TAB3 = {"standard": (100.0, 99.5), "fixed_sparse": (100.0, 99.8), "example_tied": (90.8, 3.1)}
