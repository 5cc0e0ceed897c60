"""Models: the built-in ones (zoo, built from blocks), those declared by a factory (factory),
how a model's parameters are partitioned into layers (layer_rule), the settings of a model and
how it is built (build), and the models a workflow config names (config)."""
