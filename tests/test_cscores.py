"""C-scores: the hold-out estimate, published-file checks and downloads, and groups taken
from any column."""

import hashlib
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch
from schema_defaults import data_source, holdout_config, model_config, source_fields, train_config

from memloc.atypical.cscores import (
    CScoreFileError,
    HoldoutConfig,
    atypical_table,
    holdout_estimate,
    holdout_subset,
    load_published_cscores,
    tfds_order,
)
from memloc.atypical.fetch import fetch_cscores
from memloc.atypical.jobs import fetch_published_cscores, write_atypical_table, write_holdout_report
from memloc.atypical.precision import bootstrap_stability, resampling_units, split_half_jaccard
from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import RunData, training_set
from memloc.core.data.source import DataSource
from memloc.core.train.run import train
from memloc.core.train.tables import run_tables


def test_holdout_estimate_scores_and_unscored():
    # 4 examples, 3 subset models.  Example 0 is held out of every model; example 3 of none.
    in_subset = np.array([[False, True, False, True], [False, False, True, True], [False, True, True, True]])
    correct = np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 1, 1]], dtype=float)
    parts = [pd.DataFrame({"index": range(4), "in_subset": s, "correct": c}) for s, c in zip(in_subset, correct)]
    est = holdout_estimate(parts).set_index("index")
    assert est.loc[0, "times_held_out"] == 3 and est.loc[0, "cscore"] == pytest.approx(2 / 3)
    assert est.loc[1, "times_held_out"] == 1 and est.loc[1, "cscore"] == 1.0  # only model 1 held it out
    assert est.loc[2, "times_held_out"] == 1 and est.loc[2, "cscore"] == 0.0  # model 0 got it wrong: a real 0
    assert est.loc[3, "times_held_out"] == 0 and np.isnan(est.loc[3, "cscore"])  # unscored, not 0
    base = pd.DataFrame({"index": range(4), "label": [0, 1, 2, 3]})
    table = atypical_table(base, est.reset_index(), threshold=0.5)
    assert table["is_atypical"].tolist() == [False, False, True, False]


@pytest.mark.parametrize("n", [400, 401])
def test_complementary_subsets_hold_every_example_out_exactly_k_over_2_times(n):
    cfg = holdout_config(models=8, seed=3)
    masks = np.stack([holdout_subset(n, k, cfg) for k in range(8)])
    assert ((~masks).sum(0) == 4).all()  # every example held out of exactly K / 2 models
    for pair in range(4):
        first, second = masks[2 * pair], masks[2 * pair + 1]
        assert np.array_equal(first, ~second)  # complementary halves
        assert first.sum() == n // 2 and second.sum() == n - n // 2
    assert len({m.tobytes() for m in masks[::2]}) == 4  # each pair its own random half
    again = np.stack([holdout_subset(n, k, holdout_config(models=8, seed=3)) for k in range(8)])
    assert np.array_equal(masks, again)  # deterministic
    assert not np.array_equal(masks[0], holdout_subset(n, 0, holdout_config(models=8, seed=4)))


@pytest.mark.parametrize("settings", [dict(models=7), dict(models=8, fraction=0.25), dict(scheme="bagging")])
def test_holdout_config_refuses_what_the_scheme_cannot_do(settings):
    with pytest.raises(ValueError, match="atypical.holdout"):
        holdout_config(**settings)


def test_independent_holdout_subsets_are_seeded_and_sized():
    cfg = holdout_config(models=4, fraction=0.25, seed=3, scheme="independent")
    masks = [holdout_subset(400, k, cfg) for k in range(4)]
    assert all(m.sum() == 100 for m in masks)
    assert not np.array_equal(masks[0], masks[1])
    assert np.array_equal(masks[2], holdout_subset(400, 2, cfg))


@pytest.fixture
def labels():
    return np.random.default_rng(0).integers(0, 10, size=50)


def test_published_npz_accepted_when_ordered(tmp_path, labels):
    scores = np.linspace(0, 1, 50)
    np.savez(tmp_path / "cifar.npz", labels=labels, scores=scores)
    assert np.array_equal(load_published_cscores(tmp_path / "cifar.npz", labels), scores)


def test_published_npz_rejects_permuted_and_truncated(tmp_path, labels):
    perm = np.random.default_rng(1).permutation(50)
    np.savez(tmp_path / "permuted.npz", labels=labels[perm], scores=np.zeros(50))
    with pytest.raises(CScoreFileError, match="permuted.npz: labels differ"):
        load_published_cscores(tmp_path / "permuted.npz", labels)
    np.savez(tmp_path / "short.npz", labels=labels[:40], scores=np.zeros(40))
    with pytest.raises(CScoreFileError, match="short.npz: 40 scores"):
        load_published_cscores(tmp_path / "short.npz", labels)


def test_published_npy_needs_an_order(tmp_path, labels):
    scores = np.random.default_rng(2).random(50)
    order = np.random.default_rng(3).permutation(50)  # file position i holds dataset example order[i]
    np.save(tmp_path / "mnist.npy", scores)
    with pytest.raises(CScoreFileError, match="mnist.npy: a bare score array"):
        load_published_cscores(tmp_path / "mnist.npy", labels)
    np.save(tmp_path / "order.npy", order)
    aligned = load_published_cscores(tmp_path / "mnist.npy", labels, tmp_path / "order.npy")
    assert np.array_equal(aligned[order], scores)
    np.save(tmp_path / "bad_order.npy", np.zeros(50, dtype=int))
    with pytest.raises(CScoreFileError, match="bad_order.npy: not a permutation"):
        load_published_cscores(tmp_path / "mnist.npy", labels, tmp_path / "bad_order.npy")
    np.save(tmp_path / "long.npy", np.zeros(60))
    with pytest.raises(CScoreFileError, match="long.npy"):
        load_published_cscores(tmp_path / "long.npy", labels, tmp_path / "order.npy")


def test_groups_come_from_any_column(fashion_root, tmp_path):
    """The same split under another column name gives the same numbers: nothing is special-cased."""
    src = data_source(fashion_root)
    table = make_corrupted_table("fashion_mnist", src, 0.2, subset=120, seed=0)
    table["is_atypical"] = table["is_noisy"]
    split, test = src.load("fashion_mnist", True), src.load("fashion_mnist", False)
    model_cfg = model_config("resnet9", 10, 1, 28, width=0.125)
    out = {}
    for column, names in (("is_noisy", ("clean", "noisy")), ("is_atypical", ("typical", "atypical"))):
        cfg = train_config(epochs=2, peak_epoch=1, batch_size=40, group_names=names)
        data = RunData(training_set(table, split, column), test.images[:50], test.labels[:50])
        paths = train(model_cfg, cfg, data, tmp_path / column, torch.device("cpu"), progress=False)
        out[column] = run_tables(paths)["gradients"]
    a, b = out["is_noisy"], out["is_atypical"]
    assert a["group"].map({"clean": "typical", "noisy": "atypical", "total": "total"}).tolist() == b["group"].tolist()
    pd.testing.assert_series_equal(a["norm"], b["norm"])


def test_write_atypical_table_from_holdout_parts(tmp_path):
    base = pd.DataFrame({"index": range(4), "source_index": [7, 3, 5, 1], "label": [0, 1, 2, 3]})
    base.to_parquet(tmp_path / "noise0.parquet")
    parts = []
    for k, (in_subset, correct) in enumerate((([1, 0, 0, 1], [1, 1, 0, 1]), ([0, 1, 0, 1], [1, 0, 0, 1]))):
        parts.append(str(tmp_path / f"holdout{k}.parquet"))
        frame = pd.DataFrame({"index": range(4), "in_subset": np.array(in_subset, bool), "correct": correct})
        frame.astype({"correct": float}).to_parquet(parts[-1])
    table = write_atypical_table(tmp_path / "noise0.parquet", tmp_path / "atypical.parquet", 0.5, holdout_parts=parts)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "atypical.parquet"), table)
    assert table["times_held_out"].tolist() == [1, 1, 2, 0]
    assert table["cscore"].tolist()[:3] == [1.0, 1.0, 0.0] and np.isnan(table["cscore"][3])
    assert table["is_atypical"].tolist() == [False, False, True, False]


def test_write_atypical_table_from_published_scores(fashion_root, tmp_path):
    """Published scores are checked against the split's labels and picked by source_index."""
    source = source_fields(fashion_root)
    base = make_corrupted_table("fashion_mnist", DataSource(**source), 0.0, subset=50, seed=0)
    base.to_parquet(tmp_path / "noise0.parquet")
    labels = DataSource(**source).load("fashion_mnist", train=True).labels.numpy()
    scores = np.linspace(0, 1, len(labels))
    np.savez(tmp_path / "scores.npz", labels=labels, scores=scores)
    published = {"file": str(tmp_path / "scores.npz"), "order": None, "dataset": "fashion_mnist", "source": source}
    table = write_atypical_table(tmp_path / "noise0.parquet", tmp_path / "atypical.parquet", 0.5, published=published)
    assert np.array_equal(table["cscore"].to_numpy(), scores[base["source_index"].to_numpy()])
    assert (table["times_held_out"] == -1).all()
    assert table["is_atypical"].tolist() == (table["cscore"] < 0.5).tolist()


def complementary_parts(n: int, cfg: HoldoutConfig, correct_of) -> list[pd.DataFrame]:
    """Synthetic hold-out parts: correct_of(k, held [n]) -> model k's correctness [n]."""
    parts = []
    for k in range(cfg.models):
        mask = holdout_subset(n, k, cfg)
        parts.append(pd.DataFrame({"index": range(n), "in_subset": mask, "correct": correct_of(k, ~mask)}))
    return parts


def test_bootstrap_stability_separates_clear_from_borderline_examples():
    cfg = holdout_config(models=8)
    held = np.stack([~holdout_subset(200, k, cfg) for k in range(8)])
    clear = np.tile(np.arange(200) % 4 == 0, (8, 1)).astype(float)  # a quarter always right, the rest never
    units = resampling_units(cfg)
    assert bootstrap_stability(held, clear, units, 0.5) == (0.0, 1.0)
    assert split_half_jaccard(held, clear, units, 0.5) == 1.0
    coin = np.random.default_rng(0).random((8, 200)) < 0.5  # every example a coin flip: labels are noise
    flip, jaccard = bootstrap_stability(held, coin.astype(float), units, 0.5)
    assert flip > 10 and jaccard < 0.8  # (measured: 21 % and 0.61)
    assert split_half_jaccard(held, coin.astype(float), units, 0.5) < 0.6
    assert units.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # pairs are resampled whole
    one_pair = resampling_units(holdout_config(models=2))  # nothing to resample: unknown, not stable
    assert np.isnan(bootstrap_stability(held[:2], clear[:2], one_pair, 0.5)).all()


def test_write_holdout_report(tmp_path):
    cfg = holdout_config(models=4)
    rng = np.random.default_rng(1)
    parts = complementary_parts(50, cfg, lambda k, held: (rng.random(50) < 0.8).astype(float))
    files = []
    for k, part in enumerate(parts):
        files.append(str(tmp_path / f"holdout{k}.parquet"))
        part.to_parquet(files[-1])
    base = pd.DataFrame({"index": range(50), "source_index": range(50), "label": 0})
    base.to_parquet(tmp_path / "noise0.parquet")
    write_atypical_table(tmp_path / "noise0.parquet", tmp_path / "atypical.parquet", 0.5, holdout_parts=files)
    out = {k: tmp_path / f"cscore_holdout.{k}" for k in ("parquet", "csv", "md")}
    datasets = {"fashion_mnist": {"table": str(tmp_path / "atypical.parquet"), "parts": files}}
    holdout = asdict(holdout_config(models=4))
    table = write_holdout_report(datasets, holdout, 0.5, out["parquet"], out["csv"], out["md"])
    row = table.iloc[0]
    assert (row["source"], row["scheme"], row["models"], row["examples"]) == ("hold-out", "complementary", 4, 50)
    assert (row["held_out_min"], row["held_out_max"], row["times_held_out"]) == (2, 2, "2: 50")
    atypical = pd.read_parquet(tmp_path / "atypical.parquet")
    assert row["atypical"] == atypical["is_atypical"].sum() and row["unscored"] == 0
    assert 0 <= row["flip_percent"] <= 100 and 0 <= row["atypical_jaccard"] <= 1
    assert 0 <= row["split_half_jaccard"] <= 1
    assert "times_held_out" in out["md"].read_text() and out["csv"].exists()
    pd.testing.assert_frame_equal(pd.read_parquet(out["parquet"]), table)


def test_published_npy_in_tfds_order(tmp_path, labels):
    """order "tfds": file position p holds the example TFDS puts at p (tfds_order)."""
    order = tfds_order(50)
    assert sorted(order) == list(range(50)) and not np.array_equal(order, np.arange(50))
    scores = np.random.default_rng(4).random(50)
    np.save(tmp_path / "mnist.npy", scores)
    aligned = load_published_cscores(tmp_path / "mnist.npy", labels, "tfds")
    assert np.array_equal(aligned[order], scores)


def test_tfds_order_of_mnist_train():
    # TFDS writes MNIST's train split sorted by md5("train" + str(index)); this order aligned
    # the published MNIST scores with their published per-class figure (docs/methods.md)
    order = tfds_order(60_000)
    assert order[:5].tolist() == [16399, 1680, 47917, 17307, 27051]
    assert np.array_equal(np.sort(order), np.arange(60_000))


def published_npz(path, n=50):
    """A file in the published CIFAR-10 format (numpy.savez: int64 labels, float64 scores)."""
    rng = np.random.default_rng(5)
    np.savez(path, labels=rng.integers(0, 10, n), scores=rng.random(n))
    return path.as_uri(), hashlib.sha256(path.read_bytes()).hexdigest(), hashlib.md5(path.read_bytes()).hexdigest()


def test_fetch_cscores_downloads_checks_and_renames(tmp_path):
    url, sha256, md5 = published_npz(tmp_path / "cifar10-cscores-orig-order.npz")
    out = tmp_path / "data" / "cscores" / "cifar10.npz"
    assert fetch_cscores(url, out, 50, sha256=sha256, md5=md5) == out
    assert out.read_bytes() == (tmp_path / "cifar10-cscores-orig-order.npz").read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["cifar10.npz"]  # no temporary left


@pytest.mark.parametrize("wrong", ["sha256", "md5"])
def test_fetch_cscores_refuses_a_wrong_checksum(tmp_path, wrong):
    url, sha256, md5 = published_npz(tmp_path / "published.npz")
    sums = {"sha256": sha256, "md5": md5}
    sums[wrong] = "0" * len(sums[wrong])
    out = tmp_path / "cscores" / "cifar10.npz"
    with pytest.raises(CScoreFileError, match=f"published.npz \\(-> .*cifar10.npz\\): {wrong} .* differs"):
        fetch_cscores(url, out, 50, **sums)
    assert list(out.parent.iterdir()) == []  # nothing put in place, no temporary left


def test_fetch_refuses_a_file_that_does_not_fit_the_dataset(tmp_path):
    url, _, _ = published_npz(tmp_path / "published.npz")  # 50 scores, CIFAR-10 has 50,000 examples
    wrong_length = r"published.npz .*cifar10.npz\): scores of shape \(50,\); the training set has 50000 examples"
    with pytest.raises(CScoreFileError, match=wrong_length):
        fetch_published_cscores(url, tmp_path / "cifar10.npz", "cifar10")
    np.save(tmp_path / "mnist.npy", np.linspace(-0.5, 1.5, 50))
    with pytest.raises(CScoreFileError, match=r"mnist.npy.*: \d+ scores outside \[0, 1\]"):
        fetch_cscores((tmp_path / "mnist.npy").as_uri(), tmp_path / "out.npy", 50)
    (tmp_path / "page.npz").write_text("<html>404</html>")  # what a moved URL may serve
    with pytest.raises(CScoreFileError, match="page.npz .*not a NumPy"):
        fetch_cscores((tmp_path / "page.npz").as_uri(), tmp_path / "out.npz", 50)
    with pytest.raises(OSError, match="missing.npz .*download failed.*by hand"):
        fetch_cscores((tmp_path / "missing.npz").as_uri(), tmp_path / "out.npz", 50)
    assert not (tmp_path / "cifar10.npz").exists() and not (tmp_path / "out.npz").exists()


def test_fetched_tfds_ordered_scores_reach_the_data_table(fashion_root, tmp_path):
    """The MNIST path end to end on real data: a bare .npy in TFDS order (Fashion-MNIST has
    MNIST's TFDS builder, so the same order), fetched, then aligned by order "tfds"."""
    source = source_fields(fashion_root)
    labels = DataSource(**source).load("fashion_mnist", train=True).labels.numpy()
    truth = (labels + np.arange(len(labels)) % 7) / 16  # per original index, in [0, 1)
    np.save(tmp_path / "published.npy", truth[tfds_order(len(labels))])  # as TFDS lists the split
    out = tmp_path / "fashion_mnist.npy"
    fetch_published_cscores((tmp_path / "published.npy").as_uri(), out, "fashion_mnist")
    base = make_corrupted_table("fashion_mnist", DataSource(**source), 0.0, subset=50, seed=0)
    base.to_parquet(tmp_path / "noise0.parquet")
    published = {"file": str(out), "order": "tfds", "dataset": "fashion_mnist", "source": source}
    table = write_atypical_table(tmp_path / "noise0.parquet", tmp_path / "atypical.parquet", 0.5, published=published)
    assert np.array_equal(table["cscore"].to_numpy(), truth[base["source_index"].to_numpy()])
