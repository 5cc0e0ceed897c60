"""memloc: the library behind the workflow that regenerates "Can Neural Network
Memorization Be Localized?" (Maini et al., ICML 2023).

One module per concern (data, models, training, gradients, rewinding, retraining,
flipping, dropout, detection, C-scores, tables, plots); `pipeline`, `layer_jobs`,
`flipping_jobs`, `*_study` hold the job entry points the workflow's scripts call.  The
library knows nothing of Snakemake.
"""

__version__ = "0.1.0"
