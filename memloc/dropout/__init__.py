"""The example-tied dropout study (Sec. 6.2): which runs exist (plan), tab1-tab3 and fig07's
examples (tables), job entry points.  The dropout layer itself is memloc.core.tied_dropout.
"""
