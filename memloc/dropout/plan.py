"""The example-tied dropout study (Sec. 6.2) as the workflow plans it: which runs exist,
their dropout names and settings, the runs behind tab1-tab3, fig07's inputs and selection
and the scale text of the paper-vs-ours rows.  Only workflow/rules/dropout.smk calls this
module (memloc.dropout.tied has the layers, memloc.dropout.jobs the job steps).

Runs live in results/dropout/runs/{dataset}/{model}/noise{noise}/{dropout}/seed{seed},
where {dropout} names the dropout (`dropout_name`): tied_pgen0.4_pmem0.2 (example-tied),
standard_p0.4 (standard dropout, drop probability p_gen), sparse_s0.4 (a sparse network:
a fixed mask zeroing a fraction s = p_gen of the activations; memloc.dropout.tied).
Every run of the study is of one model (`study_model`: dropout.model, null = primary.model)
and has the configured placement.  tab1 has a run per configured dataset, tab2 the p_gen x
p_mem grid and tab3 the three methods, both on the first configured dataset.
"""

from __future__ import annotations

import re

from memloc.core.paths import DATA_TABLE, display_table_files, figure_files, noise_label, table
from memloc.core.paths import DROPOUT_RUN_DIR as RUN_DIR
from memloc.core.titles import dataset_title, model_title
from memloc.runs import plan as runs_plan
from memloc.runs.plan import run_groups

TABLES = ("tab1", "tab2", "tab3")
# A dropout name of each kind; the numbers are its p_gen (and p_mem).
NAME_PATTERNS = {
    "example_tied": r"tied_pgen([\d.]+)_pmem([\d.]+)",
    "standard": r"standard_p([\d.]+)",
    "fixed_sparse": r"sparse_s([\d.]+)",
}
# Tab3's baselines: trained on dropout.baselines' schedule.
BASELINE_KINDS = ("standard", "fixed_sparse")
# The {dropout} wildcard's constraint: a name of any kind.
DROPOUT_WILDCARD = r"(tied_pgen[\d.]+_pmem[\d.]+|standard_p[\d.]+|sparse_s[\d.]+)"


# -- names ------------------------------------------------------------------------------


def dropout_name(kind: str, p_gen: float, p_mem: float = 0.0) -> str:
    if kind == "example_tied":
        return f"tied_pgen{p_gen:g}_pmem{p_mem:g}"
    return {"standard": f"standard_p{p_gen:g}", "fixed_sparse": f"sparse_s{p_gen:g}"}[kind]


def parse_dropout(name: str) -> dict:
    """dropout name -> {kind, p_gen, p_mem} (memloc.dropout.tied's settings without the seed)."""
    for kind, pattern in NAME_PATTERNS.items():
        m = re.fullmatch(pattern, name)
        if m:
            p_gen, p_mem = float(m.group(1)), float(m.group(2)) if m.lastindex == 2 else 0.0
            return {"kind": kind, "p_gen": p_gen, "p_mem": p_mem}
    raise ValueError(f"not a dropout name: {name!r}")


def is_baseline(name: str) -> bool:
    """Whether the dropout run `name` is one of tab3's baselines (dropout.baselines' schedule)."""
    return parse_dropout(name)["kind"] in BASELINE_KINDS


# -- runs -------------------------------------------------------------------------------


def study_model(config: dict) -> str:
    """The model of every run: dropout.model (memloc.config resolves its null to primary.model)."""
    model = config["dropout"]["model"]
    if model is None:
        raise ValueError("dropout.model is null: resolve the config first (memloc.config.resolve_config)")
    return model


def model_wildcard(config: dict) -> str:
    """The {model} wildcard's constraint of the dropout runs: the study's model."""
    return re.escape(study_model(config))


def _run(dataset: str, model: str, noise: float, kind: str, p_gen: float, p_mem: float, seed: int) -> dict:
    return {"dataset": dataset, "model": model, "noise": float(noise), "dropout": dropout_name(kind, p_gen, p_mem),
            "method": kind, "p_gen": float(p_gen), "p_mem": float(p_mem), "seed": int(seed)}


def run_dir(run: dict) -> str:
    return RUN_DIR.format(**{**run, "noise": noise_label(run["noise"])})


def data_table(run: dict) -> str:
    """The corrupted training set a run trains on (rule corrupt_data)."""
    return DATA_TABLE.format(dataset=run["dataset"], noise=noise_label(run["noise"]))


def table_runs(config: dict, table: str) -> list[dict]:
    """The runs behind tab1 / tab2 / tab3 (run dicts: path keys plus method, p_gen, p_mem)."""
    d = config["dropout"]
    first = d["datasets"][0]
    tied = ("example_tied", d["p_gen"], d["p_mem"])
    if table == "tab1":
        cells = [(ds, *tied) for ds in d["datasets"]]
    elif table == "tab2":
        cells = [(first, "example_tied", g, m) for m in d["grid"]["p_mem"] for g in d["grid"]["p_gen"]]
    elif table == "tab3":
        cells = [(first, "standard", d["p_gen"], 0.0), (first, "fixed_sparse", d["p_gen"], 0.0), (first, *tied)]
    else:
        raise ValueError(f"unknown table {table!r}")
    model = study_model(config)
    return [_run(ds, model, d["noise"], kind, g, m, s) for ds, kind, g, m in cells for s in d["seeds"]]


def dropout_runs(config: dict) -> list[dict]:
    """Every run of the study, once."""
    runs = [r for t in TABLES for r in table_runs(config, t)]
    return list({run_dir(r): r for r in runs}.values())


def metrics_tables(config: dict) -> list[str]:
    """Every run's metrics table, in `dropout_runs` order (rule collect_dropout_metrics)."""
    return [f"{run_dir(r)}/metrics.parquet" for r in dropout_runs(config)]


def metrics_columns(config: dict) -> list[dict]:
    """The identifying columns of every run in the study's metrics table: the run, with its
    dropout name under the column name `variant`, as the table has always had it (so that
    results/tables/dropout_metrics.parquet keeps its schema)."""
    return [{("variant" if k == "dropout" else k): v for k, v in r.items()} for r in dropout_runs(config)]


# -- settings ---------------------------------------------------------------------------


def train_settings(config: dict, seed: int, dropout: str | None = None) -> dict:
    """memloc.core.train.config.TrainConfig fields of the dropout run `dropout` (None: an
    example-tied one): the shared ones, the study's epochs (tab3's baselines: their own schedule,
    dropout.baselines), the label-noise groups, and no gradient accounting (nothing reads it; it
    costs ~40% of a run).  Nulls are resolved by memloc.config.resolve_config."""
    d = config["dropout"]
    schedule = ({"epochs": d["baselines"]["epochs"], "peak_epoch": d["baselines"]["peak_epoch"]}
                if dropout is not None and is_baseline(dropout) else {"epochs": d["epochs"]})
    groups = run_groups(f"noise{noise_label(d['noise'])}")["group_names"]
    return {**config["train"], **schedule, "seed": seed, "gradient_accounting": False, "group_names": groups}


def run_epochs(config: dict, dropout: str) -> int:
    """Training epochs of the dropout run `dropout`."""
    return train_settings(config, 0, dropout)["epochs"]


def run_inputs(config: dict, dataset: str) -> dict:
    """memloc.core.data.inputs.RunInputs fields of a dropout run's training, less its data table."""
    return runs_plan.run_inputs(config, dataset, f"noise{noise_label(config['dropout']['noise'])}")


def model_settings(config: dict, model: str, dropout: str, seed: int) -> dict:
    """memloc.dropout.model.DropoutModelConfig fields of a run, less the dataset's shape: the
    model's configured ones, and the dropout with its units chosen from the training seed, the
    configured placement (used by ResNet-9 only; where the layers of other models go:
    memloc.dropout.placement) and (example-tied only, None for a baseline, so that a baseline's
    config does not change with it) the drop scale."""
    d = config["dropout"]
    kind = parse_dropout(dropout)
    scale = d["drop_scale"] if kind["kind"] == "example_tied" else None
    dropout = {**kind, "seed": seed, "placement": d["placement"], "drop_scale": scale}
    return {**runs_plan.model_settings(config, model), "dropout": dropout}


def our_setting(config: dict, dataset: str) -> str:
    """Dataset / model / scale of our runs, for the paper-vs-ours rows."""
    d = config["dropout"]
    n = config["train_subset"]
    model = study_model(config)
    width = config["model_settings"].get(model, {}).get("width")  # ResNet-9's multiplier
    title = model_title(model) + (f" width {width:g}" if width is not None else "")
    size = f"{n:,}-example subset" if n else "full training set"
    seeds = len(d["seeds"])
    base = d["baselines"]["epochs"]
    epochs = f"{d['epochs']} epochs" + (f" (tab3's baselines {base})" if base != d["epochs"] else "")
    return (f"{dataset_title(dataset)} ({size}), {title}, {d['noise']:.0%} noise, "
            f"{epochs}, {seeds} seed{'s' if seeds > 1 else ''}")


def our_settings(config: dict) -> dict[str, str]:
    """{dataset: `our_setting`} of every dataset of the study."""
    return {d: our_setting(config, d) for d in config["dropout"]["datasets"]}


# -- fig07 ------------------------------------------------------------------------------


def fig07_run(config: dict) -> dict:
    """fig07 shows the tab1 run of the first dataset."""
    return table_runs(config, "tab1")[0]


def fig07_inputs(config: dict) -> dict[str, str]:
    """fig07's table's inputs: the run's per-example table (with the after-dropping
    columns) and its data table."""
    run = fig07_run(config)
    return {"examples": f"{run_dir(run)}/examples.parquet", "data": data_table(run)}


def fig07_title(run: dict) -> str:
    return (f"Clean training examples wrong after dropping the memorization units\n"
            f"{model_title(run['model'])}, {dataset_title(run['dataset'])}, {run['noise']:.0%} noise, "
            f"example-tied dropout (p_gen = {run['p_gen']:g}, p_mem = {run['p_mem']:g})")


def fig07_selection(config: dict) -> dict:
    """memloc.report.figures.fig07's selection: its title and images per row."""
    return {"title": fig07_title(fig07_run(config)), "cols": config["dropout"]["fig07"]["cols"]}


def targets(config: dict) -> list[str]:
    """What the example-tied dropout study's part of rule `all` makes: fig07, tab1-tab3 (CSV,
    Markdown, parquet), fig07's table and the study's metrics table."""
    return (figure_files(["fig07"]) + display_table_files(list(TABLES))
            + [table(t) for t in ("dropout_metrics", "fig07", *TABLES)])
