"""Datasets: the built-in ones (builtin) and those declared in the config (declared, their
files: declared_files, torchvision_classes), every one by name (catalog), where a job loads
them from (source, with the fetch job's cache), the fetch job (fetch), label noise (noise)
and the tensors a run trains on (run_data)."""
