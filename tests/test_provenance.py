"""memloc.core.provenance / memloc.report.provenance: what a result records of its making."""

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import torch

from memloc.core import provenance
from memloc.core.provenance import environment_record, lock_mismatches, locked_versions, start_job_log
from memloc.report.provenance import TABLE_JOB, provenance_summary, write_provenance_table

ROOT = Path(__file__).resolve().parents[1]
UNLOCKED = os.environ.get("MEMLOC_UNLOCKED") == "1"  # .ci/run-latest: newest releases, not the lock


def write_lock(path: Path, **versions: str) -> Path:
    path.write_text("# made by hand\n" + "".join(
        f"{name}=={v} \\\n    --hash=sha256:{'0' * 64}\n    # via x\n" for name, v in versions.items()))
    return path


def test_lock_mismatches_name_the_package_and_both_versions(tmp_path):
    torch_version = torch.__version__.split("+")[0]
    lock = write_lock(tmp_path / "lock.txt", torch=torch_version, numpy="0.0.1", **{"no-such-package": "1.0"})
    assert locked_versions(lock) == {"torch": torch_version, "numpy": "0.0.1", "no-such-package": "1.0"}
    got = lock_mismatches(lock)
    assert len(got) == 2  # torch matches (its +cu130-style local label does not count)
    assert got[0].startswith("numpy ") and got[0].endswith("(lock: 0.0.1)")
    assert got[1] == "no-such-package not installed (lock: 1.0)"


def test_a_job_log_starts_with_a_warning_only_when_the_environment_is_not_the_lock(tmp_path, monkeypatch):
    import sys
    stderr = sys.stderr
    try:
        start_job_log(tmp_path / "same.log")
        print("job output", file=sys.stderr, flush=True)
        monkeypatch.setattr(provenance, "LOCK_FILE", write_lock(tmp_path / "lock.txt", numpy="0.0.1"))
        start_job_log(tmp_path / "other.log")
        sys.stderr.flush()
    finally:
        sys.stderr = stderr
    assert (tmp_path / "same.log").read_text() == "job output\n"
    warning = (tmp_path / "other.log").read_text()
    assert "WARNING: the environment differs" in warning and "numpy" in warning and "(lock: 0.0.1)" in warning


def test_a_training_record_names_commit_device_precision_threads_and_determinism():
    record = environment_record("cpu", threads=1)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert record["memloc_commit"] == head.strip() and record["tree_dirty"] in ("yes", "no")
    assert record["torch"] == torch.__version__.split("+")[0]
    # "yes" in the locked environment (test_environment checks it); .ci/run-latest's is not
    assert record["matches_lock"] == "yes" or (UNLOCKED and record["matches_lock"].startswith("no: "))
    assert record["device"] == "cpu" and record["threads"] == "1"
    assert record["precision"] in ("bf16", "fp32")  # auto on a CPU: bf16 where oneDNN has it
    assert record["deterministic_algorithms"] == "off"  # switched on CUDA only
    assert record["cpu"] and record["cpu_isa"]


def test_the_table_has_a_row_per_run_and_one_for_its_job_and_a_summary(tmp_path):
    records = {}
    for i, precision in enumerate(["bf16", "bf16", "fp32"]):
        path = tmp_path / f"run{i}.json"
        path.write_text(json.dumps({"memloc_commit": "abc", "precision": precision, "gpu": "H100"}))
        records[f"run{i}"] = str(path)
    out = {k: str(tmp_path / f"provenance.{k}") for k in ("parquet", "csv", "md")}
    frame = write_provenance_table(records, out)
    assert list(frame["source"]) == ["run0", "run1", "run2", TABLE_JOB]
    assert frame.loc[3, "gpu"] == "-" and frame.loc[3, "memloc_commit"] != "abc"  # the job's own record
    pd.testing.assert_frame_equal(pd.read_parquet(out["parquet"]), frame)
    summary = provenance_summary(frame).set_index("field")["value"]
    assert summary["precision"] == "bf16 (2 rows); fp32 (1 rows)"
    assert summary["gpu"] == "H100"
    assert "| precision " in Path(out["md"]).read_text()
