"""Residual blocks: the lecture's `ResBlock`, bottlenecks, their pre-activation versions and
a fully-connected block, each with a plain twin (``residual=False``).

All blocks compute ``y = post(shortcut(x) + drop(F(x)))``. The residual function ``F`` is a
chain of linear maps ``W_i`` (convolutions, or `Dense` for vectors), each with a batch norm and
an activation ``σ``: ``F(x) = BN(W_2 σ(BN(W_1 x)))`` after He et al. (2015), whose blocks end
with ``post = σ``; ``F(x) = W_2 σ(BN(W_1 σ(BN(x))))`` after He et al. (2016), whose
pre-activation blocks have no ``post`` and feed their projection shortcut ``σ(BN(x))`` too.
``drop`` is optional stochastic depth (Huang et al. 2016). ``_ResidualBlock.call`` reads in that
order; sub-layers are called through `call_sublayer` (PyTorch's fast path, see
`keras_resnets.layers.fast`).
"""

import math

import keras

from keras_resnets.design.choices import DROP_MODES
from keras_resnets.design.plan import (
    EXPANSION,
    bottleneck_width,
    conv_output_size,
    needs_shortcut_layer,
    width_factor,
)
from keras_resnets.design.validation import check_choice, check_int, check_number, check_probability
from keras_resnets.layers.activations import check_activation, make_activation
from keras_resnets.layers.common import (
    batch_norm,
    builds_in_its_dtype_policy,
    channel_axis,
    check_odd_kernel,
    conv_layers,
    resolve_data_format,
)
from keras_resnets.layers.fast import call_sublayer
from keras_resnets.layers.shortcut import Shortcut
from keras_resnets.layers.stochastic_depth import StochasticDepth


class _ResidualBlock(keras.layers.Layer):
    """Shared machinery; subclasses say which linear layers the branch holds (`_specs`)."""

    preactivation = False

    def __init__(
        self,
        nb_channels,
        kernel_size=3,
        strides=1,
        *,
        shortcut="B",
        residual=True,
        survival_probability=1.0,
        drop_mode="batch",
        activation="relu",
        use_bias=False,
        batch_norm=True,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        zero_init_last_bn=False,
        kernel_initializer="he_normal",
        data_format=None,
        seed=None,
        dropout=0.0,
        avg_down=False,
        shortcut_batch_norm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        survival_probability = self._check_arguments(
            nb_channels, kernel_size, strides, shortcut, residual, survival_probability, drop_mode,
            activation, dropout,
        )
        self.nb_channels = nb_channels
        self.kernel_size = kernel_size
        self.strides = strides
        self.shortcut = shortcut
        self.residual = residual
        self.survival_probability = float(survival_probability)
        self.drop_mode = drop_mode
        self.activation = activation
        self.use_bias = use_bias
        self.batch_norm = batch_norm
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.zero_init_last_bn = zero_init_last_bn
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.data_format = resolve_data_format(data_format)
        self.seed = seed
        self.dropout = float(dropout)
        self.avg_down = bool(avg_down)
        self.shortcut_batch_norm = bool(shortcut_batch_norm)
        self.dropout_layer = (
            keras.layers.Dropout(dropout, seed=seed, dtype=self.dtype_policy, name="dropout")
            if dropout > 0
            else None
        )
        self.drop = (
            StochasticDepth(survival_probability, drop_mode, seed=seed, dtype=self.dtype_policy,
                            name="stochastic_depth")
            if survival_probability < 1.0
            else None
        )

    def _check_arguments(self, nb_channels, kernel_size, strides, shortcut, residual,
                         survival_probability, drop_mode, activation, dropout):
        """Raises a `ValueError` for the first bad argument; returns ``survival_probability``
        as a float."""
        check_int("nb_channels", nb_channels)
        check_odd_kernel(kernel_size)
        check_int("strides", strides)
        check_activation(activation)
        needs_shortcut_layer(shortcut, 0, 0, 1)  # validates the option
        check_choice("drop_mode", drop_mode, DROP_MODES)
        survival_probability = check_probability("survival_probability", survival_probability)
        check_number("dropout", dropout, 0, 1, high_open=True)
        if survival_probability < 1.0 and not residual:
            raise ValueError(
                "stochastic depth (survival_probability < 1) needs residual=True: dropping the "
                "branch of a plain block would cut the network."
            )
        if activation == "crelu" and residual and not self.preactivation:
            raise ValueError(
                "activation='crelu' doubles the width after the sum, so the next shortcut would "
                "not line up: use it with residual=False."
            )
        return survival_probability

    # -- what subclasses define -------------------------------------------------------------
    def _specs(self):
        """``(filters, kernel_size, strides, groups)`` of each linear layer of the branch."""
        raise NotImplementedError

    def _linear(self, filters, kernel_size, strides, groups, name):
        """The layers of one linear map of the branch (a padded convolution by default)."""
        return conv_layers(
            filters, kernel_size, strides, use_bias=self.use_bias, groups=groups,
            kernel_initializer=self._fresh_initializer(), data_format=self.data_format, name=name,
        )

    def _fresh_initializer(self):
        """A copy of ``kernel_initializer`` for one layer.

        An unseeded Keras initialiser draws its seed once, at construction: one instance shared
        by two layers of the same shape would give them identical weights.
        """
        init = self.kernel_initializer
        return type(init).from_config(init.get_config())

    # -- shared ------------------------------------------------------------------------------
    @property
    def out_channels(self):
        """Width of the block's output."""
        last = self._specs()[-1][0]
        return last if self.preactivation else last * width_factor(self.activation)

    @builds_in_its_dtype_policy
    def build(self, input_shape):
        self._axis = channel_axis(len(input_shape), self.data_format)
        specs = self._specs()
        self.units = [self._make_unit(i, spec, last=i == len(specs)) for i, spec in enumerate(specs, start=1)]
        strides = math.prod(spec[2] for spec in specs)
        self.shortcut_layer = None
        if self.residual and needs_shortcut_layer(self.shortcut, input_shape[self._axis], specs[-1][0], strides):
            self.shortcut_layer = Shortcut(
                self.shortcut, specs[-1][0], strides,
                batch_norm=self.batch_norm and self.shortcut_batch_norm,
                bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                kernel_initializer=self._fresh_initializer(), data_format=self.data_format,
                avg_down=self.avg_down, name="shortcut",
            )
        self.post_activation = (
            None if self.preactivation else make_activation(self.activation, self._axis, name="post_act")
        )
        self._build_sublayers(tuple(input_shape))
        self.built = True

    def _make_unit(self, i, spec, last):
        """The sub-layers of the branch's ``i``-th linear map (from 1): ``{"linear": [...]}``
        with the batch norm and activation that follow it (post-activation; no activation after
        the last) or precede it (pre-activation, where `_preactivates`)."""
        filters, kernel_size, strides, groups = spec
        zero_scale = self.zero_init_last_bn and last
        norm_act = {}
        if self.batch_norm:
            norm_act["bn"] = batch_norm(self._axis, self.bn_momentum, self.bn_epsilon, f"bn{i}", zero_scale)
        if self.preactivation or not last:
            norm_act["act"] = make_activation(self.activation, self._axis, name=f"act{i}")
        linear = self._linear(filters, kernel_size, strides, groups, f"conv{i}")
        if not self.preactivation:
            return {"linear": linear, **norm_act}
        return {**(norm_act if self._preactivates(i) else {}), "linear": linear}

    def _preactivates(self, index):
        return True

    def _build_sublayers(self, input_shape):
        """Builds every sub-layer on the shape it sees in `call`, in `call`'s order."""
        x_hat = self._build_norm_act(self.units[0], input_shape) if self.preactivation else input_shape
        shape = x_hat
        for i, unit in enumerate(self.units):
            if self.preactivation and i > 0:
                shape = self._build_norm_act(unit, shape)
            if i == 1 and self.dropout_layer is not None:
                self.dropout_layer.build(shape)
            for layer in unit["linear"]:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            if not self.preactivation:
                shape = self._build_norm_act(unit, shape)
        for layer in (self.drop, self.post_activation):  # they see the branch's output
            if layer is not None:
                layer.build(shape)
        if self.shortcut_layer is not None:
            self.shortcut_layer.build(input_shape if self.shortcut == "A" else x_hat)

    @staticmethod
    def _build_norm_act(unit, shape):
        for key in ("bn", "act"):
            if key in unit:
                unit[key].build(shape)
                shape = unit[key].compute_output_shape(shape)
        return shape

    # -- the equations ---------------------------------------------------------------------
    def call(self, inputs, training=False):
        """``y = post(shortcut(x) + drop(F(x)))`` (see the module's docstring)."""
        if training and self.drop is not None and self.drop.mode == "batch":
            return self._call_stochastic_depth(inputs, training)
        x_hat = self._preactivate(inputs, training)
        h = self._residual_function(x_hat, training)
        if self.drop is not None:
            h = call_sublayer(self, self.drop, h, training=training)
        if self.residual:
            h = h + self._shortcut(inputs, x_hat, training)
        return self._activate_sum(h)

    def _preactivate(self, x, training):
        """``σ(BN(x))``: a pre-activation block's first batch norm and activation, which its
        branch and its projection shortcut share (He et al. 2016); ``x`` itself otherwise."""
        return self._norm_act(self.units[0], x, training) if self.preactivation else x

    def _residual_function(self, x_hat, training):
        """``F``: linear maps ``W_i``, each followed by ``σ(BN(·))`` (post-activation, no σ
        after the last) or preceded by it (pre-activation; the first one is in ``x_hat``)."""
        h = x_hat
        for i, unit in enumerate(self.units):
            if self.preactivation and i > 0:
                h = self._norm_act(unit, h, training)
            if i == 1 and self.dropout_layer is not None:  # Zagoruyko & Komodakis (2016)
                h = call_sublayer(self, self.dropout_layer, h, training=training)
            for layer in unit["linear"]:
                h = call_sublayer(self, layer, h)
            if not self.preactivation:
                h = self._norm_act(unit, h, training)
        return h

    def _norm_act(self, unit, h, training):
        """``σ(BN(h))`` with the unit's batch norm and activation, where it has them."""
        if "bn" in unit:
            h = call_sublayer(self, unit["bn"], h, training=training)
        if "act" in unit:
            h = call_sublayer(self, unit["act"], h)
        return h

    def _shortcut(self, inputs, x_hat, training):
        """The identity, or the shortcut layer: option A on the raw input, a projection on the
        pre-activated one (He et al. 2016)."""
        if self.shortcut_layer is None:
            return inputs
        return call_sublayer(self, self.shortcut_layer, inputs if self.shortcut == "A" else x_hat,
                             training=training)

    def _activate_sum(self, h):
        """A post-activation block's ``σ`` after the sum (He et al. 2015); none in pre-activation."""
        return h if self.post_activation is None else call_sublayer(self, self.post_activation, h)

    def _zero(self):
        """0, with a zero gradient for every weight of the block. A skipped branch's weights
        then get a zero gradient on every backend, as in a graph; PyTorch's autograd would give
        them none, and Keras would leave them out of the optimizer's step (momentum too). It has
        the branch's dtype, bfloat16 under a mixed policy, whose weights are float32."""
        ops = keras.ops
        zero = 0.0 * ops.sum(ops.stack([ops.sum(w) for w in self.trainable_weights]))
        return ops.cast(zero, self.compute_dtype)

    def _call_stochastic_depth(self, inputs, training):
        """Huang et al.'s rule as they compute it: one draw per mini-batch, and a dropped branch
        is not computed at all (nor are its batch-norm statistics updated), so a training step
        costs the blocks that survive. ``ops.cond`` runs one side; both sides return the new
        values of the block's non-trainable variables, so that the batch-norm updates made on
        the side that ran leave the conditional (``jax.lax.cond`` cannot assign variables)."""
        seeds = {id(v) for v in self.drop.variables}
        state = [v for v in self.variables if not v.trainable and id(v) not in seeds]
        shortcut_sees_x_hat = self.shortcut_layer is not None and self.shortcut != "A"

        def side(keep):
            def run():
                mapping = [(v, v.value) for v in self.variables]
                with keras.StatelessScope(state_mapping=mapping) as scope:
                    x_hat = self._preactivate(inputs, training) if keep or shortcut_sees_x_hat else inputs
                    branch = self._residual_function(x_hat, training) if keep else self._zero()
                    out = self._shortcut(inputs, x_hat, training) + branch
                return out, [scope.get_current_value(v) for v in state]
            return run

        h, values = keras.ops.cond(self.drop.draw(), side(True), side(False))
        for variable, value in zip(state, values):
            variable.assign(value)
        return self._activate_sum(h)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = channel_axis(len(shape), self.data_format)
        for _, kernel_size, strides, _ in self._specs():
            for i in range(1, len(shape)):
                if i != axis:
                    shape[i] = conv_output_size(shape[i], kernel_size, strides)
        shape[axis] = self.out_channels
        return tuple(shape)

    def get_config(self):
        return {
            **super().get_config(),
            "nb_channels": self.nb_channels,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "shortcut": self.shortcut,
            "residual": self.residual,
            "survival_probability": self.survival_probability,
            "drop_mode": self.drop_mode,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "batch_norm": self.batch_norm,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "zero_init_last_bn": self.zero_init_last_bn,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "data_format": self.data_format,
            "seed": self.seed,
            "dropout": self.dropout,
            "avg_down": self.avg_down,
            "shortcut_batch_norm": self.shortcut_batch_norm,
        }


_BLOCK_ARGS = """
    Args:
        nb_channels: width of the block{width}.
        kernel_size: odd size of the spatial kernels.
        strides: subsampling of the first block of a stage (1 elsewhere).
        shortcut: ``"A"`` (subsample + zero channels, no weights), ``"B"`` (projection where
            the shape changes) or ``"C"`` (projection in every block); see `Shortcut`.
        residual: ``False`` gives the plain twin: the same layers without the skip.
        survival_probability: stochastic depth ``p_l``; 1 disables it.
        drop_mode: ``"batch"`` (Huang et al.) or ``"sample"`` (drop path); see `StochasticDepth`.
        activation: a name of `ACTIVATIONS`; ``"crelu"`` doubles the width.
        use_bias: whether the convolutions have biases (the lecture's do).
        batch_norm: whether batch normalisation follows (precedes) each convolution.
        bn_momentum, bn_epsilon: batch-norm settings; the defaults match PyTorch's.
        zero_init_last_bn: start the last batch norm of the branch at zero scale (Goyal et al.
            2017), so the block starts as the identity.
        kernel_initializer: initialiser of the convolutions, projection shortcut included
            (``LooksLinear()`` after a CReLU).
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None`` (Keras' setting).
        seed: seed of the stochastic-depth draws and of the dropout.
        dropout: rate of a `Dropout` before the branch's second linear layer (Wide ResNet,
            Zagoruyko & Komodakis 2016); 0 adds no layer.
        avg_down: average-pool downsampling in a strided projection shortcut (ResNet-D).
        shortcut_batch_norm: ``False`` leaves out the batch norm after a projection shortcut
            (Wide ResNet's, and pre-activation ResNets' in Torch).
"""


@keras.saving.register_keras_serializable(package="keras_resnets")
class ResBlock(_ResidualBlock):
    __doc__ = (
        """The lecture's block: conv → BN → ReLU → conv → BN, + x, ReLU (He et al. 2015).

    Example:
    >>> from keras_resnets import count_params
    >>> block = ResBlock(16, 3, data_format="channels_last")
    >>> tuple(block(keras.ops.ones((1, 28, 28, 16))).shape)
    (1, 28, 28, 16)
    >>> count_params(block)
    {'trainable': 4672, 'non_trainable': 64, 'total': 4736}
"""
        + _BLOCK_ARGS.format(width="")
    )

    def _specs(self):
        return [
            (self.nb_channels, self.kernel_size, self.strides, 1),
            (self.nb_channels, self.kernel_size, 1, 1),
        ]


_BOTTLENECK_ARGS = (
    "        expansion: output width over ``nb_channels`` (4 in the paper).\n"
    "        groups: cardinality: groups of the kxk convolution (ResNeXt; 1 in ResNet).\n"
    "        width_per_group: inner width per group per 64 ``nb_channels`` (torchvision's\n"
    "            ``width_per_group``; 128 and groups=1 is Wide ResNet-50-2).\n"
)


@keras.saving.register_keras_serializable(package="keras_resnets")
class BottleneckBlock(_ResidualBlock):
    __doc__ = (
        """The bottleneck block of ResNet-50/101/152: 1x1 reduce, kxk (strided), 1x1 expand.

    The stride sits on the kxk convolution, as in torchvision ("ResNet v1.5"). The inner
    width is `bottleneck_width` (``nb_channels`` by default); with ``groups > 1`` the kxk
    convolution is grouped: ResNeXt's aggregated transformations (Xie et al. 2017).

    Example:
    >>> block = BottleneckBlock(64, data_format="channels_last")
    >>> tuple(block(keras.ops.ones((1, 56, 56, 64))).shape)
    (1, 56, 56, 256)
    >>> resnext = BottleneckBlock(64, groups=32, width_per_group=4, data_format="channels_last")
    >>> tuple(resnext(keras.ops.ones((1, 8, 8, 256))).shape)
    (1, 8, 8, 256)
    >>> from keras_resnets import count_params
    >>> count_params(resnext)["trainable"]
    71168
"""
        + _BLOCK_ARGS.format(width=" inside; the output has ``expansion * nb_channels``")
        + _BOTTLENECK_ARGS
    )

    def __init__(self, nb_channels, kernel_size=3, strides=1, *, expansion=EXPANSION, groups=1,
                 width_per_group=64, **kwargs):
        check_int("expansion", expansion)
        check_int("groups", groups)
        check_int("width_per_group", width_per_group)
        self.expansion = expansion
        self.groups = groups
        self.width_per_group = width_per_group
        super().__init__(nb_channels, kernel_size, strides, **kwargs)

    def _specs(self):
        width = bottleneck_width(self.nb_channels, self.groups, self.width_per_group)
        return [
            (width, 1, 1, 1),
            (width, self.kernel_size, self.strides, self.groups),
            (self.nb_channels * self.expansion, 1, 1, 1),
        ]

    def get_config(self):
        return {**super().get_config(), "expansion": self.expansion, "groups": self.groups,
                "width_per_group": self.width_per_group}


class _PreActivation:
    """Mixin: BN → activation → conv units (He et al. 2016), no activation after the sum."""

    preactivation = True

    def __init__(self, *args, preactivate=True, **kwargs):
        self.preactivate = preactivate
        super().__init__(*args, **kwargs)

    def _preactivates(self, index):
        # The first block after the stem uses the stem's BN-ReLU (He et al. 2016, appendix).
        return index > 1 or self.preactivate

    def get_config(self):
        return {**super().get_config(), "preactivate": self.preactivate}


_PREACT_ARGS = (
    "        preactivate: ``False`` for the first block after a stem that already ends with\n"
    "            BN-ReLU, as in the paper.\n"
)


@keras.saving.register_keras_serializable(package="keras_resnets")
class PreActResBlock(_PreActivation, ResBlock):
    __doc__ = (
        """Pre-activation `ResBlock`: BN → ReLU → conv → BN → ReLU → conv, + x (He et al. 2016).

    Example:
    >>> tuple(PreActResBlock(16, data_format="channels_last")(keras.ops.ones((1, 8, 8, 16))).shape)
    (1, 8, 8, 16)
"""
        + _BLOCK_ARGS.format(width="")
        + _PREACT_ARGS
    )


@keras.saving.register_keras_serializable(package="keras_resnets")
class PreActBottleneckBlock(_PreActivation, BottleneckBlock):
    __doc__ = (
        """Pre-activation `BottleneckBlock` (He et al. 2016).

    Example:
    >>> block = PreActBottleneckBlock(16, data_format="channels_last")
    >>> tuple(block(keras.ops.ones((1, 8, 8, 64))).shape)
    (1, 8, 8, 64)
"""
        + _BLOCK_ARGS.format(width=" inside; the output has ``expansion * nb_channels``")
        + _BOTTLENECK_ARGS
        + _PREACT_ARGS
    )


@keras.saving.register_keras_serializable(package="keras_resnets")
class DenseResBlock(ResBlock):
    __doc__ = (
        """A fully-connected residual block: Linear → BN → ReLU → Linear → BN, + x, ReLU.

    ``kernel_size`` and ``strides`` must stay 1; a width change uses a `Dense` projection
    (options B, C) or zero features (option A).

    Example:
    >>> tuple(DenseResBlock(200)(keras.ops.ones((4, 200))).shape)
    (4, 200)
"""
        + _BLOCK_ARGS.format(width=" (units)")
    )

    def __init__(self, nb_channels, kernel_size=1, strides=1, **kwargs):
        if kernel_size != 1 or strides != 1:
            raise ValueError(
                f"DenseResBlock has no spatial axes: kernel_size={kernel_size} and "
                f"strides={strides} must both be 1."
            )
        super().__init__(nb_channels, kernel_size, strides, **kwargs)

    def _linear(self, filters, kernel_size, strides, groups, name):
        return [
            keras.layers.Dense(
                filters, use_bias=self.use_bias, kernel_initializer=self._fresh_initializer(),
                name=name,
            )
        ]
