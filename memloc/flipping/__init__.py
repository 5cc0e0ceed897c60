"""Neuron-level localization (Sec. 6.1): the flipping objective and its one-example reference
loop (objective), the candidate units of any model (units), the batched search (batched, masks,
population, accuracy) and its memory budget (budget), mislabeled-example detection (detection)
and second-split forgetting (second_split), the paper's numbers (paper); plan and job entry
points.
"""
