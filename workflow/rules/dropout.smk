# Example-tied dropout (Sec. 6.2): one training job per run, then
#   tab1  clean / noisy / test accuracy before and after dropping, per dataset
#   tab2  the p_mem x p_gen grid, after dropping
#   tab3  standard dropout, a fixed sparse network and example-tied dropout
#   fig07 clean training images forgotten when the memorization units are dropped
# Runs and tables are planned by memloc.dropout.study from config["dropout"].

from memloc.dropout import study as dropout_study

DROPOUT_RUN = "results/dropout/runs/{dataset}/{model}/noise{noise}/{variant}/seed{seed}"

paper_rows.append("results/tables/paper_vs_ours/dropout.parquet")


rule train_dropout:
    """One run with example-tied dropout or a tab3 baseline; no gradient accounting.
    Resumes from results/dropout/runs/.../checkpoints/."""
    input:
        data="results/data/{dataset}/noise{noise}.parquet",
    output:
        metrics=f"{DROPOUT_RUN}/metrics.parquet",
        examples=f"{DROPOUT_RUN}/examples.parquet",
        gradients=f"{DROPOUT_RUN}/gradients.parquet",
        checkpoints=f"{DROPOUT_RUN}/checkpoints.txt",
    log:
        "logs/train_dropout/{dataset}_{model}_noise{noise}_{variant}_seed{seed}.log",
    benchmark:
        "benchmarks/train_dropout/{dataset}_{model}_noise{noise}_{variant}_seed{seed}.tsv"
    wildcard_constraints:
        model="resnet9",
        variant=r"(tied_pgen[\d.]+_pmem[\d.]+|standard_p[\d.]+|sparse_keep[\d.]+)",
        seed=r"\d+",
    conda:
        "../../environment.yml"
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1,
    params:
        source=data_source(),
        test_subset=config["test_subset"],
        model=lambda wc: {
            **model_settings(wc),
            "extra": dropout_study.model_dropout(wc.variant, int(wc.seed)),
        },
        train=lambda wc: dropout_study.train_settings(config, int(wc.seed)),
        device=config["device"],
    script:
        "../scripts/train.py"


rule collect_dropout_metrics:
    """Per-epoch metrics of every dropout run, with dataset/variant/method/p_gen/p_mem/seed columns."""
    input:
        lambda wc: [
            f"{dropout_study.run_dir(r)}/metrics.parquet"
            for r in dropout_study.dropout_runs(config)
        ],
    output:
        "results/tables/dropout_metrics.parquet",
    log:
        "logs/collect_dropout_metrics.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        runs=lambda wc: dropout_study.dropout_runs(config),
    script:
        "../scripts/collect_run_tables.py"


rule dropout_table:
    """tab1 / tab2 / tab3: the long table (parquet) and the paper's layout (CSV, Markdown)."""
    input:
        "results/tables/dropout_metrics.parquet",
    output:
        parquet="results/tables/{table}.parquet",
        csv=report(
            "results/tables/{table}.csv",
            caption="../report/dropout_table.rst",
            category="Example-tied dropout",
        ),
        md="results/tables/{table}.md",
    log:
        "logs/dropout_table/{table}.log",
    wildcard_constraints:
        table="tab1|tab2|tab3",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        runs=lambda wc: dropout_study.table_runs(config, wc.table),
    script:
        "../scripts/dropout_table.py"


rule dropout_paper_rows:
    """This stage's rows of results/tables/paper_vs_ours.md."""
    input:
        tab1="results/tables/tab1.parquet",
        tab2="results/tables/tab2.parquet",
        tab3="results/tables/tab3.parquet",
    output:
        "results/tables/paper_vs_ours/dropout.parquet",
    log:
        "logs/dropout_paper_rows.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings={
            d: dropout_study.our_setting(config, d)
            for d in config["dropout"]["datasets"]
        },
    script:
        "../scripts/dropout_paper_rows.py"


rule fig07_table:
    """The clean training examples forgotten after dropping, with their pixels."""
    input:
        examples=lambda wc: f"{dropout_study.run_dir(dropout_study.fig07_run(config))}/examples.parquet",
        data=lambda wc: dropout_study.data_table(dropout_study.fig07_run(config)),
    output:
        "results/tables/fig07.parquet",
    log:
        "logs/fig07_table.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        dataset=lambda wc: dropout_study.fig07_run(config)["dataset"],
        source=data_source(),
        max_images=config["dropout"]["fig07"]["max_images"],
    script:
        "../scripts/forgotten_examples.py"


rule fig07:
    input:
        "results/tables/fig07.parquet",
    output:
        report(
            "results/figures/fig07.png",
            caption="../report/fig07.rst",
            category="Example-tied dropout",
        ),
        "results/figures/fig07.pdf",
    log:
        "logs/figures/fig07.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig07",
        selection=lambda wc: {
            "title": dropout_study.fig07_title(dropout_study.fig07_run(config)),
            "cols": config["dropout"]["fig07"]["cols"],
        },
    script:
        "../scripts/figure.py"
