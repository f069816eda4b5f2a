"""The names a recipe and a run accept, importable without Keras: the command line lists them
in ``--help`` and checks its arguments before a backend starts.

Example:
>>> OPTIMIZERS, SCHEDULES, DISTRIBUTIONS
(('adam', 'sgd'), ('constant', 'step', 'cosine', 'goyal'), ('none', 'data_parallel'))
"""

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "step", "cosine", "goyal")
DISTRIBUTIONS = ("none", "data_parallel")
