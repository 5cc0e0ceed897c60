"""The example-tied dropout study (Sec. 6.2): which runs exist (plan), tab1-tab3 and fig07's
examples (tables), job entry points.  The dropout layers are memloc.dropout.tied's, where
they go (after which modules of any model) memloc.dropout.placement's.
"""
