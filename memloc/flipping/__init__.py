"""Neuron-level localization (Sec. 6.1): the flipping objective and its one-example reference
loop (objective), the batched search (batched, masks, population, accuracy), mislabeled-example
detection (detection); plan and job entry points.
"""
