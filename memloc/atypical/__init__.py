"""Typical vs atypical examples (Sec. 7): C-scores, published (fetched and checked: fetch)
or estimated by hold-out (cscores); plan and job entry points.
"""
