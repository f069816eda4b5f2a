"""The traced training step of a preset, op by op, on JAX or TensorFlow: to check that a change
of block code leaves the program the backend compiles unchanged.

Prints the step's operations (JAX: the jaxpr's primitives with their output shapes, nested
calls flattened, in order; TensorFlow: the graph's op types with their output shapes, counted)
and one SHA-256 of that list. Two checkouts trace the same program when their digests agree.

Example:
    KERAS_BACKEND=jax python benchmarks/traced_step.py --preset mnist_resnet
    KERAS_BACKEND=jax PYTHONPATH=/path/to/old/checkout python benchmarks/traced_step.py --preset mnist_resnet
"""

import argparse
import collections
import hashlib
import os

os.environ.setdefault("KERAS_RESNETS_DTYPE_POLICY", "float32")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_resnets  # noqa: E402
from keras_resnets.design.presets import get_preset  # noqa: E402


def step_ops(architecture, batch=8):
    """The operations of one training step of ``architecture`` on this process' backend
    (JAX or TensorFlow)."""
    model = keras_resnets.build_resnet(architecture)
    x = np.random.default_rng(0).normal(size=(batch, *model.input_shape[1:])).astype("float32")
    y = np.zeros((batch,), "int32")
    return {"jax": jax_ops, "tensorflow": tensorflow_ops}[keras.backend.backend()](model, x, y)


def digest(ops):
    """The first 16 hex digits of the SHA-256 of ``ops``."""
    return hashlib.sha256("\n".join(ops).encode()).hexdigest()[:16]


def jax_ops(model, x, y):
    """The primitives of one SGD step's jaxpr (forward, loss, gradients), in order."""
    import jax

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainable = [v.value for v in model.trainable_variables]
    rest = [v.value for v in model.non_trainable_variables]

    def loss(trainable, rest, x, y):
        logits, _ = model.stateless_call(trainable, rest, x, training=True)
        return loss_fn(y, logits)

    jaxpr = jax.make_jaxpr(jax.value_and_grad(loss))(trainable, rest, x, y)
    return list(_flatten(jaxpr.jaxpr))


def _flatten(jaxpr):
    for eqn in jaxpr.eqns:
        inner = [p for p in eqn.params.values() if hasattr(p, "jaxpr") or hasattr(p, "eqns")]
        if inner:
            for p in inner:
                yield from _flatten(getattr(p, "jaxpr", p))
            continue
        shapes = ",".join(str(getattr(v.aval, "shape", "")) for v in eqn.outvars)
        yield f"{eqn.primitive.name} {shapes}"


def tensorflow_ops(model, x, y):
    """The op types of one training step's graph (forward, loss, gradients), counted."""
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(tf.constant(x), tf.constant(y)).graph
    ops = collections.Counter(
        f"{op.type} {','.join(str(o.shape) for o in op.outputs)}" for op in graph.get_operations())
    return [f"{count} x {name}" for name, count in sorted(ops.items())]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="mnist_resnet")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--preactivation", action="store_true", help="its pre-activation form")
    parser.add_argument("--list", action="store_true", help="print every op, not only the digest")
    args = parser.parse_args()
    fields = {"preactivation": True} if args.preactivation else {}
    ops = step_ops(get_preset(args.preset, **fields), args.batch)
    if args.list:
        print("\n".join(ops))
    form = " (pre-activation)" if args.preactivation else ""
    print(f"{keras.backend.backend()} {args.preset}{form}: {len(ops)} ops, sha256 {digest(ops)} "
          f"({keras_resnets.__file__})")


if __name__ == "__main__":
    main()
