"""Typical vs atypical examples (Sec. 7): C-scores, published or estimated by hold-out
(cscores); plan and job entry points.
"""
