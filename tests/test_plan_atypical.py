"""memloc.atypical.plan on the real offline default (config.yaml, loaded as the Snakefile
loads it: memloc.config.load_config): the typical/atypical runs, where the C-scores come from,
the hold-out models' settings and fig08's selection."""

import copy
from pathlib import Path

import pytest

from memloc.atypical.plan import (
    AtypicalTables,
    atypical_runs,
    atypical_tables,
    cscore_downloads,
    cscore_inputs,
    fetch_dataset_pattern,
    fig08_selection,
    holdout_model,
    holdout_parts,
    holdout_report,
    holdout_settings,
    published_cscores,
)
from memloc.config import ConfigError, load_config
from memloc.config_checks import check_config

ROOT = Path(__file__).resolve().parents[1]
SOURCE = {"root": "data", "download": False, "verify_checksums": True}


@pytest.fixture
def config():
    # as the Snakefile has it: validated against workflow/schemas/config.schema.yaml
    # (snakemake.utils.validate fills in the defaults), then its nulls resolved
    return load_config(ROOT / "config.yaml")


def with_published_cifar10(config):
    config = copy.deepcopy(config)
    config["atypical"]["datasets"] = ["fashion_mnist", "cifar10"]
    config["atypical"]["cscore_files"] = {"cifar10": {"file": "data/cscores/cifar10.npz", "order": None}}
    return config


PAPER_URLS = {
    "cifar10": "https://pluskid.github.io/structural-regularity/cscores/cifar10-cscores-orig-order.npz",
    "mnist": "https://raw.githubusercontent.com/pluskid/structural-regularity/"
    "021c363637e4433ab28910376128a6764b9db362/mnist-cscores.npy",
}


@pytest.fixture
def paper():
    return load_config(ROOT / "config" / "paper.yaml")


def test_atypical_runs_of_the_default(config):
    # noise-free runs of the primary model on every seed, one per atypical dataset x seed
    assert atypical_runs(config) == [
        {"dataset": "fashion_mnist", "model": "resnet9", "noise": 0.0, "seed": s, "variant": "atypical"} for s in (0, 1)
    ]
    assert [r["seed"] for r in atypical_runs(config, [0])] == [0]  # the layer experiments' seeds


def test_atypical_tables(config):
    tables = atypical_tables(config, "gradients")
    assert isinstance(tables, AtypicalTables)
    assert tables.files == [f"results/runs/fashion_mnist/resnet9/atypical/seed{s}/gradients.parquet" for s in (0, 1)]
    assert tables.runs == atypical_runs(config)


def test_holdout_parts_one_per_subset_model(config):
    models = config["atypical"]["holdout"]["models"]
    assert models >= 8 and models % 2 == 0  # complementary pairs: every example held out >= 4 times
    assert holdout_parts(config, "fashion_mnist") == [
        f"results/cscores/fashion_mnist/holdout{k}.parquet" for k in range(models)
    ]


def test_a_bad_holdout_scheme_stops_the_plan(config):
    config = copy.deepcopy(config)
    config["atypical"]["holdout"].update(models=7, scheme="complementary")
    with pytest.raises(ValueError, match="models must be even"):
        holdout_parts(config, "fashion_mnist")


def test_holdout_report_inputs(config):
    config = with_published_cifar10(config)
    assert holdout_report(config) == {
        "fashion_mnist": {"table": "results/data/fashion_mnist/atypical.parquet",
                          "parts": holdout_parts(config, "fashion_mnist")},
        "cifar10": {"table": "results/data/cifar10/atypical.parquet", "parts": []},
    }


def test_published_scores_replace_the_holdout_estimate(config):
    assert published_cscores(config, "fashion_mnist", SOURCE) is None  # no published file: estimated
    config = with_published_cifar10(config)
    assert holdout_parts(config, "cifar10") == []
    assert len(holdout_parts(config, "fashion_mnist")) == config["atypical"]["holdout"]["models"]
    assert published_cscores(config, "cifar10", SOURCE) == {
        "file": "data/cscores/cifar10.npz",
        "order": None,
        "dataset": "cifar10",
        "source": SOURCE,
    }


def test_holdout_model_is_the_primary_model_with_its_settings(config):
    builtin = {"factory": None, "layers": None, "flip_modules": None, "dropout_after": None}
    assert holdout_model(config) == {"name": "resnet9", "settings": {"width": 0.25}, **builtin}
    config = copy.deepcopy(config)
    config["primary"]["model"] = "resnet50"  # model_settings.resnet50: {}
    assert holdout_model(config) == {"name": "resnet50", "settings": {}, **builtin}
    assert holdout_settings(config) == {**config["train"], "gradient_accounting": False,
                                        "group_names": ["clean", "noisy"]}  # the seed: each model's own


def test_fig08_selection(config):
    assert fig08_selection(config) == {"datasets": ["fashion_mnist"], "model": "resnet9", "window": [6, 8]}


def test_the_paper_preset_fetches_both_published_files(paper):
    # nothing placed by hand: each file comes from its published address, with its checksum
    downloads = cscore_downloads(paper)
    assert {d: x["url"] for d, x in downloads.items()} == PAPER_URLS
    assert all(len(x["sha256"]) == 64 and x["md5"] is None for x in downloads.values())
    assert {d: x["file"] for d, x in downloads.items()} == {
        "cifar10": "data/cscores/cifar10.npz", "mnist": "data/cscores/mnist.npy"}
    assert fetch_dataset_pattern(paper) == "cifar10|mnist"
    # atypical_data reads the downloaded file (so it depends on fetch_cscores), MNIST's in TFDS order
    assert cscore_inputs(paper, "mnist") == ["data/cscores/mnist.npy"]
    assert published_cscores(paper, "mnist", SOURCE) == {
        "file": "data/cscores/mnist.npy", "order": "tfds", "dataset": "mnist", "source": SOURCE}
    assert holdout_parts(paper, "cifar10") == holdout_parts(paper, "mnist") == []


def test_no_downloads_in_the_default(config):
    assert cscore_downloads(config) == {} and cscore_inputs(config, "fashion_mnist") == []
    assert fetch_dataset_pattern(config) == "(?!)"  # the rule matches no file


def published(config, **entry):
    """config with published scores for its atypical dataset (download: true, so the data
    check passes without the dataset)."""
    config = copy.deepcopy(config)
    config["download"] = True
    config["atypical"]["cscore_files"] = {"fashion_mnist": entry}
    return config


def test_a_missing_file_is_fine_when_fetch_cscores_makes_it(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a fresh clone: no data/cscores
    check_config(published(config, url="https://example.org/fm.npz"))
    check_config(published(config, url="file:///mirror/fm.npy", order="tfds", sha256="a" * 64))
    (tmp_path / "fm.npz").touch()
    check_config(published(config, file="fm.npz"))


@pytest.mark.parametrize(("entry", "message"), [
    ({}, "cscore_files.fashion_mnist: give either `url` .* or `file` .*, not neither"),
    ({"order": "tfds"}, "not neither"),
    ({"url": "https://example.org/fm.npz", "file": "fm.npz"}, "not both"),
    ({"file": "data/cscores/absent.npz"}, "cscore_files.fashion_mnist.file: file 'data/cscores/absent.npz' does not"),
    ({"url": "https://example.org/fm.npy"}, "cscore_files.fashion_mnist.order: .*fm.npy is a bare score array"),
    ({"url": "https://example.org/fm.npy", "order": "order.npy"}, "order: file 'order.npy' does not exist"),
    ({"url": "https://example.org/fm.csv"}, "fm.csv is not an .npz or .npy file"),
])
def test_a_cscore_entry_that_cannot_work_names_the_key(config, tmp_path, monkeypatch, entry, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        check_config(published(config, **entry))
