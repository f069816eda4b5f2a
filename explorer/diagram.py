"""Graphviz DOT pictures of a design, drawn from the `Architecture` alone (no model needed):
each block as its plan's `keras_resnets.design.anatomy.Anatomy` says.

- `block_dot`: the lecture's block picture, ``x → conv1 → bn1 → relu → conv2 → bn2 → + → relu``
  with the skip arrow, and its variants (pre-activation, bottleneck, dense, highway, plain,
  stochastic depth, projection shortcuts).
- `network_dot`: the whole network as a column like Figure 3 of He et al. (2015): one box per
  convolution with skip arcs, or, for deep networks, one box per stage
  (``stage2: 4 x [3x3 conv 128, 3x3 conv 128], /2``).

`st.graphviz_chart` renders the text in the browser, offline.
"""

from __future__ import annotations

from keras_resnets import Architecture

_FONT = 'fontname="Helvetica,Arial,sans-serif"'
_COLORS = {
    "conv": "#fde9c9",  # linear layers: warm
    "bn": "#dbeafe",
    "act": "#dcfce7",
    "io": "#f3f4f6",
    "sum": "#ffffff",
    "gate": "#fce7f3",
    "drop": "#ede9fe",
    "head": "#e5e7eb",
    "short": "#fff7ed",
}
EXPAND_LIMIT = 20
"""Networks with at most this many blocks are drawn one box per layer by default."""


def _q(text) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _node(name, label, kind, shape="box", extra=""):
    style = 'style=""' if shape == "plaintext" else f'style="rounded,filled", fillcolor="{_COLORS[kind]}"'
    return f'  {name} [label={_q(label)}, shape={shape}, {style}{", " + extra if extra else ""}];'


def _act_name(activation):
    return {"relu": "ReLU", "crelu": "CReLU", "elu": "ELU", "gelu": "GELU", "swish": "swish",
            "tanh": "tanh", "linear": "linear"}.get(activation, activation)


def _spec(arch, stage_index, first):
    """The `BlockSpec` of the first or a later block of stage ``stage_index`` (0-based)."""
    blocks = arch.plan().stage(stage_index + 1)
    return blocks[0 if first else min(1, len(blocks) - 1)]


def _conv_text(filters, kernel_size, strides, groups):
    text = f"{kernel_size}x{kernel_size} conv, {filters}"
    if groups != 1:
        text += f", {groups} groups"
    return text + (f", /{strides}" if strides != 1 else "")


def _linear_text(arch, layer, strides=None):
    """A convolution of a block's anatomy (a dense layer on vectors); ``strides`` overrides its
    own."""
    if len(arch.input_shape) == 1:
        return f"dense, {layer.filters}"
    strides = layer.strides if strides is None else strides
    return _conv_text(layer.filters, layer.kernel_size, strides, layer.groups)


def _layer_node(arch, layer, conv_symbol=None):
    """``(label, kind)`` of the node of a `keras_resnets.design.anatomy.Layer` of a branch; a
    convolution is labelled with its name, or ``conv_symbol`` (a highway layer's ``H``)."""
    if layer.kind == "conv":
        text = _linear_text(arch, layer)
        return (f"{conv_symbol}: {text}" if conv_symbol else f"{layer.name}\n{text}"), "conv"
    if layer.kind == "norm":
        return layer.name, "bn"
    if layer.kind == "act":
        return _act_name(layer.activation), "act"
    return f"dropout {layer.rate:g}", "drop"


def _shortcut_label(arch, anatomy):
    """The shortcut's box: option A's subsampling and padding, or the projection's layers."""
    lines = [f"option {arch.shortcut}"]
    for layer in anatomy.shortcut:
        if layer.kind == "zero_pad":
            keep = [f"keep 1 in {layer.strides}"] if layer.strides != 1 else []
            lines.append(", ".join([*keep, f"zero-pad to {layer.filters}"]))
        elif layer.kind == "pool":
            lines.append(f"{layer.kernel_size}x{layer.kernel_size} avg pool, /{layer.strides}")
        elif layer.kind == "conv":
            lines.append(_linear_text(arch, layer))
        else:
            lines[-1] += f" + {layer.name}"
    return "\n".join(lines)


def block_dot(arch: Architecture, stage_index: int = 0, first: bool = True) -> str:
    """The picture of one block, from its anatomy: block 1 of stage ``stage_index + 1`` when
    ``first``, else a later block of that stage."""
    stage_index = max(0, min(stage_index, len(arch.stages) - 1))
    stage = arch.stages[stage_index]
    block_number = 1 if first else min(2, stage.blocks)
    title = f"stage{stage_index + 1}, block {block_number}"
    lines = ["digraph block {", "  rankdir=TB; nodesep=0.5; ranksep=0.18;",
             f"  node [{_FONT}, fontsize=11, width=1.7, margin=\"0.08,0.03\"]; edge [{_FONT}, fontsize=10, arrowsize=0.6];",
             f"  label={_q(title)}; labelloc=t; fontsize=12; {_FONT};",
             _node("x", "x", "io", shape="plaintext")]
    spec = _spec(arch, stage_index, first)
    if arch.block == "highway":
        return _highway_block(arch, spec.anatomy, lines)
    previous = _draw_branch(arch, spec.anatomy.branch, lines)
    if spec.anatomy.shortcut is not None:
        previous = _draw_merge(arch, spec, previous, lines)
    for i, layer in enumerate(spec.anatomy.post):
        lines.append(_node(f"post{i}", _act_name(layer.activation), "act"))
        lines.append(f"  {previous} -> post{i};")
        previous = f"post{i}"
    lines.append(_node("y", "y", "io", shape="plaintext"))
    lines.append(f"  {previous} -> y;")
    lines.append("}")
    return "\n".join(line for line in lines if line)


def _draw_branch(arch, branch, lines, conv_symbol=None):
    """Appends the branch's nodes ``l0, l1, ...`` from ``x``; returns the last one's name."""
    previous = "x"
    for i, layer in enumerate(branch):
        lines.append(_node(f"l{i}", *_layer_node(arch, layer, conv_symbol)))
        lines.append(f"  {previous} -> l{i};")
        previous = f"l{i}"
    return previous


def _draw_merge(arch, spec, previous, lines):
    """Appends stochastic depth, the sum and the shortcut after node ``previous``; returns the
    sum's name."""
    p = spec.survival_probability
    if p < 1.0:
        mode = "one draw per batch" if arch.drop_mode == "batch" else "one draw per example"
        lines.append(_node("drop", f"keep with\np_l = {p:.2f}\n({mode})", "drop"))
        lines.append(f"  {previous} -> drop;")
        previous = "drop"
    lines.append(_node("sum", "+", "sum", shape="circle", extra="width=0.35, fixedsize=true, fontsize=16"))
    lines.append(f"  {previous} -> sum;")
    anatomy = spec.anatomy
    if anatomy.shortcut:
        lines.append(_node("short", _shortcut_label(arch, anatomy), "short"))
        # x̂: what the first convolution sees, σ(BN(x)) in pre-activation (He et al. 2016)
        source = f"l{anatomy.shares - 1}" if anatomy.shares else "x"
        lines.append(f"  {source} -> short [color=\"#b45309\"];")
        lines.append("  short -> sum [color=\"#b45309\"];")
        lines.append("  { rank=same; short; l1; }" if len(anatomy.branch) > 1 else "")
    else:
        lines.append('  x:e -> sum:e [constraint=false, color="#b45309", penwidth=1.6, label="  identity"];')
    return "sum"


def _highway_block(arch, anatomy, lines):
    previous = _draw_branch(arch, anatomy.branch, lines, conv_symbol="H")
    if not anatomy.gate:
        lines.append(_node("y", "y = H(x)", "io", shape="plaintext"))
        lines.append(f"  {previous} -> y;")
        lines.append("}")
        return "\n".join(lines)
    (gate,) = anatomy.gate
    lines.append(_node("t", f"T: {_linear_text(arch, gate)}\nsigmoid, bias {arch.transform_gate_bias:g}", "gate"))
    lines.append("  x -> t;")
    lines.append(_node("mul", "×", "sum", shape="circle", extra="width=0.35, fixedsize=true"))
    lines.append(_node("carry", "(1 - T) · x", "gate"))
    lines.append(f"  {previous} -> mul; t -> mul [label=\"T\"]; t -> carry; x -> carry [constraint=false];")
    lines.append(_node("sum", "+", "sum", shape="circle", extra="width=0.35, fixedsize=true, fontsize=16"))
    lines.append("  mul -> sum; carry -> sum;")
    lines.append(_node("y", "y = T·H(x) + (1 - T)·x", "io", shape="plaintext"))
    lines.append("  sum -> y;")
    lines.append("}")
    return "\n".join(lines)


# -- the whole network ---------------------------------------------------------------------------
def _stem_layers(arch):
    stem, spec = arch.stem, arch.plan().stem
    if spec is None:
        return []
    if stem.kind == "dense":
        layers = [f"dense, {stem.filters}"]
    else:
        layers = [_conv_text(*conv, 1) for conv in spec.convs]
        between = " + ".join((["bn"] if stem.batch_norm else []) + [_act_name(arch.activation)])
        layers = [f"{text}\n+ {between}" for text in layers[:-1]] + layers[-1:]
    extras = []
    if stem.batch_norm:
        extras.append("bn")
    if stem.activation:
        extras.append(_act_name(arch.activation))
    if extras:
        layers[-1] += "\n+ " + " + ".join(extras)
    if stem.pool:
        layers.append("3x3 max pool, /2")
    return layers


def _head_layers(arch):
    out = []
    if arch.pooling:
        name = {"avg": "avg pool", "max": "max pool", "flatten": "flatten"}[arch.pooling]
        if arch.pool_activation:
            name += f" + {_act_name(arch.activation)}"
        out.append(name)
    if arch.include_top:
        out.append(f"fc {arch.classes}" + (", softmax" if arch.classifier_activation == "softmax" else ""))
    return out


def _stage_summary(arch, stage_index):
    stage = arch.stages[stage_index]
    k = stage.kernel_size
    if arch.block == "highway":
        inner = [f"{k}x{k} highway {stage.channels}"]
    else:  # the convolutions of a block that keeps the size
        inner = [_linear_text(arch, conv, strides=1).replace(",", "", 1)
                 for conv in arch.plan().stage(stage_index + 1)[-1].anatomy.convs]
    text = f"stage{stage_index + 1}: {stage.blocks} x [{', '.join(inner)}]"
    if stage.strides != 1:
        text += f", /{stage.strides}"
    return text


def _shape_text(size, channels):
    return "x".join(str(d) for d in (*size, channels))


def network_dot(arch: Architecture, expand: bool | None = None) -> str:
    """The network as a top-to-bottom column; ``expand`` draws every layer (default: when the
    network has at most `EXPAND_LIMIT` blocks)."""
    if expand is None:
        expand = arch.num_blocks <= EXPAND_LIMIT
    lines = ["digraph network {", "  rankdir=TB; nodesep=0.3; ranksep=0.22;",
             f"  node [{_FONT}, fontsize=11, width=2.6, margin=\"0.1,0.04\"]; edge [{_FONT}, fontsize=9, arrowsize=0.6];"]
    input_text = "image " + "x".join(str(s) for s in arch.input_shape) if len(arch.input_shape) == 3 \
        else f"input, {arch.input_shape[0]} features"
    lines.append(_node("input", input_text, "io", shape="plaintext"))
    previous = "input"
    counter = [0]

    def add(label, kind, edge_label=None, shape="box"):
        counter[0] += 1
        name = f"n{counter[0]}"
        lines.append(_node(name, label, kind, shape=shape))
        attrs = f' [label={_q("  " + edge_label)}, fontcolor="#6b7280"]' if edge_label else ""
        lines.append(f"  {previous} -> {name}{attrs};")
        return name

    plan = arch.plan()
    for label in _stem_layers(arch):
        previous = add(label, "conv")
    current_shape = _shape_text(plan.blocks[0].input_size, plan.blocks[0].in_channels)
    for s, stage in enumerate(arch.stages):
        last = plan.stage(s + 1)[-1]
        out_shape = _shape_text(last.output_size, last.out_channels)
        if not expand:
            skip = "" if arch.residual else " (plain)"
            previous = add(_stage_summary(arch, s) + skip, "conv", edge_label=current_shape)
            current_shape = out_shape
            continue
        for b, spec in enumerate(plan.stage(s + 1)):
            block_input = previous
            if arch.block == "highway":
                previous = add(f"{stage.kernel_size}x{stage.kernel_size} highway, {stage.channels}",
                               "gate" if arch.residual else "conv")
                continue
            for c, conv in enumerate(spec.anatomy.convs):
                previous = add(_linear_text(arch, conv), "conv",
                               edge_label=current_shape if (b == 0 and c == 0) else None)
            if spec.anatomy.shortcut is not None:
                projection = bool(spec.anatomy.shortcut)
                style = 'style=dashed, color="#b45309"' if projection else 'color="#b45309"'
                p = spec.survival_probability
                label = f', xlabel="p={p:.2f}"' if p < 1.0 else ""
                lines.append(f"  {block_input}:e -> {previous}:e [{style}, constraint=false{label}];")
        current_shape = out_shape
    for i, label in enumerate(_head_layers(arch)):
        previous = add(label, "head", edge_label=current_shape if i == 0 else None)
        if i == 0 and arch.pooling in ("avg", "max"):
            current_shape = str(plan.blocks[-1].out_channels)
    lines.append("}")
    return "\n".join(lines)
