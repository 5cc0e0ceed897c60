"""The training runs (Sec. 3-4): which runs exist and how each is trained (plan), and the jobs
that corrupt the data, train a run and collect its tables (jobs).
"""
