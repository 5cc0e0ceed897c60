"""What each job asks its scheduler for: wall-clock minutes and memory (MB), per rule.

The one place where job sizes are set.  Every rule's `resources:` calls job_runtime /
job_mem_mb (workflow/rules/common.smk), which pass the rule's name, the config and the job's
wildcards to `minutes` / `mem_mb` here; the SLURM profile turns them into `sbatch -t` /
`--mem`.  Locally, runtime is ignored and mem_mb counts only against `--resources mem_mb=`.

GPU jobs (GPU_RULES) are sized from the work they do:

    minutes = MARGIN x forward_passes / (forward images/s of the model on the device) / 60
              + STARTUP_MINUTES, rounded up to 5 minutes, x attempt, at most MAX_MINUTES

forward_passes counts the images a job puts through its model in forward-pass equivalents
(a backward pass = 2 forwards); `bench/gpu_hours.py` sums the same counts over the DAG.
Forward images/s = SUSTAINED_TFLOPS of the device / the model's forward FLOPs per image
(FORWARD_GFLOP, scaled by image area and, for ResNet-9, width^2).  Where they come from:

- FORWARD_GFLOP: torch's FlopCounterMode on one 32x32 image at the paper's settings
  (`python bench/gpu_hours.py` prints them from the models themselves, and warns where the
  constants below are more than 10% off).
- SUSTAINED_TFLOPS["cuda"] = 40: an assumption, ~13% of an A100's dense bf16 peak (small
  models, evaluation passes, Python overhead); no GPU has been measured yet.  At 40 TFLOP/s
  ResNet-9 trains ~23,000 img/s, ResNet-50 ~5,100, ViT-small (patch 2) ~2,300.  A slower
  GPU (V100, T4) can take ~3x longer than this: MARGIN covers 2x, retries (attempt 2 gets
  twice the time) and resuming from checkpoints cover the rest.
- SUSTAINED_TFLOPS["cpu"] = 0.01 per thread: `bench/gpu_hours.py --measure-cpu` measured
  15 GFLOP/s (ResNet-9 width 0.25, one thread) on the 2-core development machine at load
  average ~10; `device: auto` is sized as a CPU, since it may be one.
- STARTUP_MINUTES = 5: python + torch + memloc imports and loading Fashion-MNIST took 19 s
  there (same load); a GPU node adds CUDA's start, bigger datasets and checkpoints, and a
  shared file system may be slow.

Every other rule is a small constant (CPU_RULES): tables, figures and downloads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from memloc.core.data.builtin import DATASETS, SPLIT_SIZES
from memloc.core.paths import DATASET_INFO

# The rules that train or evaluate networks, one GPU each (gpu=1 in their resources).
GPU_RULES = ("train", "train_dropout", "holdout_model", "rewind_layers", "retrain_layer", "flip_shard",
             "second_split", "atlas_neighbours", "localize_shard")
# (mem_mb, minutes) of the CPU rules; a rule not named here gets DEFAULT_CPU.
CPU_RULES = {
    "fetch_dataset": (4000, 60),  # a download: the network sets the pace
    "fetch_cscores": (1000, 15),
    "corrupt_data": (4000, 20),
    "atypical_data": (4000, 10),
    "fig07_table": (4000, 10),
    "collect_run_tables": (4000, 10),
    "collect_layer_tables": (4000, 10),
    "collect_atypical_tables": (4000, 10),
    "select_flip_examples": (1000, 5),
}
DEFAULT_CPU = (2000, 10)

# Training and test split sizes (torchvision).  A dataset declared in the config
# (dataset_definitions) is sized from its data (shape) and its fetch record (sizes), else as DECLARED_DATASET.
DECLARED_DATASET = ((50_000, 10_000), 3, 32)  # (train, test), channels, side
# Forward GFLOP per 32x32 image at the paper's settings (ResNet-9 width 1; ViT-small patch 2,
# dim 512, depth 6, mlp 512): FlopCounterMode, see bench/gpu_hours.py.  A model declared in
# the config (model_definitions) is sized as the costliest built-in one.
FORWARD_GFLOP = {"resnet9": 0.58, "resnet50": 2.6, "vit_small": 5.7}
SUSTAINED_TFLOPS = {"cuda": 40.0, "cpu": 0.01}  # cpu: per thread (see above)
MARGIN = 2.0
STARTUP_MINUTES = 5
# Estimated work a GPU process should have at least where the grid allows (flipping.shards:
# null sizes the shards by it), so that its start-up (~1 minute) stays a small share.
JOB_MINUTES = 10
MAX_MINUTES = 8 * 60  # no submission asks for more (a common partition limit)
FLIP_STEPS = 10  # mean removals per flipped example in the paper: 5.1 (noisy), 15.7 (clean)
# Host memory of a GPU job besides its data: python, torch, the CUDA libraries and context.
GPU_BASE_MB = 4000
DATA_COPIES = 1.25  # float32 images + the uint8 source (a quarter of it)


def _fetched(dataset: str) -> dict | None:
    """The fetch_dataset job's record of a dataset (sizes, shape), once it has run."""
    path = Path(DATASET_INFO.format(dataset=dataset))
    return json.loads(path.read_text()) if path.exists() else None


def split_sizes(config: dict, dataset: str) -> tuple[int, int]:
    """(training, test) examples a job of `dataset` uses: the configured subsets or the splits
    (a declared dataset's from its fetch record, else DECLARED_DATASET's)."""
    record = _fetched(dataset) if dataset not in SPLIT_SIZES else None
    n, n_test = (record["n_train"], record["n_test"]) if record else SPLIT_SIZES.get(dataset, DECLARED_DATASET[0])
    return config["train_subset"] or n, config["test_subset"] or n_test


def image_shape(dataset: str, config: dict | None = None) -> tuple[int, int]:
    """(channels, side) of a dataset's images; a declared one's from its data
    (memloc.core.data.catalog.dataset_info: folder listing / headers), else DECLARED_DATASET's."""
    if dataset in DATASETS:
        return DATASETS[dataset][2:4]
    from memloc.core.data.catalog import dataset_info
    from memloc.runs.plan import data_source

    try:
        info = dataset_info(dataset, data_source(config)) if config else None
    except (KeyError, OSError, ValueError):  # not readable yet: the declared default
        info = None
    return (info.channels, info.image_size) if info else DECLARED_DATASET[1:]


def forward_gflop(config: dict, model: str, dataset: str) -> float:
    """Forward GFLOP per image of `model` on `dataset`'s images at the configured settings."""
    gflop = FORWARD_GFLOP.get(model, max(FORWARD_GFLOP.values()))
    gflop *= (image_shape(dataset, config)[1] / 32) ** 2  # convolutions and tokens scale with the area
    if model == "resnet9":
        gflop *= config["model_settings"].get("resnet9", {}).get("width", 1.0) ** 2
    return gflop


_LAYERS: dict[tuple, int] = {}


def layer_count(config: dict, model: str) -> int:
    """Layers of `model` (memloc.layers.plan.layer_names, built on the meta device), once per
    model and settings."""
    from memloc.layers.plan import layer_names

    key = (model, repr(config["model_settings"].get(model)), repr(config.get("model_definitions", {}).get(model)))
    if key not in _LAYERS:
        _LAYERS[key] = len(layer_names(config, model))
    return _LAYERS[key]


def retrained_count(config: dict, model: str, dataset: str) -> int:
    """Layers a retraining job retrains (memloc.layers.plan.retrained_layers)."""
    from memloc.layers.plan import retrained_layers

    return len(retrained_layers(config, model, dataset))


def _noise(wc: dict) -> float:
    """The label-noise fraction of a job: its {noise} wildcard or its {variant} (atypical: 0)."""
    if "noise" in wc:
        return float(wc["noise"])
    variant = wc.get("variant", "noise0")
    return float(variant[len("noise"):]) if variant.startswith("noise") else 0.0


def _track_run(config: dict, wc: dict) -> dict | None:
    """The run a localization shard ({track} wildcard) works on, else None."""
    if "track" not in wc:
        return None
    from memloc.localize.plan import track_run

    return track_run(config, wc["track"])


def job_model(rule: str, config: dict, wc: dict) -> str:
    """The model a GPU job runs: its {model} wildcard, a localization track's run's; hold-out
    models are the primary model."""
    if "model" in wc:
        return wc["model"]
    track = _track_run(config, wc)
    return track["model"] if track else config["primary"]["model"]


def job_dataset(config: dict, wc: dict) -> str:
    """The dataset of a job: its {dataset} wildcard, a localization track's run's, else the
    primary one."""
    if "dataset" in wc:
        return wc["dataset"]
    track = _track_run(config, wc)
    return track["dataset"] if track else config["primary"]["dataset"]


def forward_passes(rule: str, config: dict, wc: dict) -> float:
    """Images a GPU job puts through its model, in forward-pass equivalents (backward = 2)."""
    n, n_test = split_sizes(config, job_dataset(config, wc))
    e = config["train"]["epochs"]
    if rule == "train":  # 1 forward + 2 backward (gradient accounting) per step; per-epoch evaluation
        return e * n * 5 + (e + 1) * (n + n_test)
    if rule == "train_dropout":  # plain SGD; evaluation with and without the memorization units
        from memloc.dropout.plan import run_epochs

        de = run_epochs(config, wc["dropout"])
        return de * n * 3 + (de + 1) * 2 * (n + n_test)
    if rule == "holdout_model":  # SGD on a subset, per-epoch records, then every example once
        sub = n * config["atypical"]["holdout"]["fraction"]
        return e * sub * 3 + (e + 1) * sub + n
    if rule == "second_split":  # SGD on half, fine-tuning on the other half, per-epoch records
        ss = config["detection"]["second_split"]
        return (ss["epochs_first"] + ss["epochs_second"]) * n / 2 * 4
    if rule == "rewind_layers":  # every layer x rewind epoch; a pass starts at the layer's stage
        epochs = len(config["rewinding"]["epochs"] or range(e + 1))  # null: every epoch 0..E
        return layer_count(config, wc["model"]) * epochs * (n + n_test) / 2
    if rule == "retrain_layer":  # per retrained layer: SGD on the clean examples, evaluation of all and the test set
        layers = retrained_count(config, job_model(rule, config, wc), wc["dataset"])
        return layers * config["retraining"]["epochs"] * (3 * (1 - _noise(wc)) * n + n + n_test)
    if rule == "flip_shard":
        return 2 * config["flipping"]["examples_per_group"] / config["flipping"]["shards"] * _flip_passes(config, n)
    if rule == "atlas_neighbours":  # every training example once, in eval mode
        return n
    if rule == "localize_shard":
        return localize_passes(config, wc)
    raise ValueError(f"memloc.plan.resources: {rule!r} is not a GPU rule ({', '.join(GPU_RULES)})")


def _flip_passes(config: dict, n: int) -> float:
    """Per flipped example: steps x (noisy copies + population batch) x 3, then its accuracy."""
    flip = config["flipping"]
    return FLIP_STEPS * (flip["noise_copies"] + flip["population_batch"]) * 3 + (flip["accuracy_examples"] or n)


def flip_shards(config: dict) -> int:
    """flipping.shards when it is null: as many shards per flipped model as give each at least
    JOB_MINUTES of estimated work on the config's device (at least 1, at most one per example)."""
    p, examples = config["primary"], 2 * config["flipping"]["examples_per_group"]
    whole = {**config, "flipping": {**config["flipping"], "shards": 1}}
    per_model = work_minutes("flip_shard", whole, {"dataset": p["dataset"], "model": p["model"]})
    return max(1, min(examples, int(per_model // JOB_MINUTES)))


def localize_passes(config: dict, wc: dict) -> float:
    """A localization shard (memloc.localize): per example, the methods' passes (flipping:
    steps x (copies + population) x 3; zero-out: every candidate once, ~1000 for ResNet-9 at
    width 1, the final Linear's weights; IG: steps x 3; slimming, hard concrete: steps x 3;
    the rest 1) and the judging of every method's top-k (deletion: x the specificity rows)."""
    loc = config["localization"]
    examples = 2 * loc["examples_per_group"] / loc["shards"]
    f = loc["flipping"]
    ranking = (FLIP_STEPS * (f["noise_copies"] + f["population_batch"] * f["noise_copies"]) * 3 + 1000
               + 3 * (loc["integrated_gradients"]["steps"] + loc["slimming"]["steps"] + loc["hard_concrete"]["steps"]))
    judged = len(loc["methods"]) * len(loc["ks"]) * (1 + 3 * loc["specificity_examples"])
    return examples * (ranking + judged)


def device_kind(config: dict) -> str:
    """'cuda' where the config asks for a GPU, else 'cpu' (auto may run on a CPU: sized as one)."""
    return "cuda" if config["device"].startswith("cuda") else "cpu"


def forward_rate(config: dict, model: str, dataset: str, threads: int = 1) -> float:
    """Forward-pass images per second of `model` on the config's device."""
    kind = device_kind(config)
    tflops = SUSTAINED_TFLOPS[kind] * (threads if kind == "cpu" else 1)
    return tflops * 1e12 / (forward_gflop(config, model, dataset) * 1e9)


def work_minutes(rule: str, config: dict, wc: dict) -> float:
    """Estimated minutes of a GPU job's model passes (no margin, no start-up); wc["runs"]: the
    runs of one setting the job makes one after another (memloc.plan.batches; default 1)."""
    threads = 1 if rule in ("flip_shard", "second_split", "localize_shard") else config["threads"]
    rate = forward_rate(config, job_model(rule, config, wc), job_dataset(config, wc), threads)
    return int(wc.get("runs", 1)) * forward_passes(rule, config, wc) / rate / 60


def minutes(rule: str, config: dict, wc: dict, attempt: int = 1) -> int:
    """Wall-clock limit (minutes) of a job of `rule` with wildcards `wc` (a dict)."""
    if rule in GPU_RULES:
        base = 5 * math.ceil((MARGIN * work_minutes(rule, config, dict(wc)) + STARTUP_MINUTES) / 5)
    else:
        base = CPU_RULES.get(rule, DEFAULT_CPU)[1]
    return min(base * attempt, MAX_MINUTES)


def mem_mb(rule: str, config: dict, wc: dict, attempt: int = 1) -> int:
    """Memory (MB) of a job of `rule`: a GPU job holds its dataset's splits as float32 images
    beside python, torch and CUDA; a retry gets half as much again per attempt."""
    if rule in GPU_RULES:
        dataset = job_dataset(config, wc)
        n, n_test = split_sizes(config, dataset)
        channels, size = image_shape(dataset, config)
        data = (n + n_test) * channels * size * size * 4 * DATA_COPIES / 2**20
        base = 500 * math.ceil((GPU_BASE_MB + data) / 500)
    else:
        base = CPU_RULES.get(rule, DEFAULT_CPU)[0]
    return int(base * (1 + 0.5 * (attempt - 1)))
