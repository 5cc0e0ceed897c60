# Typical vs atypical examples (Sec. 7): C-scores (published or hold-out estimate) ->
# the atypical data table -> noise-free runs (rule train, variant "atypical") -> fig08.


rule holdout_model:
    """One subset model of the hold-out C-score estimate: its correctness on every example."""
    input:
        data="results/data/{dataset}/noise0.parquet",
    output:
        "results/cscores/{dataset}/holdout{k}.parquet",
    log:
        "logs/holdout_model/{dataset}_{k}.log",
    conda:
        "../../environment.yml"
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    params:
        source=data_source(),
        model=lambda wc: {
            "name": config["primary"]["model"],
            **config["model_settings"].get(config["primary"]["model"], {}),
        },
        train=config["train"],
        holdout=config["atypical"]["holdout"],
        device=config["device"],
    script:
        "../scripts/holdout_model.py"


rule atypical_data:
    """The noise-free training set with cscore, times_held_out and is_atypical."""
    input:
        base="results/data/{dataset}/noise0.parquet",
        holdout=holdout_parts,
    output:
        "results/data/{dataset}/atypical.parquet",
    log:
        "logs/atypical_data/{dataset}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        threshold=config["atypical"]["threshold"],
        published=published_cscores,
    script:
        "../scripts/atypical_data.py"


rule collect_atypical_tables:
    """One table (gradients or metrics) of every typical/atypical run, with run columns."""
    input:
        lambda wc: [run_file(r, f"{wc.table}.parquet") for r in atypical_runs(config)],
    output:
        "results/tables/atypical_{table}.parquet",
    log:
        "logs/collect_atypical_tables/{table}.log",
    wildcard_constraints:
        table="gradients|metrics",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        runs=lambda wc: atypical_runs(config),
    script:
        "../scripts/collect_run_tables.py"


rule fig08:
    """Gradient accounting for typical vs atypical examples (fig01's form), per dataset."""
    input:
        "results/tables/atypical_gradients.parquet",
    output:
        report(
            "results/figures/fig08.png",
            caption="../report/fig08.rst",
            category="Typical vs atypical examples",
        ),
        "results/figures/fig08.pdf",
    log:
        "logs/figures/fig08.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig08",
        selection=dict(
            datasets=config["atypical"]["datasets"],
            model=config["primary"]["model"],
            window=config["figures"]["fig01"]["epochs"],
        ),
    script:
        "../scripts/figure.py"
