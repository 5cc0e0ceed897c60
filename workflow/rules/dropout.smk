# Example-tied dropout (Sec. 6.2): one training job per run, then
#   tab1  clean / noisy / test accuracy before and after dropping, per dataset
#   tab2  the p_mem x p_gen grid, after dropping
#   tab3  standard dropout, a fixed sparse network and example-tied dropout
#   fig07 clean training images forgotten when the memorization units are dropped
# memloc.dropout.plan plans the runs, tables and fig07 from config["dropout"], all of one
# model (dropout.model; null = primary.model, built in or declared).  The {dropout} wildcard
# names a run's dropout (memloc.dropout.plan.dropout_name).

from memloc.dropout import plan as dropout_plan

DROPOUT_RUN = paths.DROPOUT_RUN_DIR


rule train_dropout:
    """One run with example-tied dropout or a tab3 baseline; no gradient accounting.
    Resumes from results/dropout/runs/.../checkpoints/."""
    input:
        data=paths.DATA_TABLE,
        fetched=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    output:
        metrics=f"{DROPOUT_RUN}/metrics.parquet",
        examples=f"{DROPOUT_RUN}/examples.parquet",
        gradients=f"{DROPOUT_RUN}/gradients.parquet",
        checkpoints=f"{DROPOUT_RUN}/checkpoints.txt",
        provenance=f"{DROPOUT_RUN}/provenance.json",
    log:
        "logs/train_dropout/{dataset}_{model}_noise{noise}_{dropout}_seed{seed}.log",
    benchmark:
        "benchmarks/train_dropout/{dataset}_{model}_noise{noise}_{dropout}_seed{seed}.tsv"
    wildcard_constraints:
        model=dropout_plan.model_wildcard(config),
        dropout=dropout_plan.DROPOUT_WILDCARD,
    conda:
        "../../environment.yml"
    threads: config["threads"]
    resources:
        mem_mb=job_mem_mb("train_dropout"),
        runtime=job_runtime("train_dropout"),
        gpu=1,
    params:
        inputs=lambda wc: dropout_plan.run_inputs(config, wc.dataset),
        model=lambda wc: dropout_plan.model_settings(
            config, wc.model, wc.dropout, int(wc.seed)
        ),
        train=lambda wc: dropout_plan.train_settings(config, int(wc.seed), wc.dropout),
        compute=job_compute("train_dropout"),
    script:
        "../scripts/train_dropout.py"


rule collect_dropout_metrics:
    """Per-epoch metrics of every dropout run, with dataset/model/noise/variant (the dropout
    name)/method/p_gen/p_mem/seed columns."""
    input:
        dropout_plan.metrics_tables(config),
    output:
        paths.table("dropout_metrics"),
    log:
        "logs/collect_dropout_metrics.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("collect_dropout_metrics"),
        runtime=job_runtime("collect_dropout_metrics"),
    params:
        runs=dropout_plan.metrics_columns(config),
    script:
        "../scripts/collect_run_tables.py"


rule dropout_table:
    """tab1 / tab2 / tab3: the long table (parquet) and the paper's layout (CSV, Markdown)."""
    input:
        paths.table("dropout_metrics"),
    output:
        parquet=paths.table("{table}"),
        csv=report(
            paths.display_table("{table}", "csv"),
            caption="../report/dropout_table.rst",
            category="Example-tied dropout",
        ),
        md=paths.display_table("{table}", "md"),
    log:
        "logs/dropout_table/{table}.log",
    wildcard_constraints:
        table="tab1|tab2|tab3",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("dropout_table"),
        runtime=job_runtime("dropout_table"),
    params:
        runs=lambda wc: dropout_plan.table_runs(config, wc.table),
    script:
        "../scripts/dropout_table.py"


rule dropout_paper_rows:
    """This stage's rows of results/tables/paper_vs_ours.md."""
    input:
        tab1=paths.table("tab1"),
        tab2=paths.table("tab2"),
        tab3=paths.table("tab3"),
    output:
        paths.PAPER_ROWS.format(stage="dropout"),
    log:
        "logs/dropout_paper_rows.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("dropout_paper_rows"),
        runtime=job_runtime("dropout_paper_rows"),
    params:
        settings=dropout_plan.our_settings(config),
    script:
        "../scripts/dropout_paper_rows.py"


rule fig07_table:
    """The clean training examples forgotten after dropping, with their pixels."""
    input:
        unpack(lambda wc: dropout_plan.fig07_inputs(config)),
        fetched=paths.DATASET_INFO.format(
            dataset=dropout_plan.fig07_run(config)["dataset"]
        ),
        splits=paths.DATASET_SPLITS.format(
            dataset=dropout_plan.fig07_run(config)["dataset"]
        ),
    output:
        paths.table("fig07"),
    log:
        "logs/fig07_table.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("fig07_table"),
        runtime=job_runtime("fig07_table"),
    params:
        dataset=dropout_plan.fig07_run(config)["dataset"],
        source=data_source(),
        max_images=config["dropout"]["fig07"]["max_images"],
    script:
        "../scripts/forgotten_examples.py"


rule fig07:
    input:
        paths.table("fig07"),
    output:
        report(
            paths.figure("fig07", "png"),
            caption="../report/fig07.rst",
            category="Example-tied dropout",
        ),
        paths.figure("fig07", "pdf"),
    log:
        "logs/figures/fig07.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("fig07"),
        runtime=job_runtime("fig07"),
    params:
        figure="fig07",
        selection=dropout_plan.fig07_selection(config),
    script:
        "../scripts/figure.py"
