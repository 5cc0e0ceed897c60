"""The example-tied dropout study (Sec. 6.2): the dropout layers (tied), where they go after
which modules of any model (placement), a model with them (model), which runs exist (plan),
tab1-tab3 and fig07's examples (tables), the paper's numbers (paper) and job entry points.
Training and evaluation reach the layers through memloc.core.example_index only.
"""
