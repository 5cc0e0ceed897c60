"""What a job's process imports before it does anything: the table jobs (most of a DAG's
jobs at the test scale) must not pay for torch (~3 s on 2 CPU cores) or torchvision."""

import json
import re
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
# The scripts of the rules that only read and write tables (figure.py imports the plotting
# libraries instead; the rest train, evaluate or read images).
TABLE_SCRIPTS = ["auc_table", "claims", "collect_run_tables", "cscore_holdout", "detection_auc",
                 "dropout_paper_rows", "dropout_table", "flipping_paper_rows", "paper_vs_ours",
                 "select_flip_examples", "atypical_data", "provenance"]
# Imports each module in turn, printing the heavy libraries loaded so far after each.
PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
    print(json.dumps([name, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'matplotlib'})]))
"""


def test_the_table_jobs_import_no_torch():
    modules = {}
    for script in TABLE_SCRIPTS:
        found = re.findall(r"^from (memloc\S*) import", (SCRIPTS / f"{script}.py").read_text(), flags=re.M)
        assert found, script
        modules.update(dict.fromkeys(found, script))
    out = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, check=True).stdout
    loaded = [json.loads(line) for line in out.splitlines()]
    assert [name for name, _ in loaded] == list(modules)
    for name, heavy in loaded:
        assert heavy == [], f"{modules[name]}.py: importing {name} loads {heavy}"
