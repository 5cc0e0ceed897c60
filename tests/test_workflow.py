"""End-to-end: the test preset through the real Snakemake, on real Fashion-MNIST.

One run of the whole preset (module fixture); the tests then check every table against
what the preset's settings imply: row counts and keys, the groups' structure, identities
that hold between tables (a table built from another must agree with it), and value
ranges.  The preset's models barely train (4 epochs on 300 examples), so no test asserts
an accuracy level; the algorithms' own behaviour is unit-tested elsewhere.

Where asked (MEMLOC_TEST_SLURM=1, as CI sets it, or `pytest -m slurm`; root), part of the
same preset also runs on a real one-node SLURM cluster (tests/slurm/run_e2e.sh), started
in the background before the local run, and its tables must equal the local run's.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from memloc.dropout.plan import dropout_name
from memloc.dropout.tables import forgotten_rows

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "tests" / "config" / "test.yaml"
C = yaml.safe_load(PRESET.read_text())

# Every artefact the test preset must produce (figures as PNG + PDF, tables as CSV + MD);
# the preset has Fashion-MNIST only: no fig13 / fig14 / fig16 / fig17.
FIGURES = ["fig01", "fig02", "fig03", "fig04", "fig05", "fig07", "fig08", "fig09", "fig10", "fig11", "fig12",
           "fig15", "fig18", "fig19", "localization"]
TABLES = ["tab1", "tab2", "tab3", "auc", "paper_vs_ours", "claims", "provenance", "localization"]

# The preset's scale, which the counts below are derived from.
N = C["train_subset"]  # training examples
EPOCHS = C["train"]["epochs"]  # checkpoints 0 (init) .. EPOCHS
LAYERS = [f"layer{i}" for i in range(1, 10)]  # ResNet-9: 8 conv-BN blocks and the linear layer
SEEDS = C["seeds"]
GRID = [(float(f), s) for f in C["noise_rates"] for s in SEEDS]  # (noise, seed) of the primary dataset x model
SWEEP = [(float(f), s) for f in C["figures"]["fig11"]["noise_rates"] for s in C["figures"]["fig11"]["seeds"]]
GRADIENT_RUNS = sorted(set(GRID) | set(SWEEP))  # fig01/02/10 (primary), fig11 (sweep), fig12 (grid)
RETRAIN_SEEDS = C["retraining"]["seeds"]
RETRAINED = C["retraining"]["layers"] or LAYERS  # the layers the preset retrains
FLIP_SEEDS, PER_GROUP = C["flipping"]["seeds"], C["flipping"]["examples_per_group"]
METHODS = ["flip count", "learning time", "forgetting events", "area under the margin",
           "second-split forgetting time"]


def noisy_count(noise: float) -> int:
    return round(noise * N)  # exactly round(f n) examples get a wrong label


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(PRESET), *args]
    return subprocess.run(cmd, capture_output=True, text=True)


# A subset of the preset's targets for the SLURM run that covers every kind of submission:
# the corrupted data and a training (single jobs; GPU rules get a GPU), a run's rewinding
# (group rewinding), a run's retraining (group retraining: its two layers in one job) and neuron
# flipping of one seed's two shards (group flipping: one submission); the dataset's fetch
# and the flipping selection are local rules (Snakemake's own process).
# `bash tests/slurm/run_e2e.sh DIR` without targets runs the whole preset (and locally, to compare).
SLURM_SCRIPT = ROOT / "tests" / "slurm" / "run_e2e.sh"
PRIMARY_RUN = "results/runs/fashion_mnist/resnet9/noise0.1/seed0"
PRIMARY_FLIP = "results/flipping/fashion_mnist/resnet9/noise0.1/seed0"
SLURM_TARGETS = [
    f"{PRIMARY_RUN}/rewinding.parquet",
    f"{PRIMARY_RUN}/retraining.parquet",
    *(f"{PRIMARY_FLIP}/shard{k}.parquet" for k in (0, 1)),
]


def slurm_requested(session) -> bool:
    """Whether the SLURM test is asked for (MEMLOC_TEST_SLURM=1 or -m slurm) and selected."""
    markexpr = session.config.getoption("markexpr") or ""
    asked = os.environ.get("MEMLOC_TEST_SLURM") == "1" or "slurm" in markexpr
    selected = any(item.get_closest_marker("slurm") and item.path.name == "test_workflow.py" for item in session.items)
    return asked and "not slurm" not in markexpr and selected


@pytest.fixture(scope="module", autouse=True)
def slurm_run(request, tmp_path_factory):
    """(the real-SLURM run's process, its working directory), started before the local run
    (autouse: first of the module's fixtures) so that the two run side by side; or why it
    cannot run here.  It installs SLURM and changes /etc/slurm, so it runs only where asked."""
    if not slurm_requested(request.session):
        yield "installs and starts SLURM on this machine: set MEMLOC_TEST_SLURM=1 or run pytest -m slurm"
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        yield "needs root and apt-get (Debian/Ubuntu): installs slurmctld/slurmd/munge and starts them"
        return
    workdir = tmp_path_factory.mktemp("slurm")
    with open(workdir / "run_e2e.log", "w") as log:
        process = subprocess.Popen(["bash", str(SLURM_SCRIPT), str(workdir), "--no-local-run", *SLURM_TARGETS],
                                   stdout=log, stderr=subprocess.STDOUT)
    yield process, workdir
    process.wait(timeout=1800)  # its exit stops the daemons it started


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


@pytest.fixture(scope="module")
def table(e2e):
    def read(name: str) -> pd.DataFrame:
        path = e2e / (name if name.endswith(".parquet") else f"results/tables/{name}.parquet")
        return pd.read_parquet(path)
    return read


def runs_of(df: pd.DataFrame) -> list[tuple[float, int]]:
    return sorted({(float(n), int(s)) for n, s in zip(df["noise"], df["seed"])})


def assert_accuracies(df: pd.DataFrame, column: str = "accuracy", scale: float = 1.0):
    values = df[column].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= scale + 1e-9).all(), column


@pytest.mark.slow
def test_every_artefact_is_produced_and_nothing_else(e2e, table):
    figures = {p.name for p in (e2e / "results" / "figures").iterdir()}
    assert figures == {f"{fig}.{ext}" for fig in FIGURES for ext in ("png", "pdf")}
    for name in figures:
        assert (e2e / "results" / "figures" / name).stat().st_size > 1000, name
    for tab in TABLES:
        for ext in ("csv", "md"):
            assert (e2e / "results" / "tables" / f"{tab}.{ext}").stat().st_size > 0
        assert len(table(tab)) > 0, tab


@pytest.mark.slow
def test_run_tables_are_complete(e2e):
    run = e2e / "results/runs/fashion_mnist/resnet9/noise0.1/seed0"
    metrics = pd.read_parquet(run / "metrics.parquet")
    examples = pd.read_parquet(run / "examples.parquet")
    grads = pd.read_parquet(run / "gradients.parquet")
    assert sorted(metrics["epoch"].unique()) == list(range(EPOCHS + 1))
    assert set(metrics["subset"]) == {"train", "clean", "noisy", "test"}
    assert len(examples) == N * (EPOCHS + 1)
    assert (examples.groupby("epoch")["index"].apply(sorted).map(list) == [list(range(N))] * (EPOCHS + 1)).all()
    assert grads["layer"].nunique() == len(LAYERS) and sorted(grads["epoch"].unique()) == list(range(1, EPOCHS + 1))
    assert len((run / "checkpoints.txt").read_text().split()) == EPOCHS + 1
    data = pd.read_parquet(e2e / "results/data/fashion_mnist/noise0.1.parquet")
    assert len(data) == N and data["is_noisy"].sum() == noisy_count(0.1)
    assert (data["is_noisy"] == (data["label"] != data["true_label"])).all()


@pytest.mark.slow
def test_rerun_has_nothing_to_do(e2e):
    result = snakemake(e2e, "-n", "--cores", "1")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_gradient_table_has_both_groups_and_their_total(table):
    g = table("gradients")
    # every gradient run x layer x training epoch x {clean, noisy, total}
    assert runs_of(g) == GRADIENT_RUNS
    assert len(g) == len(GRADIENT_RUNS) * len(LAYERS) * EPOCHS * 3
    assert set(g["group"]) == {"clean", "noisy", "total"} and sorted(g["layer"].unique()) == LAYERS
    assert sorted(g["epoch"].unique()) == list(range(1, EPOCHS + 1))
    keys = ["noise", "seed", "epoch", "layer"]
    assert (g.groupby(keys)["group"].nunique() == 3).all()
    assert (g.groupby(keys)["cosine"].nunique() == 1).all()  # one cosine per (run, epoch, layer)
    assert g["cosine"].between(-1, 1).all() and (g["norm"] >= 0).all()
    # the optimizer's gradient is the sum of the groups' (App. A.2): per batch
    # |g_clean| - |g_noisy| <= |g_total| <= |g_clean| + |g_noisy|, so also for the epoch means
    w = g.pivot_table(index=keys, columns="group", values="norm")
    assert (w["total"] <= w["clean"] + w["noisy"] + 1e-6).all()
    assert (w["total"] >= (w["clean"] - w["noisy"]).abs() - 1e-6).all()


@pytest.mark.slow
def test_metrics_table_has_every_run_epoch_and_subset(table):
    m = table("metrics")
    assert runs_of(m) == GRADIENT_RUNS
    assert len(m) == len(GRADIENT_RUNS) * (EPOCHS + 1) * 4  # epochs 0..E x train / clean / noisy / test
    assert set(m["subset"]) == {"train", "clean", "noisy", "test"}
    assert_accuracies(m)
    assert (m["loss"] > 0).all()
    # training accuracy is the groups' accuracies weighted by their sizes
    w = m.pivot_table(index=["noise", "seed", "epoch"], columns="subset", values="accuracy").reset_index()
    noisy = w["noise"].map(noisy_count)
    assert np.allclose(w["train"], (w["clean"] * (N - noisy) + w["noisy"] * noisy) / N, atol=1e-6)


@pytest.mark.slow
def test_layer_tables_cover_every_layer_epoch_and_run(table):
    rewinding, retraining, metrics = table("rewinding"), table("retraining"), table("metrics")
    # rewinding: every run of the grid (fig03, fig15); per run every layer x every
    # checkpoint x clean / noisy / test, plus the training curve (layer "all", layer_index
    # -1: every checkpoint x train / clean / noisy / test)
    assert runs_of(rewinding) == sorted(GRID)
    per_run = rewinding.groupby(["noise", "seed"]).size()
    assert (per_run == len(LAYERS) * (EPOCHS + 1) * 3 + (EPOCHS + 1) * 4).all()
    layers = rewinding[rewinding["layer_index"] >= 0]
    assert sorted(layers["layer"].unique()) == LAYERS and set(layers["subset"]) == {"clean", "noisy", "test"}
    assert sorted(layers["epoch"].unique()) == list(range(EPOCHS + 1))
    assert_accuracies(rewinding)
    # the curve is the training run's own measurement
    curve = rewinding[rewinding["layer_index"] < 0]
    joined = curve.merge(metrics, on=["dataset", "model", "noise", "seed", "epoch", "subset"], suffixes=("", "_m"))
    assert len(joined) == len(curve) == len(sorted(GRID)) * (EPOCHS + 1) * 4
    assert np.allclose(joined["accuracy"], joined["accuracy_m"], atol=1e-9)
    # rewinding a layer to the final epoch leaves the final model: its accuracy
    final = layers[layers["epoch"] == EPOCHS].merge(curve[curve["epoch"] == EPOCHS], on=["noise", "seed", "subset"],
                                                    suffixes=("", "_final"))
    assert len(final) == len(GRID) * len(LAYERS) * 3
    assert np.allclose(final["accuracy"], final["accuracy_final"], atol=1e-9)

    # retraining: every noise rate x retraining seed (fig04, fig18), one table per layer:
    # retraining epochs 0 (the reset model) .. R x train / clean / noisy / test
    r_epochs = C["retraining"]["epochs"]
    assert runs_of(retraining) == sorted((float(f), s) for f in C["noise_rates"] for s in RETRAIN_SEEDS)
    assert len(retraining) == len(C["noise_rates"]) * len(RETRAIN_SEEDS) * len(RETRAINED) * (r_epochs + 1) * 4
    assert sorted(retraining["layer"].unique()) == sorted(RETRAINED)
    assert set(retraining["epoch"]) == set(range(r_epochs + 1))
    assert set(retraining["subset"]) == {"train", "clean", "noisy", "test"}
    assert_accuracies(retraining)


@pytest.mark.slow
def test_atypical_tables(table):
    data = table("results/data/fashion_mnist/atypical.parquet")
    models = C["atypical"]["holdout"]["models"]
    assert len(data) == N and not data["is_noisy"].any() and (data["label"] == data["true_label"]).all()
    # hold-out C-scores: the mean correctness over the models that did not see the example;
    # one never held out is unscored (NaN), not atypical
    assert data["times_held_out"].between(0, models).all()
    assert (data["cscore"].isna() == (data["times_held_out"] == 0)).all()
    scored = data.dropna(subset=["cscore"])
    assert scored["cscore"].between(0, 1).all() and not data.loc[data["cscore"].isna(), "is_atypical"].any()
    # a threshold separates them: every atypical example scores below every typical one (where
    # the preset's few-epoch hold-out models leave both groups non-empty)
    atypical, typical = scored.loc[scored["is_atypical"], "cscore"], scored.loc[~scored["is_atypical"], "cscore"]
    assert atypical.empty or typical.empty or atypical.max() < typical.min()

    runs = len(C["atypical"]["datasets"]) * len(SEEDS)  # noise-free runs of the primary model, every seed
    g = table("atypical_gradients")
    assert set(g["group"]) == {"typical", "atypical", "total"} and set(g["noise"]) == {0.0}
    assert len(g) == runs * len(LAYERS) * EPOCHS * 3
    rw = table("atypical_rewinding")
    assert len(rw) == runs * (len(LAYERS) * (EPOCHS + 1) * 3 + (EPOCHS + 1) * 4)
    assert set(rw.loc[rw["layer_index"] >= 0, "subset"]) == {"typical", "atypical", "test"}
    rt = table("atypical_retraining")
    assert sorted(rt["seed"].unique()) == RETRAIN_SEEDS
    r_epochs = C["retraining"]["epochs"]
    assert len(rt) == len(C["atypical"]["datasets"]) * len(RETRAIN_SEEDS) * len(RETRAINED) * (r_epochs + 1) * 4
    assert set(rt["subset"]) == {"train", "typical", "atypical", "test"}
    for df in (rw, rt):
        assert_accuracies(df)


@pytest.mark.slow
def test_dropout_tables_are_drawn_from_the_dropout_runs(e2e, table):
    d = C["dropout"]
    metrics = table("dropout_metrics")
    tied = metrics[metrics["method"] == "example_tied"]
    grid = sorted((g, m) for g in d["grid"]["p_gen"] for m in d["grid"]["p_mem"])
    assert sorted(set(zip(tied["p_gen"], tied["p_mem"]))) == grid
    assert set(metrics["method"]) == {"example_tied", "standard", "fixed_sparse"}
    subsets = ["train", "clean", "noisy", "test"]
    # tied runs are also measured with the memorization units dropped ("/drop")
    assert set(tied["subset"]) == {*subsets, *(f"{s}/drop" for s in subsets)}
    assert set(metrics.loc[metrics["method"] != "example_tied", "subset"]) == set(subsets)
    assert len(metrics) == (EPOCHS + 1) * (len(grid) * 8 + 2 * 4)  # one seed
    assert_accuracies(metrics)
    final = metrics[metrics["epoch"] == EPOCHS]  # the preset leaves dropout.epochs null: train.epochs

    def acc(method: str, p_gen: float, p_mem: float, subset: str) -> float:
        same = np.isclose(final["p_gen"], p_gen) & np.isclose(final["p_mem"], p_mem)
        rows = final[(final["method"] == method) & same & (final["subset"] == subset)]
        assert len(rows) == 1, (method, p_gen, p_mem, subset)
        return 100 * float(rows["accuracy"].iloc[0])

    # tab1: clean / noisy / test before and after dropping, the preset's p_gen / p_mem (percent)
    tab1 = table("tab1")
    assert len(tab1) == 2 * 3 and set(zip(tab1["when"], tab1["subset"])) == {
        (w, s) for w in ("before", "after") for s in ("clean", "noisy", "test")}
    for r in tab1.itertuples():
        assert (r.p_gen, r.p_mem) == (d["p_gen"], d["p_mem"])
        suffix = "/drop" if r.when == "after" else ""
        assert r.accuracy == pytest.approx(acc("example_tied", r.p_gen, r.p_mem, r.subset + suffix), abs=1e-4)
    # tab2: clean / noisy after dropping for every grid cell
    tab2 = table("tab2")
    assert len(tab2) == len(grid) * 2 and sorted(set(zip(tab2["p_gen"], tab2["p_mem"]))) == grid
    for r in tab2.itertuples():
        assert r.accuracy == pytest.approx(acc("example_tied", r.p_gen, r.p_mem, r.subset + "/drop"), abs=1e-4)
    # tab3: the two baselines (nothing to drop) and example-tied after dropping
    tab3 = table("tab3")
    assert len(tab3) == 3 * 2 and set(tab3["method"]) == {"standard", "fixed_sparse", "example_tied"}
    for r in tab3.itertuples():
        suffix = "/drop" if r.method == "example_tied" else ""
        assert r.accuracy == pytest.approx(acc(r.method, r.p_gen, r.p_mem, r.subset + suffix), abs=1e-4)

    # fig07: clean examples right before dropping, wrong after; how many a 4-epoch model
    # forgets is luck (perhaps none), so the table is checked against the run's own records
    fig07 = table("fig07")
    max_images = C["dropout"].get("fig07", {}).get("max_images", 32)  # the schema's default
    [examples] = e2e.glob(f"results/dropout/runs/fashion_mnist/resnet9/noise*/"
                          f"{dropout_name('example_tied', d['p_gen'], d['p_mem'])}/seed*/examples.parquet")
    data = table(f"results/data/fashion_mnist/{examples.parents[2].name}.parquet")
    lost, n_clean = forgotten_rows(pd.read_parquet(examples), data)
    assert n_clean == N - noisy_count(0.1)
    assert fig07["index"].tolist() == lost["index"].head(max_images).tolist()
    assert (fig07["forgotten"] == len(lost)).all() and (fig07["clean"] == n_clean).all()
    assert (fig07["label"] != fig07["prediction"]).all()
    assert (fig07["image"].map(len) == fig07["channels"] * fig07["height"] * fig07["width"]).all()


@pytest.mark.slow
def test_flipping_and_detection_tables(table):
    flips = table("flipping")
    # every flipping seed flips the same 2 x examples_per_group examples, half of them noisy
    assert sorted(flips["seed"].unique()) == FLIP_SEEDS and len(flips) == len(FLIP_SEEDS) * 2 * PER_GROUP
    for _, f in flips.groupby("seed"):
        assert f["index"].is_unique and f["is_noisy"].sum() == PER_GROUP
    assert flips.groupby("index")["seed"].nunique().eq(len(FLIP_SEEDS)).all()
    cap = C["flipping"]["max_removals"]
    assert flips["removals"].between(0, cap).all()
    assert (flips.loc[flips["censored"], "removals"] == cap).all()  # censored: still not flipped at the cap
    assert (flips["removed_units"].map(len) == flips["removals"]).all()
    assert (flips["removed_layers"].map(len) == flips["removals"]).all()
    flipped = flips[~flips["censored"]]
    assert (flipped["flipped_to"] != flipped["label"]).all()  # the search stops when the prediction leaves the label
    assert ((flips["removals"] == 0) == ~flips["initially_correct"]).all()  # a wrong prediction needs no removal
    for col in ("accuracy_clean", "accuracy_noisy", "accuracy_train"):
        assert_accuracies(flips, col)

    scores = table("detection_scores")
    assert len(scores) == len(FLIP_SEEDS) * N  # every training example of every flipping run
    per_seed = scores.groupby("seed")
    assert (per_seed["flipped"].sum() == 2 * PER_GROUP).all() and (per_seed["is_noisy"].sum() == noisy_count(0.1)).all()
    assert (scores["flip count"].notna() == scores["flipped"]).all()
    assert scores[METHODS[1:4]].notna().all().all()

    auc = table("auc")
    # every method on the flipped examples; all but the flip count on every example it scores
    assert sorted(auc["method"].unique()) == sorted(METHODS)
    assert len(auc) == 2 * len(METHODS) - 1
    assert set(auc.loc[auc["method"] == "flip count", "examples"]) == {"flipped examples"}
    assert auc["auc"].between(0, 1).all() and (auc["seeds"] == len(FLIP_SEEDS)).all()
    on_flipped = auc[(auc["examples"] == "flipped examples") & (auc["method"] != "second-split forgetting time")]
    assert (on_flipped["n_clean"] == PER_GROUP).all() and (on_flipped["n_noisy"] == PER_GROUP).all()
    on_all = auc[(auc["examples"] == "all scored examples") & auc["method"].isin(METHODS[1:4])]
    assert len(on_all) == 3 and (on_all["n_noisy"] == noisy_count(0.1)).all()
    assert (on_all["n_clean"] + on_all["n_noisy"] == N).all()
    paper = auc.drop_duplicates("method").set_index("method")["paper_auc"]
    assert paper[["flip count", "learning time", "second-split forgetting time"]].tolist() == [0.89, 0.87, 0.93]


@pytest.mark.slow
def test_atlas_joins_the_runs_records_for_every_training_example(e2e, table):
    """The atlas of the preset's primary run: one row per training example, its flipping
    columns the flipping table's, its Data Map from the run's own per-epoch losses, and the
    page with one thumbnail per row."""
    folder = e2e / "results" / "atlas" / "fashion_mnist" / "resnet9" / "noise0.1"
    atlas = pd.read_parquet(folder / "atlas.parquet").set_index("index")
    assert len(atlas) == N and atlas.index.is_unique and atlas["is_noisy"].sum() == noisy_count(0.1)
    flips = table("flipping")
    assert set(atlas.index[atlas["flipped"]]) == set(flips["index"])
    for seed, f in flips.groupby("seed"):
        f = f.set_index("index")
        assert (atlas.loc[f.index, f"removals_s{seed}"] == f["removals"]).all()
        assert (atlas.loc[f.index, f"layers_s{seed}"] == f["removed_layers"].map(",".join)).all()
    run = e2e / "results" / "runs" / "fashion_mnist" / "resnet9" / "noise0.1" / f"seed{FLIP_SEEDS[0]}"
    ex = pd.read_parquet(run / "examples.parquet")
    p = np.exp(-ex[ex["epoch"] >= 1]["loss"].astype(float)).groupby(ex[ex["epoch"] >= 1]["index"])
    np.testing.assert_allclose(atlas["confidence"], p.mean().reindex(atlas.index), rtol=1e-5)
    from memloc.config import load_config

    k = load_config(PRESET)["atlas"]["neighbours"]
    assert atlas["confidence"].between(0, 1).all() and atlas["neighbours"].map(len).eq(k).all()
    page = folder / "page"
    assert (page / "index.html").exists() and len(list((page / "images").glob("*.png"))) == N
    groups = pd.read_csv(folder / "data_map.csv").set_index("group")  # the report's view of it
    assert groups["examples"].sum() == N and groups.loc["noisy", "examples"] == noisy_count(0.1)


@pytest.mark.slow
def test_localization_tables(e2e, table):
    """The benchmark's long table: every track x example x method x k, values in range; the
    summary has a row per method."""
    from memloc.localize.ground_truth import ks_up_to

    loc = {**{"tracks": ["ground_truth", "deletion"], "shards": 1}, **C["localization"]}
    methods = ["flipping", "zero_out", "activations", "integrated_gradients", "slimming", "hard_concrete", "random"]
    df = table("localization")
    examples = 2 * loc["examples_per_group"]
    gt, dl = df[df["track"] == "ground_truth"], df[df["track"] == "deletion"]
    assert list(dict.fromkeys(gt["method"])) == methods == list(dict.fromkeys(dl["method"]))
    assert gt["units"].nunique() == 1 and gt["index"].nunique() == examples == dl["index"].nunique()
    assert len(gt) == examples * len(methods) * len(ks_up_to(int(gt["units"].iloc[0])))
    assert len(dl) == examples * len(methods) * len(loc["ks"]) and sorted(dl["k"].unique()) == loc["ks"]
    assert gt["is_noisy"].sum() == len(gt) / 2 and dl["is_noisy"].sum() == len(dl) / 2, "as many noisy as clean"
    for col in ("precision", "recall", "chance", "chance_active"):
        assert gt[col].between(0, 1).all(), col
    assert np.allclose(gt["chance"], gt["units"] / gt["candidates"])
    assert (gt["chance_active"] > gt["chance"]).all()
    at_n = gt[gt["k"] == gt["units"]]
    assert np.allclose(at_n["precision"], at_n["recall"])
    for col in ("drop_clean", "drop_noisy", "drop_test"):
        assert dl[col].between(-1, 1).all(), col
    assert (df["seconds"] >= 0).all() and df["flipped"].dtype == bool
    summary = pd.read_csv(e2e / "results/tables/localization.csv")
    assert list(summary["method"]) == methods and summary.filter(like="precision").stack().between(0, 1).all()


@pytest.mark.slow
def test_paper_vs_ours_joins_every_stage(table):
    pv = table("paper_vs_ours")
    assert list(pv.columns) == ["artefact", "quantity", "paper", "ours", "paper_setting", "our_setting", "n", "note"]
    # tab1: 6 numbers; tab2: the grid cells in the paper's grid (p_gen 0.4 x p_mem 0.1 / 0.2)
    # x clean / noisy; tab3: 3 methods x clean / noisy; fig05: 4 numbers; auc: the 3 the paper reports
    counts = pv.groupby("artefact").size().to_dict()
    assert counts == {"tab1": 6, "tab2": 4, "tab3": 6, "fig05": 4, "auc": 3}
    assert pv["paper"].notna().all() and not pv["quantity"].duplicated().any()
    # a number that cannot be computed (a mean over an empty group) is NaN with a note saying
    # why, and only such a number
    assert (pv["ours"].isna() == (pv["note"] != "")).all()
    tab1 = table("tab1")
    ours = pv[pv["artefact"] == "tab1"].set_index("quantity")["ours"]
    for r in tab1.itertuples():
        assert ours[f"{r.subset} accuracy {r.when} dropping (%)"] == pytest.approx(r.accuracy)
    auc = table("auc").set_index(["method", "examples"])
    rows = pv[pv["artefact"] == "auc"].set_index("quantity")
    for method, examples in (("flip count", "flipped examples"), ("learning time", "all scored examples")):
        row, ref = rows.loc[f"ROC AUC, {method}"], auc.loc[(method, examples)]
        assert row["ours"] == pytest.approx(ref["auc"]) and row["n"] == ref["n_clean"] + ref["n_noisy"]
    # fig05 averages over the examples predicted as labelled before any removal; whether a
    # 4-epoch model has learned any selected noisy example is luck, so check the bookkeeping
    flips = table("flipping")
    selected = flips.groupby("index")["is_noisy"].first()
    correct = flips[flips["initially_correct"]].groupby("index").agg(
        is_noisy=("is_noisy", "first"), removals=("removals", "mean"))
    fig05 = pv[pv["artefact"] == "fig05"].set_index("quantity")
    for group, noisy in (("noisy", True), ("clean", False)):
        row = fig05.loc[f"mean removals to flip, {group}"]
        removals = correct.loc[correct["is_noisy"] == noisy, "removals"]
        assert row["n"] == len(removals)
        if len(removals) == 0:
            assert np.isnan(row["ours"])
            assert row["note"].startswith(f"none of the {(selected == noisy).sum()} {group} examples flipped is "
                                          "predicted as its label before any removal")
        else:
            assert row["ours"] == pytest.approx(removals.mean()) and row["note"] == ""


CLAIM_COLUMNS = ["claim", "paper", "criterion", "ours", "verdict", "margin", "seeds", "bootstrap", "reason"]
BOOTSTRAPPED = {"fewer units", "post-removal accuracy", "flip count detects"}  # over examples


def seed_words(seeds: str) -> dict[int, str]:
    """'0: holds (+0.12); 1: fails (-0.03)' -> {0: 'holds', 1: 'fails'}."""
    return {int(s.split(": ")[0]): s.split(": ")[1].split(" ")[0] for s in seeds.split("; ")}


@pytest.mark.slow
def test_claims_say_how_sure_they_are(e2e, table):
    from memloc.report.claims import CLAIMS, evaluate_claims
    from memloc.report.criteria import Setting
    from memloc.report.plan import ATYPICAL_CLAIM_TABLES, CLAIM_TABLES

    claims = table("claims")
    assert list(claims.columns) == CLAIM_COLUMNS and claims["claim"].tolist() == [c.name for c in CLAIMS]
    assert set(claims["verdict"]) <= {"holds", "fails", "inconclusive"}  # the preset runs every experiment
    by_claim = claims.set_index("claim")
    # per-seed verdicts on the seeds each experiment ran
    rewound = C.get("rewinding", {}).get("seeds") or SEEDS
    expected = {"late memorization": SEEDS, "rewinding: no critical layer": rewound, "fewer units": FLIP_SEEDS,
                "flip count detects": FLIP_SEEDS, "retraining restores": RETRAIN_SEEDS}
    for claim, seeds in expected.items():
        assert sorted(seed_words(by_claim.loc[claim, "seeds"])) == sorted(seeds), claim
    for r in claims.itertuples():
        words = set(seed_words(r.seeds).values()) if not r.seeds.startswith("pooled only") else set()
        if r.verdict in ("holds", "fails"):  # every part agrees
            assert words <= {r.verdict}, r
            assert r.margin >= 0 if r.verdict == "holds" else not r.margin >= 0, r
        else:
            assert r.reason, r  # inconclusive says why
        decided = not r.reason.startswith("pooled undecided")
        assert bool(r.bootstrap) == (r.claim in BOOTSTRAPPED and decided), r
        if r.bootstrap:
            assert re.fullmatch(r".+: 95% CI \[.+, .+\]; holds in [\d.]+% of 1000 resamples", r.bootstrap), r
    # the table is a function of the tables: evaluated again, it is the same (a fixed bootstrap seed)
    names = CLAIM_TABLES + ATYPICAL_CLAIM_TABLES
    setting = Setting(**C["primary"], fig01_window=tuple(C["figures"]["fig01"]["epochs"]), groups=("clean", "noisy"))
    again = evaluate_claims({name: table(name) for name in names}, setting)
    pd.testing.assert_frame_equal(again, claims)


@pytest.mark.slow
def test_provenance_names_every_run_and_what_made_it(e2e, table):
    prov = table("provenance").set_index("source")
    atypical = [f"results/runs/fashion_mnist/resnet9/atypical/seed{s}" for s in SEEDS]
    runs = [f"results/runs/fashion_mnist/resnet9/noise{f:g}/seed{s}" for f, s in GRADIENT_RUNS] + atypical
    dropout = sorted(str(p.parent.relative_to(e2e)) for p in (e2e / "results/dropout/runs").rglob("provenance.json"))
    assert len(dropout) == len(table("dropout_metrics")[["variant", "seed"]].drop_duplicates())
    runs += dropout
    assert sorted(prov.index) == sorted(runs + ["tables (this job)"])
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert (prov["memloc_commit"] == head.strip()).all()
    # "yes" in the locked environment; .ci/run-latest (MEMLOC_UNLOCKED=1) runs off the lock on purpose
    unlocked = os.environ.get("MEMLOC_UNLOCKED") == "1"
    assert (prov["matches_lock"].str.startswith("no: ") if unlocked else prov["matches_lock"] == "yes").all()
    assert (prov["torch"] == torch_version()).all()
    trained = prov.loc[runs]
    assert (trained["device"] == "cpu").all() and (trained["threads"] == str(C["threads"])).all()
    assert set(trained["precision"]) <= {"bf16", "fp32"} and trained["precision"].nunique() == 1
    for run in runs:  # the table's rows are the runs' own records
        record = json.loads((e2e / run / "provenance.json").read_text())
        assert prov.loc[run, "precision"] == record["precision"] and prov.loc[run, "cpu"] == record["cpu"]
    summary = (e2e / "results" / "tables" / "provenance.md").read_text()
    assert f"{len(runs)} training runs" in summary and "| precision" in summary


def torch_version() -> str:
    from importlib.metadata import version
    return version("torch").split("+")[0]


@pytest.mark.slow
def test_report_has_every_figure_and_table_with_a_caption(e2e):
    result = snakemake(e2e, "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-5000:]
    html = (e2e / "results" / "report.html").read_text()
    entries = json.loads(re.search(r"var results = (\{.*?\});\n", html, flags=re.S).group(1))
    atlas = "results/atlas/fashion_mnist/resnet9/noise0.1"
    expected = [f"results/figures/{f}.png" for f in FIGURES] + [f"results/tables/{t}.csv" for t in TABLES] + [
        f"{atlas}/data_map.csv", f"{atlas}/single_removal_layers.csv"]
    assert set(entries) == set(expected)
    for path, entry in entries.items():  # workflow/report/*.rst, rendered for this run
        caption = entry["caption"]
        if path.endswith("paper_vs_ours.csv"):  # one row per number, each with its own setting
            assert "scale" in caption, path
            continue
        if path.endswith("provenance.csv"):  # what made the results, not a result at a scale
            assert "requirements.lock" in caption, path
            continue
        # every other caption states the scale it was made at: the preset's
        assert f"{N}-example training subset" in caption and f"{EPOCHS} epochs" in caption, (path, caption)


@pytest.mark.slurm
def test_the_preset_on_a_real_slurm_cluster_writes_the_local_runs_tables(slurm_run, e2e):
    if isinstance(slurm_run, str):
        pytest.skip(slurm_run)
    process, workdir = slurm_run
    process.wait(timeout=1800)
    out = (workdir / "run_e2e.log").read_text()
    if process.returncode == 77:  # this machine cannot run it (e.g. a SLURM of its own is running)
        pytest.skip(out.strip().splitlines()[-1])
    assert process.returncode == 0, out[-6000:]
    assert "SLURM jobs, all COMPLETED" in out, out[-3000:]
    # every table of the SLURM run equals the local run's (which ran the whole preset)
    tables = subprocess.run([sys.executable, str(ROOT / "tests" / "slurm" / "check_run.py"), "tables",
                             str(workdir / "slurm"), str(e2e)], capture_output=True, text=True)
    assert tables.returncode == 0, tables.stdout + tables.stderr[-3000:]
    assert "parquet tables equal to the local run's" in tables.stdout
    print(out, tables.stdout)
