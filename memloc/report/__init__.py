"""Figures (figures, drawn by plots), the paper-vs-ours table (paper_vs_ours: the paper's
numbers, memloc.flipping.paper and memloc.dropout.paper, beside ours), the claims table
(claims, criteria, example_criteria, verdicts) and the provenance table.  On top of the
experiment packages, whose tables it reads; plotting libraries load only here.
"""
