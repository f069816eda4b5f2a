"""Graphviz DOT pictures of a design, drawn from the `Architecture` alone (no model needed).

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
from keras_resnets.design.plan import branch_specs

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


def _act_name(arch):
    return {"relu": "ReLU", "crelu": "CReLU", "elu": "ELU", "gelu": "GELU", "swish": "swish",
            "tanh": "tanh", "linear": "linear"}.get(arch.activation, arch.activation)


def _spec(arch, stage_index, first):
    """The `BlockSpec` of the first or a later block of stage ``stage_index`` (0-based)."""
    blocks = arch.plan().stage(stage_index + 1)
    return blocks[0 if first else min(1, len(blocks) - 1)]


def _conv_text(filters, kernel_size, strides, groups):
    text = f"{kernel_size}x{kernel_size} conv, {filters}"
    if groups != 1:
        text += f", {groups} groups"
    return text + (f", /{strides}" if strides != 1 else "")


def _branch_layers(arch, stage, first):
    """``[(kind, label), ...]`` of a residual branch, in order."""
    strides = stage.strides if first else 1
    specs = branch_specs(arch, stage, strides)
    if arch.block == "dense" or len(arch.input_shape) == 1:
        linears = [f"dense, {filters}" for filters, *_ in specs]
    else:
        linears = [_conv_text(*spec) for spec in specs]
    act = _act_name(arch)
    layers = []
    n = len(linears)
    for i, text in enumerate(linears, start=1):
        if arch.preactivation:
            if arch.batch_norm:
                layers.append(("bn", f"bn{i}"))
            layers.append(("act", act))
        if i == 2 and arch.dropout > 0:
            layers.append(("drop", f"dropout {arch.dropout:g}"))
        layers.append(("conv", f"conv{i}\n{text}"))
        if not arch.preactivation:
            if arch.batch_norm:
                layers.append(("bn", f"bn{i}"))
            if i < n:
                layers.append(("act", act))
    return layers


def _needs_projection(arch, stage_index, first):
    """Whether the block has a shortcut layer (a projection or option A's zero padding)."""
    return _spec(arch, stage_index, first).shortcut in ("A", "projection")


def _shortcut_label(arch, stage_index):
    spec = _spec(arch, stage_index, True)
    strides, out = spec.strides, spec.out_channels
    if arch.shortcut == "A":
        parts = []
        if strides != 1:
            parts.append(f"keep 1 in {strides}")
        parts.append(f"zero-pad to {out}")
        return "option A\n" + ", ".join(parts)
    bn = " + bn" if arch.batch_norm and arch.shortcut_batch_norm else ""
    if spec.avg_down:
        return f"option {arch.shortcut}\n{strides}x{strides} avg pool, /{strides}\n1x1 conv, {out}{bn}"
    stride_text = f", /{strides}" if strides != 1 else ""
    return f"option {arch.shortcut}\n1x1 conv, {out}{stride_text}{bn}"


def block_dot(arch: Architecture, stage_index: int = 0, first: bool = True) -> str:
    """The picture of one block: block 1 of stage ``stage_index + 1`` when ``first``, else a
    later block of that stage."""
    stage_index = max(0, min(stage_index, len(arch.stages) - 1))
    stage = arch.stages[stage_index]
    block_number = 1 if first else min(2, stage.blocks)
    title = f"stage{stage_index + 1}, block {block_number}"
    lines = ["digraph block {", "  rankdir=TB; nodesep=0.5; ranksep=0.18;",
             f"  node [{_FONT}, fontsize=11, width=1.7, margin=\"0.08,0.03\"]; edge [{_FONT}, fontsize=10, arrowsize=0.6];",
             f"  label={_q(title)}; labelloc=t; fontsize=12; {_FONT};",
             _node("x", "x", "io", shape="plaintext")]
    if arch.block == "highway":
        return _highway_block(arch, stage, lines)
    layers = _branch_layers(arch, stage, first)
    previous = "x"
    for i, (kind, label) in enumerate(layers):
        name = f"l{i}"
        lines.append(_node(name, label, kind))
        lines.append(f"  {previous} -> {name};")
        previous = name
    p = _spec(arch, stage_index, first).survival_probability
    if arch.residual and p < 1.0:
        mode = "one draw per batch" if arch.drop_mode == "batch" else "one draw per example"
        lines.append(_node("drop", f"keep with\np_l = {p:.2f}\n({mode})", "drop"))
        lines.append(f"  {previous} -> drop;")
        previous = "drop"
    if arch.residual:
        lines.append(_node("sum", "+", "sum", shape="circle", extra="width=0.35, fixedsize=true, fontsize=16"))
        lines.append(f"  {previous} -> sum;")
        if _needs_projection(arch, stage_index, first):
            lines.append(_node("short", _shortcut_label(arch, stage_index), "short"))
            source = "x"
            if arch.preactivation and arch.shortcut != "A":
                # He et al. (2016): a projection sees the pre-activated input
                source = next((f"l{i}" for i, (kind, _) in enumerate(layers) if kind == "act"), "x")
            lines.append(f"  {source} -> short [color=\"#b45309\"];")
            lines.append("  short -> sum [color=\"#b45309\"];")
            lines.append("  { rank=same; short; l1; }" if len(layers) > 1 else "")
        else:
            lines.append('  x:e -> sum:e [constraint=false, color="#b45309", penwidth=1.6, label="  identity"];')
        previous = "sum"
    if not arch.preactivation:
        lines.append(_node("post", _act_name(arch), "act"))
        lines.append(f"  {previous} -> post;")
        previous = "post"
    lines.append(_node("y", "y", "io", shape="plaintext"))
    lines.append(f"  {previous} -> y;")
    lines.append("}")
    return "\n".join(line for line in lines if line)


def _highway_block(arch, stage, lines):
    k = stage.kernel_size
    vectors = len(arch.input_shape) == 1
    linear = f"dense, {stage.channels}" if vectors else f"{k}x{k} conv, {stage.channels}"
    lines.append(_node("h", f"H: {linear}", "conv"))
    lines.append("  x -> h;")
    previous = "h"
    if arch.batch_norm:
        lines.append(_node("bn", "bn", "bn"))
        lines.append(f"  {previous} -> bn;")
        previous = "bn"
    lines.append(_node("act", _act_name(arch), "act"))
    lines.append(f"  {previous} -> act;")
    if not arch.residual:
        lines.append(_node("y", "y = H(x)", "io", shape="plaintext"))
        lines.append("  act -> y;")
        lines.append("}")
        return "\n".join(lines)
    lines.append(_node("t", f"T: {linear}\nsigmoid, bias {arch.transform_gate_bias:g}", "gate"))
    lines.append("  x -> t;")
    lines.append(_node("mul", "×", "sum", shape="circle", extra="width=0.35, fixedsize=true"))
    lines.append(_node("carry", "(1 - T) · x", "gate"))
    lines.append("  act -> mul; t -> mul [label=\"T\"]; t -> carry; x -> carry [constraint=false];")
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
        between = " + ".join((["bn"] if stem.batch_norm else []) + [_act_name(arch)])
        layers = [f"{text}\n+ {between}" for text in layers[:-1]] + layers[-1:]
    extras = []
    if stem.batch_norm:
        extras.append("bn")
    if stem.activation:
        extras.append(_act_name(arch))
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
            name += f" + {_act_name(arch)}"
        out.append(name)
    if arch.include_top:
        out.append(f"fc {arch.classes}" + (", softmax" if arch.classifier_activation == "softmax" else ""))
    return out


def _stage_summary(arch, stage_index):
    stage = arch.stages[stage_index]
    k = stage.kernel_size
    if arch.block == "highway":
        inner = [f"{k}x{k} highway {stage.channels}"]
    elif arch.block == "dense" or len(arch.input_shape) == 1:
        inner = [f"dense {stage.channels}"] * 2
    else:
        inner = [_conv_text(filters, k, 1, groups).replace(",", "", 1)
                 for filters, k, _, groups in branch_specs(arch, stage, 1)]
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
            first = b == 0
            block_input = previous
            if arch.block == "highway":
                previous = add(f"{stage.kernel_size}x{stage.kernel_size} highway, {stage.channels}",
                               "gate" if arch.residual else "conv")
                continue
            convs = [label.split("\n", 1)[1] for kind, label in _branch_layers(arch, stage, first) if kind == "conv"]
            for c, text in enumerate(convs):
                previous = add(text, "conv", edge_label=current_shape if (b == 0 and c == 0) else None)
            if arch.residual:
                projection = _needs_projection(arch, s, first)
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
