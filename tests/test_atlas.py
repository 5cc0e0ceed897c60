"""The atlas table (memloc.atlas.table), its plan and its page files, on a small atlas of real
Fashion-MNIST images (tests/atlas_data.py)."""

import json

import numpy as np
import pytest
import torch
from atlas_data import FASHION, small_atlas, write_small_page
from schema_defaults import resolved_config

from memloc.atlas import plan
from memloc.atlas.neighbours import nearest
from memloc.atlas.page import page_data
from memloc.atlas.summary import data_map_groups, single_removal_layers
from memloc.atlas.table import build_atlas

pytestmark = pytest.mark.skipif(not __import__("os").path.isdir(FASHION), reason=f"{FASHION} missing")


@pytest.fixture(scope="module")
def atlas():
    return small_atlas()


def test_data_map_columns_are_mean_and_std_of_exp_minus_loss(atlas):
    table, parts = atlas
    ex = parts["examples"]
    row = ex[(ex["index"] == 7) & (ex["epoch"] >= 1)]
    p = np.exp(-row["loss"].astype(float))
    got = table.set_index("index").loc[7]
    assert got["confidence"] == pytest.approx(p.mean())
    assert got["variability"] == pytest.approx(np.std(p.to_numpy()))  # Data Maps: the population std
    assert len(table) == 300 and table["index"].tolist() == list(range(300))


def test_flipping_columns_per_seed_and_averaged(atlas):
    table, parts = atlas
    flips = parts["flipping"]
    i = int(flips["index"].iloc[0])
    got = table.set_index("index").loc[i]
    mine = flips[flips["index"] == i].set_index("seed")
    assert got["flipped"]
    for s in (0, 1):
        assert got[f"removals_s{s}"] == mine.loc[s, "removals"]
        assert got[f"layers_s{s}"] == ",".join(mine.loc[s, "removed_layers"])
    assert got["removals_mean"] == pytest.approx(mine["removals"].mean())
    assert table["flipped"].sum() == flips["index"].nunique()
    assert table.loc[~table["flipped"], "removals_s0"].isna().all()


def test_unconfigured_measurements_are_absent_not_nan(atlas):
    _, parts = atlas
    bare = build_atlas(parts["data"], parts["examples"], {})
    for absent in ("cscore", "is_atypical", "ssft", "flipped", "removals_s0", "tied_correct", "neighbours"):
        assert absent not in bare.columns
    assert {"learning_time", "forgetting_events", "aum", "confidence", "variability"} <= set(bare.columns)


def test_atypical_joined_by_source_index_and_dropout_last_epoch(atlas):
    _, parts = atlas
    data, ex = parts["data"], parts["examples"]
    atypical = data[["source_index"]].iloc[::-1].assign(cscore=np.linspace(0, 1, len(data)))
    atypical["is_atypical"] = atypical["cscore"] < 0.5
    dropout = ex.assign(correct_drop=~ex["correct"])
    t = build_atlas(data, ex, {"atypical": atypical, "dropout": dropout}).set_index("index")
    src = data.set_index("index")["source_index"]
    assert t.loc[3, "cscore"] == atypical.set_index("source_index").loc[src[3], "cscore"]
    # a row without a C-score is neither typical nor atypical: NA in the table, null on the page,
    # plain "clean" in the Data Map summary
    partial = build_atlas(data, ex, {"atypical": atypical.iloc[::2]}).set_index("index")
    missing = partial["cscore"].isna()
    assert 0 < missing.sum() < len(data) and partial.loc[missing, "is_atypical"].isna().all()
    assert partial.loc[~missing, "is_atypical"].notna().all()
    page = page_data(partial.reset_index(), {"title": ""})
    assert {"name": "is_atypical", "kind": "bool"} in page["columns"]
    assert set(page["data"]["is_atypical"]) == {0, 1, None}
    groups = data_map_groups(partial.assign(confidence=0.5, variability=0.1))
    clean_without = int((missing & ~partial["is_noisy"]).sum())
    assert groups.loc["clean", "examples"] == clean_without
    last = ex[ex["epoch"] == ex["epoch"].max()].set_index("index")
    assert (t["tied_correct"] == last["correct"]).all() and (t["tied_correct_drop"] == ~last["correct"]).all()


def test_nearest_neighbours_exclude_self_and_rank_by_cosine():
    f = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9], [1, 1.0]])
    nn = nearest(f, 2)
    assert nn["neighbours"][0].tolist()[0] == 1 and 0 not in nn["neighbours"][0].tolist()
    assert nn["neighbours"][2].tolist()[0] == 3


def test_summaries(atlas):
    table, _ = atlas
    groups = data_map_groups(table)
    assert groups["examples"].sum() == len(table) and set(groups.index) == {"clean", "noisy"}
    layers = single_removal_layers(table)
    ones = sum(((table[f"removals_s{s}"] == 1) & (table[f"censored_s{s}"] == 0)).sum() for s in (0, 1))
    assert (layers["noisy"] + layers["clean"]).sum() == ones


def test_page_files(tmp_path):
    atlas, html = write_small_page(tmp_path / "page")
    page = tmp_path / "page"
    assert sorted(p.name for p in (page / "images").iterdir())[:2] == ["0.png", "1.png"]
    assert len(list((page / "images").iterdir())) == len(atlas)
    text = (page / "index.html").read_text()
    assert "http://" not in text and "https://" not in text  # nothing from the network
    data = json.loads(text.split('type="application/json">')[1].split("</script>")[0])
    assert data["data"]["index"] == atlas["index"].tolist()
    assert (page / "detail" / "0.js").read_text().startswith("atlasDetail(0,")


def test_plan_seed_inputs_and_targets():
    config = resolved_config({"seeds": [3, 1], "flipping": {"seeds": [1, 2]}})
    assert plan.atlas_run(config)["seed"] == 1
    files = plan.table_inputs(config)
    p = config["primary"]
    setting = f"{p['dataset']}/{p['model']}/noise{p['noise']:g}"
    assert files["examples"] == f"results/runs/{setting}/seed1/examples.parquet"
    assert "atypical" in files and "dropout" in files
    files = ("atlas.parquet", "page", "data_map.csv", "data_map.md", "single_removal_layers.csv",
             "single_removal_layers.md")
    assert plan.targets(config) == [f"results/atlas/{setting}/{f}" for f in files]
    other = resolved_config({"dropout": {"noise": p["noise"] + 0.1}, "atypical": {"datasets": []}})
    assert {"atypical", "dropout"}.isdisjoint(plan.table_inputs(other))
    assert plan.targets(resolved_config({"atlas": {"enabled": False}})) == []
