"""Parameter and cost reports, the way the lecture counts: trainable parameters (comparable
with PyTorch's ``sum(p.numel() for p in model.parameters())``) and non-trainable ones (batch
norm moving statistics, PyTorch's buffers) apart. Multiply-adds are the plan's
(`keras_resnets.design.plan`): a block's from its `BlockSpec`, a top-level convolution's or
dense layer's by the plan's rule, `linear_macs`."""

import functools
import math

import keras

from keras_resnets.design.names import parse_block_name
from keras_resnets.design.plan import linear_macs
from keras_resnets.models.builder import plan_of


def _sizes(weights):
    return sum(math.prod(w.shape) for w in weights)


def count_params(model):
    """``{"trainable", "non_trainable", "total"}`` parameter counts of a built model.

    Example:
    >>> import keras_resnets
    >>> count_params(keras_resnets.mnist_resnet())
    {'trainable': 117802, 'non_trainable': 1600, 'total': 119402}
    """
    trainable = _sizes(model.trainable_weights)
    non_trainable = _sizes(model.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": non_trainable, "total": trainable + non_trainable}


def _macs(layer, blocks):
    """Multiply-adds per example of a layer of a model: a block's from ``blocks`` (the plan's
    specs by name; None without a plan), a convolution's or dense layer's by `linear_macs`."""
    if parse_block_name(layer.name):
        return None if blocks is None else blocks[layer.name].cost.macs
    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        return 0
    shape = layer.output.shape
    first = isinstance(layer, keras.layers.Conv2D) and layer.data_format == "channels_first"
    return linear_macs(math.prod(layer.kernel.shape), shape[2:] if first else shape[1:-1])


def _plus(a, b):
    """``a + b``, None when either is unknown."""
    return None if a is None or b is None else a + b


def parameter_table(model):
    """One row per layer that has weights or is a block, in order.

    Each row: ``name``, ``kind`` (class name), ``stage`` (0 for stem and head), ``block``,
    ``output_shape``, ``trainable``, ``non_trainable``, ``macs`` (multiply-adds per example;
    a block's is None in a model that `build_resnet` did not make in this process, see
    `keras_resnets.models.builder.plan_of`).
    """
    plan = plan_of(model)
    blocks = None if plan is None else {block.name: block for block in plan.blocks}
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        stage, block = parse_block_name(layer.name) or (0, 0)
        trainable = _sizes(layer.trainable_weights)
        non_trainable = _sizes(layer.non_trainable_weights)
        if not stage and not trainable and not non_trainable:
            continue
        rows.append({
            "name": layer.name,
            "kind": type(layer).__name__,
            "stage": stage,
            "block": block,
            "output_shape": tuple(layer.output.shape[1:]),
            "trainable": trainable,
            "non_trainable": non_trainable,
            "macs": _macs(layer, blocks),
        })
    return rows


def stage_table(model):
    """Rows of `parameter_table` summed per stage: ``stem``, ``stage1`` ..., ``head``."""
    rows = parameter_table(model)
    stages = {}
    last_stage = max((r["stage"] for r in rows), default=0)
    for i, row in enumerate(rows):
        if row["stage"]:
            key = f"stage{row['stage']}"
        else:
            seen_block = any(r["stage"] for r in rows[:i])
            key = "head" if seen_block or not last_stage else "stem"
        entry = stages.setdefault(key, {"name": key, "blocks": 0, "output_shape": None,
                                        "trainable": 0, "non_trainable": 0, "macs": 0})
        entry["blocks"] += 1 if row["stage"] else 0
        entry["output_shape"] = row["output_shape"]
        for field in ("trainable", "non_trainable", "macs"):
            entry[field] = _plus(entry[field], row[field])
    return list(stages.values())


def format_summary(model):
    """A plain-text table of `stage_table` with totals, for terminals.

    Example:
    >>> import keras_resnets
    >>> print(format_summary(keras_resnets.mnist_resnet()).splitlines()[-1])
    total                                   117,802          1,600   90.33 M
    """
    stages = stage_table(model)
    macs = functools.reduce(_plus, (s["macs"] for s in stages), 0)
    return _format_table(stages, count_params(model), macs)


def plan_stage_table(plan):
    """`stage_table`'s rows from an `Architecture.plan` (no model built); output shapes are
    channels-last.

    Example:
    >>> from keras_resnets import presets
    >>> [row["name"] for row in plan_stage_table(presets.cifar_resnet(20).plan())]
    ['stem', 'stage1', 'stage2', 'stage3', 'head']
    """
    rows = []
    if plan.stem is not None:
        rows.append(_plan_row("stem", 0, plan.stem.output_size + (plan.stem.out_channels,),
                              plan.stem.cost))
    for number in sorted({b.stage for b in plan.blocks}):
        blocks = plan.stage(number)
        last = blocks[-1]
        rows.append(_plan_row(f"stage{number}", len(blocks),
                              last.output_size + (last.out_channels,), *[b.cost for b in blocks]))
    head = plan.head
    if head.cost.trainable or head.cost.non_trainable:
        size = () if head.pooling or head.classes else plan.blocks[-1].output_size
        rows.append(_plan_row("head", 0, size + (head.out_channels,), head.cost))
    return rows


def _plan_row(name, blocks, shape, *costs):
    return {"name": name, "blocks": blocks, "output_shape": tuple(shape),
            "trainable": sum(c.trainable for c in costs),
            "non_trainable": sum(c.non_trainable for c in costs),
            "macs": sum(c.macs for c in costs)}


def format_plan_summary(plan):
    """`format_summary` of the model an `Architecture.plan` describes, without building it.

    Example:
    >>> from keras_resnets import presets
    >>> print(format_plan_summary(presets.mnist_resnet().plan()).splitlines()[-1])
    total                                   117,802          1,600   90.33 M
    """
    return _format_table(plan_stage_table(plan), plan.count_params(), plan.macs())


def _format_table(rows, counts, macs):
    lines = [f"{'part':<10} {'blocks':>6} {'output':>16} {'trainable':>12} {'non-trainable':>14} {'MACs':>9}"]
    for row in rows:
        shape = "x".join(str(d) for d in row["output_shape"])
        lines.append(
            f"{row['name']:<10} {row['blocks'] or '':>6} {shape:>16} {row['trainable']:>12,} "
            f"{row['non_trainable']:>14,} {format_macs(row['macs']):>9}"
        )
    lines.append(
        f"{'total':<10} {'':>6} {'':>16} {counts['trainable']:>12,} "
        f"{counts['non_trainable']:>14,} {format_macs(macs):>9}"
    )
    return "\n".join(lines)


def format_macs(macs):
    """``1234567`` → ``'1.23 M'``; None (unknown) → ``'?'``."""
    if macs is None:
        return "?"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if macs >= scale:
            return f"{macs / scale:.2f} {unit}"
    return str(macs)
