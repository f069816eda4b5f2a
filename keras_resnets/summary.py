"""Parameter and cost reports, the way the lecture counts: trainable parameters (comparable
with PyTorch's ``sum(p.numel() for p in model.parameters())``) and non-trainable ones (batch
norm moving statistics, PyTorch's buffers) apart."""

import math
import re

import keras

_BLOCK_NAME = re.compile(r"stage(\d+)_block(\d+)")


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


def _macs(layer):
    """Multiply-adds per example of the convolutions and dense layers inside ``layer``."""
    total = 0
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        if not isinstance(sub, (keras.layers.Conv2D, keras.layers.Dense)) or not sub.built:
            continue
        shape = sub._build_shapes_dict.get("input_shape") if sub._build_shapes_dict else None
        if shape is None:
            continue
        out = sub.compute_output_shape(shape)
        kernel = math.prod(sub.kernel.shape)
        if isinstance(sub, keras.layers.Conv2D):
            spatial = out[2:] if sub.data_format == "channels_first" else out[1:-1]
            total += kernel * math.prod(spatial)
        else:
            total += kernel * math.prod(out[1:-1])
    return total


def parameter_table(model):
    """One row per layer that has weights or is a block, in order.

    Each row: ``name``, ``kind`` (class name), ``stage`` (0 for stem and head), ``block``,
    ``output_shape``, ``trainable``, ``non_trainable``, ``macs`` (multiply-adds per example).
    """
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        match = _BLOCK_NAME.fullmatch(layer.name)
        trainable = _sizes(layer.trainable_weights)
        non_trainable = _sizes(layer.non_trainable_weights)
        if not match and not trainable and not non_trainable:
            continue
        rows.append({
            "name": layer.name,
            "kind": type(layer).__name__,
            "stage": int(match.group(1)) if match else 0,
            "block": int(match.group(2)) if match else 0,
            "output_shape": tuple(layer.output.shape[1:]),
            "trainable": trainable,
            "non_trainable": non_trainable,
            "macs": _macs(layer),
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
            entry[field] += row[field]
    return list(stages.values())


def format_summary(model):
    """A plain-text table of `stage_table` with totals, for terminals.

    Example:
    >>> import keras_resnets
    >>> print(format_summary(keras_resnets.mnist_resnet()).splitlines()[-1])
    total                                   117,802          1,600   90.33 M
    """
    lines = [f"{'part':<10} {'blocks':>6} {'output':>16} {'trainable':>12} {'non-trainable':>14} {'MACs':>9}"]
    for row in stage_table(model):
        shape = "x".join(str(d) for d in row["output_shape"])
        lines.append(
            f"{row['name']:<10} {row['blocks'] or '':>6} {shape:>16} {row['trainable']:>12,} "
            f"{row['non_trainable']:>14,} {format_macs(row['macs']):>9}"
        )
    counts = count_params(model)
    macs = sum(r["macs"] for r in parameter_table(model))
    lines.append(
        f"{'total':<10} {'':>6} {'':>16} {counts['trainable']:>12,} "
        f"{counts['non_trainable']:>14,} {format_macs(macs):>9}"
    )
    return "\n".join(lines)


def format_macs(macs):
    """``1234567`` → ``'1.23 M'``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if macs >= scale:
            return f"{macs / scale:.2f} {unit}"
    return str(macs)
