"""memloc: the library behind the workflow that regenerates "Can Neural Network
Memorization Be Localized?" (Maini et al., ICML 2023).

Packages follow the paper, and depend one way (tests/test_layout.py checks it):

- `core`: what every experiment builds on: data (`core.data`), models and their layers
  (`core.models`), training with its one SGD loop, gradient accounting, evaluation and
  checkpoints (`core.train`), the example-index protocol, paths, devices, provenance, and
  the start every job shares (`core.job`);
- the experiments, on core: `runs` (Sec. 3-4), `layers` (rewinding, retraining: Sec. 5),
  `flipping` (neuron flipping, detection: Sec. 6.1), `dropout` (example-tied dropout:
  Sec. 6.2), `atypical` (C-scores: Sec. 7);
- `report`, on the experiments: figures, display tables, the paper-vs-ours table, claims;
- the workflow's view of all of them: `config` (load and resolve), `config_checks`,
  `config_settings` and `plan` (job sizes, how a job computes).

Each experiment package has a `plan` module (which runs and files exist, their settings and
its part of rule all: `targets`; only the .smk files call it) and a `jobs` module (entry
points: each reads, makes one call and writes; only workflow/scripts call them); the
algorithms know neither, and the library knows nothing of Snakemake.
"""

__version__ = "0.1.0"
