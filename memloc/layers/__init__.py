"""Layer-level localization (Sec. 5, App. B): rewinding a layer to an earlier epoch and
retraining a reset layer on clean examples; plan and job entry points.
"""
