"""memloc: the library behind the workflow that regenerates "Can Neural Network
Memorization Be Localized?" (Maini et al., ICML 2023).

Packages follow the paper: `core` (data, models, training, gradient accounting), `runs`,
`layers` (rewinding, retraining), `flipping` (neuron flipping, detection), `dropout`
(example-tied dropout study), `atypical` (C-scores), `report` (figures, tables, claims).
Each experiment package has a `plan` module (what runs and files exist; only the .smk
files call it) and a `jobs` module (entry points; only workflow/scripts call them); the
algorithms know neither, and the library knows nothing of Snakemake.
"""

__version__ = "0.1.0"
