"""Each claim's criterion on small synthetic tables where it must hold and where it must fail."""

import numpy as np
import pandas as pd
import pytest

from memloc.report.claims import CLAIMS, Setting, evaluate_claims

SETTING = Setting(dataset="d", model="m", noise=0.1, fig01_window=(2, 6))
RUN = {"dataset": "d", "model": "m", "noise": 0.1, "seed": 0}
EPOCHS = range(0, 11)
LAYERS = range(9)


def frame(rows: list[dict], **run) -> pd.DataFrame:
    return pd.DataFrame([{**RUN, **run, **r} for r in rows])


def metrics(noisy_final: float = 1.0, noisy_late: bool = True) -> pd.DataFrame:
    """Clean learned by epoch 2; noisy rises over epochs 5-9 (or with the clean ones)."""
    rows = []
    for e in EPOCHS:
        clean = min(1.0, e / 2)
        noisy = min(noisy_final, max(0.0, (e - 4) / 5)) if noisy_late else min(noisy_final, e / 2)
        rows += [{"epoch": e, "subset": "clean", "accuracy": clean}, {"epoch": e, "subset": "noisy", "accuracy": noisy}]
    return frame(rows)


def gradients(total_factor: float, noisy_factor: float, cosine: float) -> pd.DataFrame:
    rows = []
    for e in EPOCHS[1:]:
        for layer in LAYERS:
            norms = {"clean": 1.0, "noisy": noisy_factor, "total": total_factor}
            rows += [{"epoch": e, "layer_index": layer, "group": g, "norm": v, "cosine": cosine}
                     for g, v in norms.items()]
    return frame(rows)


def rewinding(kept: float, last_kept: float) -> pd.DataFrame:
    """Noisy accuracy per layer rewound to every epoch; layer_index -1 is the training curve."""
    m = metrics()
    rows = [{"layer_index": -1, "epoch": r.epoch, "subset": r.subset, "accuracy": r.accuracy} for r in m.itertuples()]
    for layer in LAYERS:
        acc = last_kept if layer == 8 else kept
        rows += [{"layer_index": layer, "epoch": e, "subset": "noisy", "accuracy": acc} for e in EPOCHS]
    return frame(rows)


def retraining(best: float, layers_restored: int) -> pd.DataFrame:
    rows = []
    for layer in LAYERS:
        top = best if layer < layers_restored else 0.2
        rows += [{"layer_index": layer, "epoch": e, "subset": "noisy", "accuracy": top * e / 3} for e in range(4)]
    return frame(rows)


def flipping(noisy_removals: int, noisy_accuracy: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        noisy = i % 2 == 0
        rows.append({"index": i, "is_noisy": noisy, "initially_correct": True, "censored": False,
                     "removals": (noisy_removals if noisy else 12) + int(rng.integers(0, 3)),
                     "accuracy_train": (noisy_accuracy if noisy else 0.8) + rng.normal(0, 0.01)})
    return frame(rows)


def auc(flip: float, learning: float) -> pd.DataFrame:
    return pd.DataFrame([{"method": "flip count", "examples": "flipped examples", "auc": flip},
                         {"method": "learning time", "examples": "flipped examples", "auc": learning}])


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
        "retraining": retraining(1.0, 9), "flipping": flipping(3, 0.9), "auc": auc(0.9, 0.88),
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
    "flip count detects": {"auc": auc(0.7, 0.9)},
    "tied dropout": {"tab1": tab1(40, 92)},
    "baselines memorize": {"tab3": tab3(20)},
    "atypical: gradients": {"atypical_gradients": atypical(gradients(0.4, 0.2, -0.9))},
    "atypical: rewinding": {"atypical_rewinding": atypical(rewinding(0.3, 0.3))},
    "atypical: retraining": {"atypical_retraining": atypical(retraining(0.5, 9))},
}


def verdicts(tables: dict) -> dict[str, str]:
    return evaluate_claims(tables, SETTING).set_index("claim")["holds"].to_dict()


def test_every_claim_holds_on_tables_that_show_it():
    assert verdicts(good_tables()) == {name: "yes" for name, *_ in CLAIMS}


@pytest.mark.parametrize("claim", list(BAD))
def test_claim_fails_on_tables_that_do_not_show_it(claim):
    got = verdicts({**good_tables(), **BAD[claim]})
    assert got[claim] == "no"
    assert [name for name, v in got.items() if v == "no"] == [claim]  # the other claims are unaffected


def test_every_claim_has_a_failing_case():
    assert set(BAD) == {name for name, *_ in CLAIMS}


def test_claims_without_their_tables_are_not_run():
    tables = good_tables()
    del tables["flipping"]
    got = evaluate_claims(tables, SETTING).set_index("claim")
    assert got.loc["fewer units", "holds"] == "n/a"
    assert got.loc["fewer units", "ours"] == "not run in this configuration"
