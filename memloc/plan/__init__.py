"""The workflow's view of the whole study, above the experiment packages: what each job asks
its scheduler for (resources) and how a compute job computes (compute), planned from the
validated and resolved config.  Only the .smk files call this package."""
