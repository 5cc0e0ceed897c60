"""config/paper.yaml builds the full DAG of the paper's design, job for job, and the SLURM
profile submits it as a cluster needs.

One dry run (`snakemake -n`, nothing is downloaded or trained) of the paper preset through
workflow/profiles/slurm.  The number of jobs per rule is derived below from the paper's
design (FIGURES.md), not from memloc's own planning code, so a planning bug or a preset
that drifted from the paper's scale shows up here before anyone spends GPU hours on it.
Through the profile, each dataset is downloaded once on the login node, every GPU job gets
a GPU, no submission asks for more than 8 h, and tables and figures run locally.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
import yte

from memloc.config import load_config
from memloc.plan import resources
from memloc.plan.batches import run_rule

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
MAX_MINUTES = 8 * 60  # a common partition limit
SITE = {"MEMLOC_SLURM_PARTITION": "cpu", "MEMLOC_SLURM_GPU_PARTITION": "gpu", "MEMLOC_SLURM_GPU_MODEL": "h100"}

DATASETS, MODELS, NOISE, SEEDS = 3, 3, 3, 3  # CIFAR-10/MNIST/SVHN; ResNet-9/50/ViT; 5/10/20%; 3 seeds
GRID_RUNS = DATASETS * MODELS * NOISE * SEEDS  # fig12-14 (gradients) and fig15-17 (rewinding)
SWEEP_ONLY_NOISE = 3  # fig11's rates beyond the grid: 1%, 50%, 99% (CIFAR-10, ResNet-9)
ATYPICAL_DATASETS = 2  # Sec. 7: CIFAR-10 and MNIST, noise-free, published C-scores
FLIP_MODELS = 30  # Sec. 6.1: 30 ResNet-9s (the primary setting)
FLIP_SHARDS = 1  # jobs per model (an execution choice: shards: null sizes them by the work, ~4 GPU min a model)
LOCALIZE_SHARDS = yaml.safe_load(PAPER.read_text())["localization"]["shards"]  # jobs per track
RESNET9_LAYERS = 9
TAB2 = 6 * 2  # p_gen 0.1..0.6 x p_mem 0.1, 0.2 on CIFAR-10; includes tab1's and tab3's CIFAR-10 run

EXPECTED = {
    "fetch_dataset": DATASETS,  # each dataset downloaded and checked once, before any job reads it
    # one corrupted training set per dataset x noise rate, the sweep's extra rates, and the
    # noise-free sets of the typical/atypical study
    "corrupt_data": DATASETS * NOISE + SWEEP_ONLY_NOISE + ATYPICAL_DATASETS,
    # the model x noise grid; fig11's extra rates; flipping's models beyond the grid's 3
    # seeds; noise-free typical/atypical runs (ResNet-9, 3 seeds)
    "train": GRID_RUNS + SWEEP_ONLY_NOISE * SEEDS + (FLIP_MODELS - SEEDS) + ATYPICAL_DATASETS * SEEDS,
    "collect_run_tables": 2,  # gradients, metrics
    "gradient_figure": 7,  # fig01, fig02, fig10, fig11, fig12, fig13, fig14
    # rewinding: every run of the grid (fig03 is part of fig15) and the typical/atypical
    # runs (fig09)
    "rewind_layers": GRID_RUNS + ATYPICAL_DATASETS * SEEDS,
    # retraining, one job per run retraining its 9 ResNet-9 layers in turn: 3 datasets x 3
    # noise rates x 3 seeds (fig18, fig04 is part of it) and the typical/atypical runs (fig19)
    "retrain_layer": DATASETS * NOISE * SEEDS + ATYPICAL_DATASETS * SEEDS,
    "collect_layer_tables": 4,  # rewinding, retraining, and both for typical/atypical
    "layer_figure": 8,  # fig03, fig04, fig09, fig15, fig16, fig17, fig18, fig19
    # neuron flipping: 1000 + 1000 examples, dealt to shards, on each of the 30 models
    "select_flip_examples": 1,
    "flip_shard": FLIP_MODELS * FLIP_SHARDS,
    "merge_flipping": 1,
    "fig05": 1,
    "second_split": FLIP_MODELS,  # forgetting time, one per flipping model
    "detection_auc": 1,
    "auc_table": 1,
    "flipping_paper_rows": 1,
    # the localization benchmark: both tracks (ground truth, deletion), sharded; merged, a table, a figure
    "localize_shard": 2 * LOCALIZE_SHARDS,
    "merge_localization": 1,
    "localization_table": 1,
    "localization_figure": 1,
    # typical vs atypical: published C-scores, each downloaded once (fetch_cscores), so no
    # hold-out models
    "fetch_cscores": ATYPICAL_DATASETS,
    "atypical_data": ATYPICAL_DATASETS,
    "collect_atypical_tables": 1,
    "fig08": 1,
    # tab2's grid, tab1 on MNIST and SVHN, tab3's two baselines (standard dropout, sparse net)
    "train_dropout": TAB2 + 2 + 2,
    "collect_dropout_metrics": 1,
    "dropout_table": 3,  # tab1, tab2, tab3
    "dropout_paper_rows": 1,
    "fig07_table": 1,
    "fig07": 1,
    "paper_vs_ours": 1,
    "claims": 1,
    "provenance": 1,
    "atlas_neighbours": 1,  # the atlas of the primary setting
    "atlas_table": 1,
    "atlas_page": 1,
    "atlas_summary": 1,
    "all": 1,
}


def job_counts(output: str, runs: bool = False) -> dict[str, int]:
    """Snakemake's 'Job stats' table of a dry run -> {rule: jobs}; runs=True: {one-run rule:
    runs}, a batch rule's jobs (runs_per_job: train_seeds_0_1_2) counted as their runs."""
    table = output.split("Job stats:", 1)[1]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table.split("total", 1)[0], flags=re.M)
    counts: dict[str, int] = {}
    for name, n in rows:
        rule, k = run_rule(name) if runs else (name, 1)
        counts[rule] = counts.get(rule, 0) + k * int(n)
    return counts


@pytest.fixture(scope="module")
def dry_run(paper_dry_run) -> str:
    return paper_dry_run[2]


def test_preset_is_the_papers_scale():
    c = yaml.safe_load(PAPER.read_text())
    assert c["datasets"] == ["cifar10", "mnist", "svhn"]
    assert c["models"] == ["resnet9", "resnet50", "vit_small"]
    assert c["noise_rates"] == [0.05, 0.1, 0.2] and c["seeds"] == [0, 1, 2]
    assert c["train_subset"] is None and c["test_subset"] is None
    assert c["model_settings"]["resnet9"]["width"] == 1.0
    t = c["train"]
    assert (t["epochs"], t["batch_size"], t["peak_lr"], t["peak_epoch"]) == (50, 512, 0.1, 10)
    assert c["download"] is True  # no data needed to build the DAG
    assert c["device"] == "cuda"  # a GPU job without a GPU fails at start instead of training on the CPU
    assert len(c["flipping"]["seeds"]) == FLIP_MODELS and c["flipping"]["examples_per_group"] == 1000
    assert c["atypical"]["datasets"] == ["cifar10", "mnist"]
    assert (c["retraining"]["epochs"], c["retraining"]["peak_epoch"]) == (20, 10)


def test_dry_run_has_the_papers_job_counts(dry_run):
    counts = job_counts(dry_run, runs=True)  # runs: a batch job (runs_per_job) counts as its runs
    assert counts == EXPECTED, {k: (counts.get(k), EXPECTED.get(k)) for k in counts.keys() | EXPECTED.keys()
                                if counts.get(k) != EXPECTED.get(k)}


def test_dry_run_targets_full_scale_artefacts(dry_run):
    for path in ["results/runs/cifar10/vit_small/noise0.2/seed2/gradients.parquet",
                 "results/runs/svhn/resnet50/noise0.05/seed0/metrics.parquet",
                 "results/runs/cifar10/resnet9/noise0.99/seed1/gradients.parquet",
                 "results/figures/fig13.png", "results/figures/fig14.png",
                 "results/tables/tab2.csv", "results/figures/fig17.png", "results/tables/auc.csv",
                 "results/figures/fig09.png", "results/figures/fig19.png",
                 "results/runs/cifar10/resnet9/noise0.1/seed2/retraining.parquet"]:
        assert path in dry_run, path


# ---- the jobs, through the SLURM profile (how the preset is meant to run) -----------------

class Job(NamedTuple):
    rule: str  # a batch job's (runs_per_job: train_seeds_0_1_2) one-run rule (train)
    runs: int  # the runs it makes (a batch job: several)
    jobid: str
    group: str | None  # the group job it is packed into, if any
    wildcards: dict
    resources: dict
    input: list
    output: list


def _pairs(text: str) -> dict:
    return dict(item.split("=", 1) for item in text.split(", ") if "=" in item)


def parse_dry_run(output: str) -> list[Job]:
    """The jobs of `snakemake -n`'s output, with their group (members follow 'Group job ID
    (jobs in lexicogr. order):', indented), wildcards, resources and files."""
    jobs, job, group = [], None, None
    for line in output.splitlines():
        if m := re.match(r"^(?:\[[^]]*\] )?Group job (\S+) \(jobs in lexicogr\. order\):", line):
            group = f"{m.group(1)}#{len(jobs)}"  # the id names the group, not the group job
            continue
        if m := re.match(r"^(\s*)(?:local)?(?:rule|checkpoint) (\w+):$", line):
            if not m.group(1):
                group = None
            rule, runs = run_rule(m.group(2))
            job = {"rule": rule, "runs": runs, "group": group, "jobid": "", "wildcards": {}, "resources": {},
                   "input": [], "output": []}
            jobs.append(job)
            continue
        m = re.match(r"^\s+(jobid|wildcards|resources|input|output): (.*)$", line)
        if job is not None and m:
            key, value = m.groups()
            job[key] = (value if key == "jobid" else _pairs(value) if key in ("wildcards", "resources")
                        else value.split(", "))
    return [Job(**j) for j in jobs]


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory) -> tuple[list[Job], set[str], str]:
    """(jobs, local rules, output) of the dry run of config/paper.yaml through the SLURM
    profile, in an empty directory (a fresh clone: no file placed by hand); the profile
    packs jobs into groups but plans the same jobs as `--workflow-profile none`."""
    workdir = tmp_path_factory.mktemp("paper_slurm")
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(PAPER), "--workflow-profile", str(PROFILE.parent)]
    # a site with a GPU partition and model (workflow/profiles/slurm's environment variables)
    env = {**os.environ, **SITE}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-5000:]
    assert not [p for p in workdir.iterdir() if p.name != ".snakemake"], "the dry run wrote files"
    local = subprocess.run([sys.executable, str(ROOT / "tests" / "slurm" / "check_run.py"), "--local-rules",
                            str(ROOT / "Snakefile"), str(PAPER), str(workdir)], capture_output=True, text=True)
    assert local.returncode == 0, local.stderr[-3000:]
    output = result.stdout + result.stderr
    return parse_dry_run(output), set(json.loads(local.stdout.splitlines()[-1])), output


def test_each_dataset_is_downloaded_once_locally_before_every_job_that_reads_it(paper_dry_run):
    jobs, local, _ = paper_dry_run
    c = yaml.safe_load(PAPER.read_text())
    fetch = {j.wildcards["dataset"]: j for j in jobs if j.rule == "fetch_dataset"}
    assert sorted(fetch) == sorted(set(c["datasets"]) | set(c["atypical"]["datasets"]))
    assert len(fetch) == sum(j.rule == "fetch_dataset" for j in jobs)
    assert {"fetch_dataset", "fetch_cscores"} <= local

    producer = {path: j.jobid for j in jobs for path in j.output}
    parents = {j.jobid: {producer[f] for f in j.input if f in producer} for j in jobs}
    ancestors: dict[str, set[str]] = {}

    def upstream(jobid: str) -> set[str]:  # every job this one waits for
        if jobid not in ancestors:
            ancestors[jobid] = set(parents[jobid]).union(*(upstream(p) for p in parents[jobid]))
        return ancestors[jobid]

    downloads = {f.jobid for f in fetch.values()}
    for job in jobs:
        if job.rule in ("fetch_dataset", "fetch_cscores"):
            continue
        before = upstream(job.jobid)
        assert before & downloads, f"{job.rule} {job.wildcards} runs before any download"
        if "dataset" in job.wildcards:
            assert fetch[job.wildcards["dataset"]].jobid in before, f"{job.rule} {job.wildcards}"


def test_every_gpu_job_gets_a_gpu_and_no_submission_asks_for_more_than_8h(paper_dry_run):
    jobs, local, _ = paper_dry_run
    config = load_config(PAPER)
    gpu_jobs = [j for j in jobs if j.rule in resources.GPU_RULES]
    assert {j.rule for j in gpu_jobs} == set(resources.GPU_RULES) - {"holdout_model"}  # published C-scores
    assert all(j.resources.get("gpu") == "1" for j in gpu_jobs)
    # the site's GPU partition and model reach every GPU job, the generated runs_per_job rules'
    # (train_seeds_0_1_2, which the profile's set-resources cannot name) too; the others its CPU partition
    assert any(j.runs > 1 for j in gpu_jobs)
    for j in gpu_jobs:
        assert (j.resources.get("slurm_partition"), j.resources.get("gpu_model")) == ("gpu", "h100"), j
    for j in jobs:
        if j.rule not in local | {"all"} | set(resources.GPU_RULES):
            assert j.resources.get("slurm_partition") == "cpu", j
    assert not local & set(resources.GPU_RULES)
    for j in jobs:
        if j.rule not in local | {"all"}:
            assert 0 < int(j.resources["runtime"]) <= MAX_MINUTES, j

    groups: dict[str, list[Job]] = {}
    for j in jobs:
        if j.group:
            groups.setdefault(j.group, []).append(j)
    components = yte.process_yaml(PROFILE.read_text(), require_use_yte=True)["group-components"]
    assert len(groups) == sum(-(-sum(j.rule == rule for j in jobs) // n) for rule, n in
                              [("rewind_layers", components["rewinding"]), ("retrain_layer", components["retraining"]),
                               ("flip_shard", components["flipping"])])
    for members in groups.values():
        # one GPU per group job: its members run one after another, its time limit is their sum
        runtime = sum(int(j.resources["runtime"]) for j in members)
        assert runtime <= MAX_MINUTES, [(j.rule, j.wildcards) for j in members]
        # a retried group (attempt 2: twice the time) fits as well
        assert sum(resources.minutes(j.rule, config, {**j.wildcards, "runs": j.runs}, attempt=2)
                   for j in members) <= MAX_MINUTES
        assert len({j.rule for j in members}) == 1 and members[0].rule in resources.GPU_RULES


def test_small_runs_share_a_job_and_every_gpu_process_has_work(paper_dry_run):
    """runs_per_job: null packs the runs of a setting whose work is under 20 GPU minutes into
    jobs of about 20 minutes or more (memloc.plan.batches), so that start-up (1 minute a
    process) is at most 5% of the estimate; the ViT's long runs stay one per job."""
    jobs, _, _ = paper_dry_run
    config = {**load_config(PAPER), "device": "cuda"}
    gpu = [j for j in jobs if j.rule in ("train", "rewind_layers", "retrain_layer", "second_split")]
    work = [resources.work_minutes(j.rule, config, {**j.wildcards, "runs": j.runs}) for j in gpu]
    assert sum(j.runs > 1 for j in gpu) == 58 and len(gpu) == 131  # of 123 + 87 + 33 + 30 runs
    # a batch job has >= 20 minutes of work, or all 3 seeds of a setting with less in all
    assert all(w >= 20 or j.runs == SEEDS for w, j in zip(work, gpu) if j.runs > 1)
    assert all(j.runs == 1 for j in gpu if j.wildcards.get("model") == "vit_small")
    gpu_processes = sum(j.rule in resources.GPU_RULES for j in jobs)
    total = sum(resources.work_minutes(j.rule, config, {**j.wildcards, "runs": j.runs} if j.wildcards else
                                       {"dataset": "cifar10"}) for j in jobs if j.rule in resources.GPU_RULES)
    assert gpu_processes == 180 and gpu_processes / (gpu_processes + total) <= 0.05


def test_tables_figures_and_collect_jobs_run_locally(paper_dry_run):
    jobs, local, _ = paper_dry_run
    for j in jobs:
        if j.output and all(re.match(r"results/(figures|tables)/", f) for f in j.output):
            assert j.rule in local, f"{j.rule} writes only tables or figures but goes through sbatch"
    submitted = {j.rule for j in jobs} - local - {"all"}
    assert submitted == set(resources.GPU_RULES) - {"holdout_model"} | {"corrupt_data", "atypical_data"}


# ---- config/smoke.yaml: the same DAG at toy sizes, in its own results folder ---------------

SMOKE = ROOT / "config" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke_dry_run(tmp_path_factory) -> list[Job]:
    """The jobs of the README's smoke command through the SLURM profile (one --configfile, the
    paper's file first), in an empty directory."""
    workdir = tmp_path_factory.mktemp("paper_smoke_slurm")
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--workflow-profile", str(PROFILE.parent), "--configfile", str(PAPER), str(SMOKE)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    return parse_dry_run(result.stdout + result.stderr)


def test_smoke_preset_plans_every_kind_of_job_of_the_paper_in_results_smoke(paper_dry_run, smoke_dry_run):
    smoke = yaml.safe_load(SMOKE.read_text())
    root = smoke["results_dir"]
    assert root != "results"
    paper_jobs, _, _ = paper_dry_run
    assert {j.rule for j in smoke_dry_run} == {j.rule for j in paper_jobs}  # fewer jobs, the same kinds
    outputs = [f for j in smoke_dry_run for f in j.output]
    assert not [f for f in outputs if f.startswith("results/")]
    assert all(f.startswith(f"{root}/") or f.startswith("data/cscores/") for f in outputs)  # downloads: shared
    artefacts = [f"fig{i:02d}" for i in range(1, 20) if i != 6]
    assert {f"{root}/figures/{fig}.{ext}" for fig in artefacts for ext in ("png", "pdf")} <= set(outputs)
    assert {f"{root}/tables/{t}.csv" for t in ("tab1", "tab2", "tab3", "auc")} <= set(outputs)
    trained = {(j.wildcards["dataset"], j.wildcards["model"], j.wildcards["variant"]) for j in smoke_dry_run
               if j.rule == "train"}
    c = yaml.safe_load(PAPER.read_text())
    assert {(d, m, f"noise{n:g}") for d in c["datasets"] for m in c["models"] for n in c["noise_rates"]} <= trained
    # seed 0, and seed 1 of the flipped runs (flipping.seeds); a batch job trains several (its outputs name them)
    seeds = {s for j in smoke_dry_run if j.rule == "train" for f in j.output for s in re.findall(r"/seed(\d+)/", f)}
    assert smoke["seeds"] == [0] and seeds == {"0", "1"}
