"""Figures, display tables, the paper's numbers, titles and the claims table.  Uses only
memloc.core below it (no experiment package); plotting libraries load only here.
"""
