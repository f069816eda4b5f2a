"""Initialisers from the papers: the "looks linear" initialisation of Balduzzi et al. (2017)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_resnets")
class LooksLinear(keras.initializers.Initializer):
    """Looks-linear initialisation for a layer that follows a `CReLU`.

    A weight ``W`` of half the input width is drawn from ``base``, then each of its
    input rows is written twice, once negated:
    ``W̃[..., 2q, j] = W[..., q, j]`` and ``W̃[..., 2q + 1, j] = -W[..., q, j]``.
    Since ``CReLU(x)`` interleaves ``relu(x)`` and ``relu(-x)``, ``W̃ · CReLU(x) = W · x``:
    a CReLU network initialised this way is exactly linear at initialisation.

    Works for `Dense` kernels ``(in, out)`` and `Conv2D` kernels ``(kh, kw, in, out)``;
    the input dimension (``shape[-2]``) must be even.

    Args:
        base: initialiser of the half-width weight ``W`` (default ``"orthogonal"``).
        seed: optional seed handed to ``base`` when it is given by name.

    Example:
    >>> init = LooksLinear(seed=0)
    >>> w = keras.ops.convert_to_numpy(init((4, 3)))
    >>> bool((w[0::2] == -w[1::2]).all())
    True
    """

    def __init__(self, base="orthogonal", seed=None):
        named = isinstance(base, str)
        base = keras.initializers.get(base)
        if named and seed is not None:
            config = base.get_config()
            if "seed" not in config:
                raise ValueError(
                    f"seed={seed!r} needs a random base initialiser, not base={type(base).__name__}."
                )
            base = type(base).from_config({**config, "seed": seed})
        self.base = base
        self.seed = seed

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2 or shape[-2] % 2:
            raise ValueError(
                f"LooksLinear needs a kernel whose input dimension shape[-2] is even "
                f"(it follows a CReLU), got shape={shape}."
            )
        half = shape[:-2] + (shape[-2] // 2, shape[-1])
        w = self.base(half, dtype=dtype)
        return ops.reshape(ops.stack([w, -w], axis=-2), shape)

    def get_config(self):
        return {"base": keras.initializers.serialize(self.base), "seed": self.seed}
