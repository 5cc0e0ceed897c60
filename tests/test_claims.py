"""Each claim's criterion on small synthetic tables where it must hold and where it must fail,
and how sure the claims table is: per-seed verdicts, the bootstrap over examples, margins,
and the cases where the tables cannot decide (which must say so, never pass)."""

import numpy as np
import pandas as pd
import pytest

from memloc.report.claims import CLAIMS, COLUMNS, evaluate_claims
from memloc.report.criteria import Setting, accuracy_curves, late_memorization, memorization_window
from memloc.report.example_criteria import roc_auc
from memloc.report.verdicts import Bootstrap, Condition, Verdict, bootstrap, conclude, judged

SETTING = Setting(dataset="d", model="m", noise=0.1, fig01_window=(2, 6), groups=("clean", "noisy"))
RUN = {"dataset": "d", "model": "m", "noise": 0.1}
EPOCHS = range(0, 11)
LAYERS = range(9)
SEEDS = (0, 1)
FEW = 100  # bootstrap resamples where a test does not look at the bootstrap (2 CPU cores)


def frame(rows: list[dict], seeds=SEEDS, **run) -> pd.DataFrame:
    """The rows once per training seed, with the run columns in front."""
    return pd.DataFrame([{**RUN, "seed": s, **run, **r} for s in seeds for r in rows])


def metrics(noisy_final: float = 1.0, noisy_late: bool = True, seeds=SEEDS) -> pd.DataFrame:
    """Clean learned by epoch 2; noisy rises over epochs 5-9 (or with the clean ones)."""
    rows = []
    for e in EPOCHS:
        clean = min(1.0, e / 2)
        noisy = min(noisy_final, max(0.0, (e - 4) / 5)) if noisy_late else min(noisy_final, e / 2)
        rows += [{"epoch": e, "subset": "clean", "accuracy": clean}, {"epoch": e, "subset": "noisy", "accuracy": noisy}]
    return frame(rows, seeds)


def gradients(total_factor: float, noisy_factor: float, cosine: float) -> pd.DataFrame:
    rows = []
    for e in EPOCHS[1:]:
        for layer in LAYERS:
            norms = {"clean": 1.0, "noisy": noisy_factor, "total": total_factor}
            rows += [{"epoch": e, "layer_index": layer, "group": g, "norm": v, "cosine": cosine}
                     for g, v in norms.items()]
    return frame(rows)


def rewinding(kept: float, last_kept: float, noisy_final: float = 1.0) -> pd.DataFrame:
    """Noisy accuracy per layer rewound to every epoch; layer_index -1 is the training curve
    (seed 0 only, as the defaults rewind)."""
    m = metrics(noisy_final, seeds=(0,))
    rows = [{"layer_index": -1, "epoch": r.epoch, "subset": r.subset, "accuracy": r.accuracy} for r in m.itertuples()]
    for layer in LAYERS:
        acc = last_kept if layer == 8 else kept
        rows += [{"layer_index": layer, "epoch": e, "subset": "noisy", "accuracy": acc} for e in EPOCHS]
    return frame(rows, seeds=(0,))


def retraining(best: float, layers_restored: int) -> pd.DataFrame:
    rows = []
    for layer in LAYERS:
        top = best if layer < layers_restored else 0.2
        rows += [{"layer_index": layer, "epoch": e, "subset": "noisy", "accuracy": top * e / 3} for e in range(4)]
    return frame(rows, seeds=(0,))


SPREAD = tuple(f"layer{k}" for k in range(1, 6))  # the removals of an example cycle through these


def flipping(noisy_removals: float, noisy_accuracy: float, seeds=SEEDS, noisy_layers=SPREAD) -> pd.DataFrame:
    """30 noisy and 30 clean examples flipped on every seed (clean: 12 removals + 0..2); the
    k-th removal of example i in layer (i + k) of SPREAD (noisy: of noisy_layers)."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for i in range(60):
            noisy = i % 2 == 0
            removals = (noisy_removals if noisy else 12) + int(rng.integers(0, 3))
            layers = noisy_layers if noisy else SPREAD
            rows.append({**RUN, "seed": seed, "index": i, "is_noisy": noisy, "initially_correct": True,
                         "censored": False, "removals": removals,
                         "removed_layers": [layers[(i + k) % len(layers)] for k in range(removals)],
                         "accuracy_train": (noisy_accuracy if noisy else 0.8) + rng.normal(0, 0.01)})
    return pd.DataFrame(rows)


def scores(flip_separates: bool) -> pd.DataFrame:
    """detection_scores: 60 flipped examples (half noisy) and 20 unflipped per seed.  The
    learning time ranks most (noisy, clean) pairs right; the flip count all of them (or
    about half)."""
    rng = np.random.default_rng(1)
    rows = []
    for seed in SEEDS:
        for i in range(80):
            noisy, flipped = i % 2 == 0, i < 60
            flip = (10.0 if noisy else 0.0) + rng.random() if flip_separates else rng.random()
            learning = rng.random() + (0.4 if noisy else 0.0)
            rows.append({"seed": seed, "index": i, "is_noisy": noisy, "flipped": flipped,
                         "flip count": flip if flipped else np.nan, "learning time": learning})
    return pd.DataFrame(rows)


def tab1(after_noisy: float, after_clean: float) -> pd.DataFrame:
    acc = {("before", "clean"): 100, ("before", "noisy"): 99, ("after", "clean"): after_clean,
           ("after", "noisy"): after_noisy}
    return pd.DataFrame([{"dataset": "d", "when": w, "subset": s, "accuracy": a} for (w, s), a in acc.items()])


def tab3(baseline_noisy: float) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "d", "method": m, "subset": s, "accuracy": 100 if s == "clean" else baseline_noisy}
                         for m in ("standard", "fixed_sparse") for s in ("clean", "noisy")])


def atypical(frame_: pd.DataFrame) -> pd.DataFrame:
    out = frame_.assign(noise=0.0)
    for col in ("group", "subset"):
        if col in out:
            out[col] = out[col].replace({"clean": "typical", "noisy": "atypical"})
    return out


def good_tables() -> dict:
    return {
        "metrics": metrics(), "gradients": gradients(0.4, 1.0, -0.9), "rewinding": rewinding(1.0, 1.0),
        "retraining": retraining(1.0, 9), "flipping": flipping(3, 0.9), "detection_scores": scores(True),
        "tab1": tab1(3, 92), "tab3": tab3(99), "atypical_gradients": atypical(gradients(0.4, 1.0, -0.9)),
        "atypical_rewinding": atypical(rewinding(1.0, 1.0)), "atypical_retraining": atypical(retraining(1.0, 9)),
    }


# claim -> tables that make it fail
BAD = {
    "late memorization": {"metrics": metrics(noisy_late=False)},
    "noisy memorized": {"metrics": metrics(noisy_final=0.9)},
    "total smaller": {"gradients": gradients(1.2, 1.0, -0.9)},
    "noisy comparable": {"gradients": gradients(0.05, 0.11, -0.9)},
    "negative cosine": {"gradients": gradients(0.4, 1.0, -0.2)},
    "rewinding: no critical layer": {"rewinding": rewinding(1.0, 0.3)},
    "retraining restores": {"retraining": retraining(1.0, 4)},
    "fewer units": {"flipping": flipping(11, 0.9)},
    "post-removal accuracy": {"flipping": flipping(3, 0.7)},
    "critical neurons scattered": {"flipping": flipping(3, 0.9, noisy_layers=("layer8", "layer9"))},
    "flip count detects": {"detection_scores": scores(False)},
    "tied dropout": {"tab1": tab1(40, 92)},
    "baselines memorize": {"tab3": tab3(20)},
    "atypical: gradients": {"atypical_gradients": atypical(gradients(0.4, 0.2, -0.9))},
    "atypical: rewinding": {"atypical_rewinding": atypical(rewinding(0.3, 0.3))},
    "atypical: retraining": {"atypical_retraining": atypical(retraining(0.5, 9))},
}


def claims(tables: dict, resamples: int = FEW) -> pd.DataFrame:
    return evaluate_claims(tables, SETTING, resamples).set_index("claim")


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return claims(good_tables())


def test_every_claim_holds_on_tables_that_show_it(good):
    assert good["verdict"].to_dict() == {c.name: "holds" for c in CLAIMS}
    assert (good["margin"] >= 0).all() and (good["reason"] == "").all()
    assert list(good.reset_index().columns) == COLUMNS


@pytest.mark.parametrize("claim", list(BAD))
def test_claim_fails_on_tables_that_do_not_show_it(claim):
    got = claims({**good_tables(), **BAD[claim]})
    assert got.loc[claim, "verdict"] == "fails", got.loc[claim].to_dict()
    assert got.loc[claim, "margin"] < 0  # the failing side of the threshold
    assert got.index[got["verdict"] != "holds"].tolist() == [claim]  # the other claims are unaffected


def test_every_claim_has_a_failing_case():
    assert set(BAD) == {c.name for c in CLAIMS}


def test_claims_without_their_tables_are_not_run():
    tables = good_tables()
    del tables["flipping"]
    got = claims(tables)
    assert got.loc["fewer units", "verdict"] == "n/a" and got.loc["post-removal accuracy", "verdict"] == "n/a"
    assert got.loc["fewer units", "ours"] == "not run in this configuration"


# -- seeds ------------------------------------------------------------------------------


def test_a_claim_that_holds_on_both_seeds_holds(good):
    assert good.loc["late memorization", "seeds"] == "0: holds (+3.50); 1: holds (+3.50)"
    # the defaults rewind seed 0 only; the dropout tables average over seeds (no seed column)
    assert good.loc["rewinding: no critical layer", "seeds"].startswith("0: holds (+")
    assert good.loc["tied dropout", "seeds"] == "pooled only (its tables have no seed column)"


def test_one_seed_holding_and_one_failing_is_inconclusive_naming_the_seed():
    m = pd.concat([metrics(seeds=(0,)), metrics(noisy_final=0.96, seeds=(1,))])  # pooled noisy final 98%
    got = claims({**good_tables(), "metrics": m}).loc["noisy memorized"]
    assert got["verdict"] == "inconclusive"
    assert got["seeds"] == "0: holds (+0.03); 1: fails (-0.01)"
    assert got["reason"] == "seed 1 fails (-0.01)"
    assert got["margin"] == pytest.approx((0.98 - 0.97) / 0.97)  # compound: relative to the binding threshold


def test_a_seed_missing_from_a_table_is_undecided_not_a_crash():
    tables = good_tables()
    tables["gradients"] = tables["gradients"][tables["gradients"]["seed"] == 0]  # metrics has seeds 0 and 1
    got = claims(tables).loc["negative cosine"]
    assert got["verdict"] == "inconclusive" and got["seeds"] == "0: holds (+0.50); 1: undecided"
    assert got["reason"].startswith("seed 1 undecided: ")


# -- bootstrap --------------------------------------------------------------------------


def near_threshold_flips() -> pd.DataFrame:
    """One seed: clean examples flip after 12 removals, noisy ones after 1, 2, ..., 12, 1, ...
    (mean 5.9): the ratio 0.49 is just under the criterion's 0.5."""
    flips = flipping(1, 0.9, seeds=(0,))
    noisy = flips["is_noisy"]
    flips["removals"] = np.where(noisy, 1 + (flips["index"] // 2) % 12, 12)
    return flips


def test_bootstrap_near_the_threshold_is_inconclusive():
    flips = near_threshold_flips()
    noisy = flips[flips["is_noisy"]]["removals"].mean()
    assert 0.45 < noisy / 12 <= 0.5  # the pooled ratio holds, barely
    got = claims({**good_tables(), "flipping": flips}, resamples=1000).loc["fewer units"]
    assert got["verdict"] == "inconclusive" and got["seeds"].startswith("0: holds")
    share = float(got["bootstrap"].split("holds in ")[1].split("%")[0]) / 100
    assert 0.05 < share < 0.95
    assert got["reason"] == f"holds in {100 * share:.3g}% of 1000 bootstrap resamples"
    low, high = map(float, got["bootstrap"].split("CI [")[1].split("]")[0].split(", "))
    assert low < 0.5 < high and low < noisy / 12 < high


def test_far_from_the_threshold_every_resample_agrees(good):
    assert good.loc["fewer units", "bootstrap"].endswith(f"holds in 100% of {FEW} resamples")
    assert good.loc["flip count detects", "bootstrap"].startswith("flip-count AUC: 95% CI [1, 1]")
    assert good.loc["total smaller", "bootstrap"] == ""  # averages over layers, not examples


def test_the_bootstrap_is_deterministic():
    tables = {**good_tables(), "flipping": near_threshold_flips()}
    first, second = claims(tables, resamples=300), claims(tables, resamples=300)
    pd.testing.assert_frame_equal(first, second)
    examples = pd.DataFrame({"is_noisy": [True, False] * 20, "x": np.arange(40.0)})

    def judge(ex):
        return judged("x", Condition("mean x", ex["x"].mean(), 19.5))

    assert bootstrap(examples, judge, 200) == bootstrap(examples, judge, 200)
    assert bootstrap(examples, judge, 200, seed=1) != bootstrap(examples, judge, 200)


# -- events that never happen and empty groups -------------------------------------------


def test_a_noisy_curve_that_never_reaches_50_percent_fails_with_the_reason():
    got = claims({**good_tables(), "metrics": metrics(noisy_final=0.4)})
    late = got.loc["late memorization"]
    assert late["verdict"] == "fails" and np.isnan(late["margin"])
    assert late["reason"] == "noisy never reaches 50% in 10 epochs"
    assert "at epoch" not in late["ours"].split(";")[1]  # no "reaches 50% at epoch 11 (of 10)"
    assert late["seeds"] == "0: fails (n/a); 1: fails (n/a)"
    # the memorization window then runs to the last epoch, and says so
    curves = accuracy_curves(metrics(noisy_final=0.4), ("clean", "noisy"))
    assert memorization_window(curves, ("clean", "noisy")) == (
        2, 10, "noisy never reaches 50% in 10 epochs: the window runs to the last epoch")
    assert "window runs to the last epoch" in got.loc["negative cosine", "reason"]


def test_late_memorization_verdict_itself():
    v = late_memorization({"metrics": metrics()}, SETTING)
    assert v.holds and v.margin == pytest.approx((7 - 2) - 0.15 * 10)  # epochs, the statistic's unit
    v = late_memorization({"metrics": metrics(noisy_final=0.4)}, SETTING)
    assert v.holds is False and v.note == "noisy never reaches 50% in 10 epochs"


def test_no_initially_correct_noisy_example_is_undecided_with_the_reason():
    flips = flipping(3, 0.9)
    flips.loc[flips["is_noisy"], ["initially_correct", "removals"]] = [False, 0]
    got = claims({**good_tables(), "flipping": flips})
    for claim in ("fewer units", "post-removal accuracy"):
        assert got.loc[claim, "verdict"] == "inconclusive" and got.loc[claim, "bootstrap"] == ""
        assert got.loc[claim, "reason"] == (
            "pooled undecided: no noisy example predicted as its label before any removal"
            + (" and flipped within the cap" if claim == "post-removal accuracy" else ""))


def test_rewinding_a_model_that_memorized_nothing_is_undecided():
    got = claims({**good_tables(), "rewinding": rewinding(1.0, 1.0, noisy_final=0.3)})
    assert got.loc["rewinding: no critical layer", "verdict"] == "inconclusive"
    assert "nothing memorized to remove" in got.loc["rewinding: no critical layer", "reason"]


@pytest.mark.parametrize("claim", [c.name for c in CLAIMS])
def test_every_claim_on_empty_tables_says_why(claim):
    """No rows of the run (e.g. a seed or a group the tables lack): a stated reason, never a
    pass, a NaN comparison or a crash."""
    tables = good_tables()
    needs = next(c.needs for c in CLAIMS if c.name == claim)
    got = claims({**tables, **{n: tables[n].iloc[:0] for n in needs}}).loc[claim]
    assert got["verdict"] == "inconclusive" and got["reason"].startswith("pooled undecided: "), got.to_dict()


# -- pieces -------------------------------------------------------------------------------


def test_layers_scattered_counts_each_removal_in_its_layer():
    from memloc.report.example_criteria import layer_shares, layers_holding, removal_layer_examples

    flips = flipping(3, 0.9, seeds=(0,), noisy_layers=("layer8", "layer9", "layer9", "layer9"))
    examples = removal_layer_examples({"flipping": flips}, SETTING)
    noisy = layer_shares(examples, True)
    expected = flips[flips.is_noisy].explode("removed_layers")["removed_layers"].value_counts(normalize=True)
    pd.testing.assert_series_equal(noisy[noisy > 0].sort_index(), expected.sort_index(), check_names=False)
    assert noisy["layer9"] > 0.65 and layers_holding(noisy) == 2
    assert layers_holding(layer_shares(examples, False)) == 4  # 5 equal layers: 4 hold 80%
    got = claims({**good_tables(), "flipping": flipping(3, 0.9, noisy_layers=("layer8", "layer9", "layer9", "layer9"))})
    assert got.loc["critical neurons scattered", "verdict"] == "fails"
    assert "layer9" in got.loc["critical neurons scattered", "ours"]



def test_conclude_needs_every_part_to_agree():
    holds, fails = Verdict("x", True, 0.2), Verdict("x", False, -0.1)
    assert conclude(holds, {0: holds, 1: holds}, None) == ("holds", "")
    assert conclude(fails, {0: fails, 1: fails}, None) == ("fails", "")
    assert conclude(fails, {0: holds, 1: fails}, None) == ("inconclusive", "seed 0 holds (+0.20)")


def test_undecided_resamples_back_neither_verdict():
    fails = Verdict("x", False, -0.1)
    mostly_undecided = Bootstrap("s", 0.1, 0.2, share=0.0, resamples=100, undecided=0.5)
    verdict, reason = conclude(fails, {0: fails}, mostly_undecided)
    assert verdict == "inconclusive" and reason == "holds in 0%, undecided in 50% of 100 bootstrap resamples"
    decided = Bootstrap("s", 0.1, 0.2, share=0.0, resamples=100, undecided=0.02)
    assert conclude(fails, {0: fails}, decided) == ("fails", "")  # 98% of resamples fail


def test_margins_are_signed_toward_holding():
    assert Condition("a", 0.8, 0.75).margin == pytest.approx(0.05)
    assert Condition("a", 0.8, 0.75, at_least=False).margin == pytest.approx(-0.05)
    assert not Condition("p", 0.0, 0.0, strict=True).holds and Condition("p", 0.0, 0.0).holds
    v = judged("x", Condition("a", 0.8, 0.5), Condition("b", 0.6, 0.5))  # relative margins 0.6, 0.2
    assert v.holds and v.margin == pytest.approx(0.2) and v.binding == "b" and v.value == 0.8


def test_auc_equals_the_auc_tables():
    from memloc.flipping.detection import auc_rows

    s = scores(True).assign(**{m: 0.0 for m in ("forgetting events", "area under the margin",
                                                "second-split forgetting time")})
    s["learning time"] = s["learning time"].round(1)  # ties count half, as in sklearn
    table = auc_rows(s).set_index(["method", "examples"])["auc"]
    per_example = s[s["flipped"]].groupby("index").agg(is_noisy=("is_noisy", "first"), lt=("learning time", "mean"))
    assert roc_auc(per_example["is_noisy"].to_numpy(), per_example["lt"].to_numpy()) == pytest.approx(
        table["learning time", "flipped examples"])
    got = claims({**good_tables(), "detection_scores": s})
    assert f"learning time {table['learning time', 'flipped examples']:.2f}" in got.loc["flip count detects", "ours"]
