"""The names a design field accepts: one tuple per field, for validation, the layers, the
command line and the explorer's menus alike.

Example:
>>> SHORTCUT_OPTIONS, DROP_MODES
(('A', 'B', 'C'), ('batch', 'sample'))
"""

BLOCKS = ("basic", "bottleneck", "dense", "highway")
STEMS = ("conv", "deep", "dense", "none")
POOLINGS = ("avg", "max", "flatten", None)
DATA_FORMATS = ("channels_last", "channels_first", None)
ACTIVATIONS = ("relu", "crelu", "elu", "gelu", "swish", "tanh", "linear")
SHORTCUT_OPTIONS = ("A", "B", "C")
"""He et al. (2015): A zero-pads, B projects where the shape changes, C projects everywhere."""
DROP_MODES = ("batch", "sample")
"""Stochastic depth's draws: one per mini-batch (Huang et al.) or per example (drop path)."""
DTYPE_POLICIES = (None, "float32", "mixed_bfloat16", "mixed_float16")
"""The values of `Architecture.dtype_policy`; ``None`` is the machine's default
(`keras_resnets.runtime.precision.default_dtype_policy`)."""
