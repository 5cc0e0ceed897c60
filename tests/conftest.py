import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

FASHION = "/usr/share/datasets/fashion-mnist"
ROOT = Path(__file__).resolve().parents[1]

# Runs `snakemake` command lines in processes forked from one that has imported Snakemake
# and the workflow's heavy libraries once (most of a dry run's time is these imports).
# stdin: JSON [{"args", "stdout", "stderr"}]; argv[1]: runs at a time; stdout: exit codes.
_FORK_RUNNER = r"""
import json, os, sys, traceback
import snakemake.cli, torch, pandas
jobs, width = json.load(sys.stdin), int(sys.argv[1])
codes, running, todo = [None] * len(jobs), {}, list(enumerate(jobs))
while todo or running:
    while todo and len(running) < width:
        i, job = todo.pop(0)
        pid = os.fork()
        if pid == 0:  # the child: one `snakemake ARGS`, as `python -m snakemake ARGS` runs it
            code = 1
            try:
                for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
                    os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                sys.argv = ["snakemake", *job["args"]]
                snakemake.cli.main(job["args"])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        running[pid] = i
    pid, status = os.wait()
    codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
json.dump(codes, sys.stdout)
"""


def run_snakemake_many(runs: list[list[str]], logs: Path, timeout: int = 900) -> list[subprocess.CompletedProcess]:
    """`python -m snakemake ARGS` for each ARGS of `runs`, from the repository root, as many
    at a time as there are CPU cores; stdout / stderr of each are kept under `logs`."""
    logs.mkdir(parents=True, exist_ok=True)
    jobs = [{"args": args, "stdout": str(logs / f"{i}.out"), "stderr": str(logs / f"{i}.err")}
            for i, args in enumerate(runs)]
    if not hasattr(os, "fork"):  # one process per run
        return [subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True, text=True,
                               timeout=timeout) for args in runs]
    runner = subprocess.run([sys.executable, "-c", _FORK_RUNNER, str(os.cpu_count() or 1)], cwd=ROOT,
                            input=json.dumps(jobs), capture_output=True, text=True, timeout=timeout)
    assert runner.returncode == 0, runner.stderr[-5000:]
    return [subprocess.CompletedProcess(["snakemake", *job["args"]], code, Path(job["stdout"]).read_text(),
                                        Path(job["stderr"]).read_text())
            for job, code in zip(jobs, json.loads(runner.stdout), strict=True)]


@pytest.fixture(scope="session")
def snakemake_many(tmp_path_factory):
    """run_snakemake_many, its logs in a fresh temporary directory per call."""
    return lambda runs: run_snakemake_many(runs, tmp_path_factory.mktemp("snakemake"))


@pytest.fixture(autouse=True, scope="session")
def _compute():
    """Every test computes as a job of the schema's defaults (memloc.core.device.use); a test
    sets its own with use_compute."""
    from schema_defaults import compute

    from memloc.core import device

    device.use(compute())


@pytest.fixture
def use_compute(monkeypatch):
    """use_compute(precision="fp16", ...): compute so for the rest of the test."""
    from schema_defaults import compute

    from memloc.core import device

    return lambda **fields: monkeypatch.setattr(device, "_compute", compute(**fields))


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # pytest-xdist runs about one worker per core: one thread each
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per CPU core, and one more where the real-SLURM run goes (beside
    tests/test_workflow.py's local run, in its worker): its jobs mostly wait for the scheduler,
    and the extra worker keeps the cores busy meanwhile."""
    markexpr = config.getoption("markexpr") or ""
    slurm = os.environ.get("MEMLOC_TEST_SLURM") == "1" and "not slurm" not in markexpr
    return (os.cpu_count() or 1) + int(slurm)


# The files of end-to-end runs, longest first (~minutes each on 2 cores): started first, they
# run beside the short tests on the other workers instead of after them (--dist loadfile hands
# out files in collection order).
LONGEST_FIRST = ["test_paper_smoke.py", "test_workflow.py", "test_own_model.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory):
    """A torchvision root for Fashion-MNIST, staged from Debian's package (real data)."""
    if not os.path.isdir(FASHION):
        pytest.fail(f"{FASHION} missing: apt-get install dataset-fashion-mnist (.ci/run does)")
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def trained_run(fashion_root, tmp_path_factory):
    """A real run laid out as the train rule leaves it: 200 Fashion-MNIST examples (20% label
    noise: 40 noisy), a width-0.125 ResNet-9 trained for 2 epochs; checkpoints of epochs 0-2;
    100 test images."""
    from dataclasses import asdict

    from schema_defaults import model_settings, run_inputs, source_fields, train_config

    from memloc.runs.jobs import train_run, write_corrupted_dataset

    run = tmp_path_factory.mktemp("run")
    source = source_fields(fashion_root)
    table = run / "data.parquet"
    write_corrupted_dataset(table, "fashion_mnist", source, noise=0.2, subset=200, seed=0)
    outputs = {name: str(run / f"{name}.parquet") for name in ("metrics", "examples", "gradients")}
    outputs["checkpoints"] = str(run / "checkpoints.txt")
    train_settings = asdict(train_config(epochs=2, peak_epoch=1, batch_size=64, seed=0, eval_batch_size=256))
    inputs = run_inputs(str(table), "fashion_mnist", source, 100)
    train_run(inputs, model_settings("resnet9", width=0.125), train_settings, outputs, torch.device("cpu"))
    return {"data_table": str(table), "checkpoints": outputs["checkpoints"], "dataset": "fashion_mnist",
            "source": source, "test_subset": 100, "train": train_settings, "inputs": inputs}
