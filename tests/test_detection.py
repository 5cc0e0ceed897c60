"""Mislabeled-example detection: the AUC helper, the per-epoch scores on hand-made records,
and the second-split forgetting job on a tiny real run."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch
from schema_defaults import data_source, model_settings, run_inputs, source_fields, train_config

from memloc.core.data.noise import make_corrupted_table
from memloc.core.files import write_parquet
from memloc.flipping.detection import (
    METHODS,
    area_under_margin,
    auc_rows,
    detection_scores,
    forgetting_events,
    learning_time,
    roc_auc,
    seed_scores,
    settled_epoch,
)
from memloc.flipping.jobs import second_split_forgetting
from memloc.flipping.second_split import split_rows


def test_auc_of_known_rankings():
    noisy = [False, False, True, True]
    assert roc_auc(noisy, [0.1, 0.2, 0.8, 0.9]) == 1.0  # every noisy example scores higher
    assert roc_auc(noisy, [0.9, 0.8, 0.2, 0.1]) == 0.0  # every noisy example scores lower
    assert roc_auc(noisy, [0.5, 0.5, 0.5, 0.5]) == 0.5  # no information
    assert roc_auc([False, True, False, True], [1, 1, 2, 2]) == 0.5
    assert np.isnan(roc_auc([True, True], [1, 2]))  # one group only


def records(rows: dict[int, list[bool]], margins: dict[int, list[float]] | None = None) -> pd.DataFrame:
    """A run's examples table from per-example correctness over epochs 0, 1, 2, ..."""
    out = []
    for index, seq in rows.items():
        for epoch, correct in enumerate(seq):
            margin = margins[index][epoch] if margins else 0.0
            out.append({"epoch": epoch, "index": index, "correct": correct, "loss": 0.0, "margin": margin})
    return pd.DataFrame(out)


T, F = True, False


def test_learning_time_is_the_first_epoch_from_which_an_example_stays_correct():
    ex = records({
        0: [T, T, T, T, T],  # right from the initialization
        1: [F, T, F, T, T],  # learned for good at epoch 3
        2: [F, F, F, F, T],  # at the last epoch
        3: [F, T, T, T, F],  # wrong at the end: never learned (E + 1 = 5)
        4: [F, F, F, F, F],
    })
    assert learning_time(ex).to_dict() == {0: 0, 1: 3, 2: 4, 3: 5, 4: 5}
    assert settled_epoch(np.array([[F, T], [F, T], [F, F]]), False).tolist() == [0, 2]


def test_forgetting_events_count_correct_to_wrong_transitions_after_the_init():
    ex = records({
        0: [T, T, T, T, T],  # never forgotten
        1: [T, F, T, F, T],  # epochs 1..4: F T F T -> one event (epoch 3); init -> 1 is not counted
        2: [F, T, F, T, F],  # epochs 1..4: T F T F -> two events
        3: [T, F, F, F, F],  # never correct after the init: "infinitely" forgotten, E + 1 = 5
    })
    assert forgetting_events(ex).to_dict() == {0: 0, 1: 1, 2: 2, 3: 5}


def test_area_under_margin_averages_epochs_after_the_init():
    ex = records({0: [F, T, T], 1: [F, F, T]}, margins={0: [-9.0, 1.0, 3.0], 1: [5.0, -2.0, 0.0]})
    assert area_under_margin(ex).to_dict() == {0: 2.0, 1: -1.0}


def test_auc_rows_average_scores_over_seeds_and_name_their_examples():
    # two seeds; the per-seed flip counts rank imperfectly, their mean ranks perfectly
    rows = []
    for seed, counts in ((0, [3, 5, 4, 1]), (1, [5, 3, 1, 4])):
        for index, (count, noisy) in enumerate(zip(counts, [F, F, T, T])):
            rows.append({"seed": seed, "index": index, "is_noisy": noisy, "flipped": True, "flip count": -count,
                         **{m: float(noisy) for m in METHODS if m != "flip count"}})
    rows.append({"seed": 0, "index": 9, "is_noisy": False, "flipped": False, "flip count": np.nan,
                 **{m: 0.0 for m in METHODS if m != "flip count"}})
    table = auc_rows(pd.DataFrame(rows)).set_index(["method", "examples"])
    flip = table.loc[("flip count", "flipped examples")]
    assert flip["auc"] == 1.0 and flip["auc_seed_mean"] == 0.75 and flip["paper_auc"] == 0.89
    assert ("flip count", "all scored examples") not in table.index
    lt = table.loc[("learning time", "all scored examples")]
    assert lt["auc"] == 1.0 and lt["n_clean"] == 3 and lt["n_noisy"] == 2 and lt["paper_auc"] == 0.87
    assert table.loc[("learning time", "flipped examples"), "n_clean"] == 2
    assert np.isnan(table.loc[("forgetting events", "all scored examples"), "paper_auc"])


def test_detection_scores_join_the_seeds_with_flip_counts_and_groups():
    examples = records({0: [F, T, T], 1: [F, F, F], 2: [T, T, T]})
    second = pd.DataFrame({"index": [0, 2], "ssft": [1, 3]})  # row 1 is in split B
    flipping = pd.DataFrame({"seed": [0, 0, 1], "index": [0, 1, 0], "removals": [4, 2, 9]})
    per_seed = [seed_scores(seed, examples, second, flipping) for seed in (0, 1)]
    scores = detection_scores(per_seed, pd.Series([False, True, False], index=[0, 1, 2]))
    assert list(scores.columns) == ["seed", "index", "is_noisy", "flipped", *METHODS]
    assert scores["seed"].tolist() == [0, 0, 0, 1, 1, 1] and scores["index"].tolist() == [0, 1, 2] * 2
    assert scores["is_noisy"].tolist() == [False, True, False] * 2
    assert scores["flipped"].tolist() == [True, True, False, True, False, False]
    flips = scores["flip count"].tolist()
    assert flips[:2] == [-4.0, -2.0] and flips[3] == -9.0 and np.isnan(flips[2]) and np.isnan(flips[4])
    assert scores["learning time"].tolist()[:3] == [1, 3, 0]
    ssft = scores["second-split forgetting time"].tolist()
    assert ssft[0] == -1.0 and ssft[2] == -3.0 and np.isnan(ssft[1])


def test_flipping_paper_rows_set_ours_beside_the_papers(tmp_path):
    from memloc.report.paper_vs_ours import write_flipping_rows as paper_rows

    flips = pd.DataFrame({"seed": [0, 0, 1, 1], "index": [0, 1, 0, 1], "is_noisy": [F, T, F, T],
                          "removals": [20, 3, 10, 5], "accuracy_train": [0.9, 0.7, 0.9, 0.8],
                          "initially_correct": [T, T, T, T]})
    auc = pd.DataFrame({"method": ["flip count", "learning time"], "examples": ["flipped examples"] * 2,
                        "auc": [0.75, 0.6], "n_clean": [1, 1], "n_noisy": [1, 1]})
    write_parquet(flips, tmp_path / "flipping.parquet")
    write_parquet(auc, tmp_path / "auc.parquet")
    rows = paper_rows(tmp_path / "flipping.parquet", tmp_path / "auc.parquet", tmp_path / "rows.parquet", "ours")
    assert rows["artefact"].tolist() == ["fig05"] * 4 + ["auc"] * 3
    assert rows["paper"].tolist() == [5.1, 15.7, 90.0, 10.0, 0.89, 0.87, 0.93]
    assert rows["ours"].tolist()[:4] == pytest.approx([4.0, 15.0, 100.0, -15.0])
    assert rows["n"].tolist()[:5] == [1, 1, 1, 2, 2]  # examples averaged over: one per group here
    # learning time is compared on every scored example, which this auc table lacks
    assert rows["ours"].iloc[4] == 0.75 and rows["ours"].iloc[5:].isna().all()
    assert rows["n"].tolist()[5:] == [0, 0] and rows["note"].iloc[5].startswith("the auc table has no learning")
    assert (rows["note"].iloc[:5] == "").all()
    assert (rows["our_setting"] == "ours").all()
    assert pd.read_parquet(tmp_path / "rows.parquet").equals(rows)


def test_fig05_rows_of_a_group_with_no_initially_correct_example_say_why(tmp_path):
    """A few-epoch model may predict no noisy example as its label: no mean, n = 0, a note."""
    from memloc.report.paper_vs_ours import write_flipping_rows as paper_rows

    flips = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1], "index": [0, 1, 2] * 2, "is_noisy": [F, T, T] * 2,
                          "initially_correct": [T, F, F, T, F, F], "removals": [6, 0, 0, 8, 0, 0],
                          "accuracy_train": [0.9, 0.7, 0.7, 0.9, 0.8, 0.8]})
    auc = pd.DataFrame({"method": ["flip count"], "examples": ["flipped examples"], "auc": [0.5],
                        "n_clean": [1], "n_noisy": [2]})
    write_parquet(flips, tmp_path / "flipping.parquet")
    write_parquet(auc, tmp_path / "auc.parquet")
    rows = paper_rows(tmp_path / "flipping.parquet", tmp_path / "auc.parquet", tmp_path / "rows.parquet", "ours")
    fig05 = rows[rows["artefact"] == "fig05"].set_index("quantity")
    noisy = fig05.loc[["mean removals to flip, noisy", "noisy examples flipped by < 10 removals (%; paper: > 90)"]]
    assert noisy["ours"].isna().all() and (noisy["n"] == 0).all()
    assert (noisy["note"] == "none of the 2 noisy examples flipped is predicted as its label before any removal "
                             "(fig05 averages over initially-correct examples)").all()
    clean = fig05.loc["mean removals to flip, clean"]
    assert clean["ours"] == 7.0 and clean["n"] == 1 and clean["note"] == ""
    gap = fig05.loc["post-removal training accuracy, noisy minus clean (points)"]
    assert np.isnan(gap["ours"]) and gap["n"] == 1 and gap["note"] == noisy["note"].iloc[0]


def test_second_split_forgetting_on_a_tiny_run(fashion_root, tmp_path):
    torch.set_num_threads(1)
    table = make_corrupted_table("fashion_mnist", data_source(fashion_root), 0.2, subset=120, seed=0)
    write_parquet(table, tmp_path / "data.parquet")
    first = asdict(train_config(epochs=3, peak_epoch=1, batch_size=32, seed=0, gradient_accounting=False))
    inputs = run_inputs(tmp_path / "data.parquet", "fashion_mnist", source_fields(fashion_root), None)
    out = second_split_forgetting(inputs, tmp_path / "run" / "ssft.parquet", model_settings("resnet9", width=0.0625),
                                  first, {"epochs": 2, "peak_epoch": 1}, {"fraction": 0.5, "seed": 3},
                                  torch.device("cpu"))
    assert out["index"].tolist() == split_rows(120, 0.5, 3).tolist()  # split A, 60 rows
    assert len(out) == 60 and out["ssft"].between(0, 3).all()
    assert not out.loc[out["ssft"] == 0, "learned_first"].any()  # 0: wrong from before fine-tuning on
    assert pd.read_parquet(tmp_path / "run" / "ssft.parquet").equals(out)
    assert (tmp_path / "run" / "first_split" / "epoch_003.pt").exists()
    a, b = split_rows(120, 0.5, 3), split_rows(120, 0.5, 4)
    assert len(set(a)) == 60 and not np.array_equal(a, b)
