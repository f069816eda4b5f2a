"""Design: start from a preset, edit the description, see counts, tables and diagrams at once."""

import functools

import streamlit as st

from explorer import count_tables, designs, diagram, state, ui
from keras_resnets.design.anatomy import EXPANSION
from keras_resnets.design.choices import ACTIVATIONS, BLOCKS, DTYPE_POLICIES, STEMS
from keras_resnets.design.limits import limits
from keras_resnets.design.validation import MAX_SEED
from keras_resnets.models.summary import format_macs

SHORTCUT_HELP = {
    "A": "A · zero-pad: subsample and append zero channels (no weights)",
    "B": "B · project where the shape changes (1x1 conv)",
    "C": "C · project in every block",
}
POOLINGS = {"avg": "global average", "max": "global max", "flatten": "flatten", "none": "none"}
NONE = "none"  # selectboxes hold strings: None would read as "nothing selected"


def _none(value):
    return None if value == NONE else value


def _text(value):
    return NONE if value is None else value


bind = functools.partial(ui.bind, state.WIDGET_PREFIX)  # no settings kept: the design is the state


def on_preset():
    state.load_preset(st.session_state["start_from"])


def on_reset():
    state.load_preset(state.preset_id())
    st.session_state["start_from"] = state.preset_id()


def add_stage():
    state.set_design(designs.with_stage(state.design()))


def remove_stage(index):
    state.set_design(designs.without_stage(state.design(), index))


def editor(design):
    """Draws the widgets and returns ``(edited design, parse errors)``."""
    edited = state.design()
    block_fields(design, edited)
    stage_fields(design, edited)
    errors = input_output_fields(design, edited)
    stem_fields(design["stem"], edited)
    head_fields(design, edited)
    detail_fields(design, edited)
    return edited, errors


def block_fields(design, edited):
    """The widgets of the block: kind, activation, skips, shortcut, family and stochastic depth."""
    st.markdown("#### Blocks")
    c1, c2 = st.columns(2)
    with c1:
        edited["block"] = st.selectbox("Block kind", BLOCKS, key=bind("block", design["block"]),
                                       help="basic: two convolutions (ResBlock); bottleneck: 1x1, kxk, 1x1 "
                                            "(4x wider output); dense: for vector inputs; highway: gated layer.")
    with c2:
        edited["activation"] = st.selectbox("Activation", ACTIVATIONS, key=bind("activation", design["activation"]),
                                            help="crelu doubles the width; it needs a plain network.")
    edited["residual"] = st.toggle("Residual: skip connections", key=bind("residual", design["residual"]),
                                   help="Off builds the plain twin: the same layers without skip connections.")
    edited["preactivation"] = st.toggle("Pre-activation (He et al. 2016)",
                                        key=bind("preactivation", design["preactivation"]),
                                        help="bn → act → conv inside the branch, nothing after the sum.")
    edited["looks_linear"] = st.toggle("Looks-linear initialisation (CReLU only)",
                                       key=bind("looks_linear", design["looks_linear"]),
                                       help="Balduzzi et al. (2017): the network starts out linear.")
    edited["shortcut"] = st.radio("Shortcut (He et al. 2015)", list(SHORTCUT_HELP),
                                  format_func=SHORTCUT_HELP.get, key=bind("shortcut", design["shortcut"]),
                                  horizontal=False)
    family(design, edited)
    c1, c2 = st.columns([3, 2])
    with c1:
        edited["final_survival_probability"] = st.number_input(
            "Stochastic depth: survival of the last block p_L", min_value=0.0, max_value=1.0, step=0.05,
            key=bind("final_survival_probability", float(design["final_survival_probability"])),
            help="Huang et al. (2016): block l survives with p_l = 1 - l/L (1 - p_L). 1 disables it.")
    with c2:
        edited["drop_mode"] = st.radio("Drop", ["batch", "sample"], key=bind("drop_mode", design["drop_mode"]),
                                       horizontal=True,
                                       help="batch: one draw per mini-batch (the paper); sample: drop path.")


def stage_fields(design, edited):
    """The table of stages, one row of widgets each, with buttons to remove and add stages."""
    st.markdown("#### Stages")
    st.caption("Each stage is a run of blocks; its first block subsamples by the stride. "
               f"For bottleneck blocks the output is {EXPANSION}x channels wide; the inner width "
               "follows groups and width per group.")
    widths = [0.55, 1, 1.25, 0.9, 0.9, 0.55]
    # Bounds admit every value the description accepts (the validation and the limits say
    # no, inline): a widget that clamped a linked value would silently show another design.
    fields = (("blocks", "blocks", 1, limits().max_blocks, 1), ("channels", "channels", 1, None, 1),
              ("strides", "stride", 1, None, 1), ("kernel_size", "kernel", 1, limits().max_kernel_size, 2))
    for col, text in zip(st.columns(widths), ["\\#"] + [f[1] for f in fields] + [""]):  # "stage" wraps in its column
        col.caption(text)
    for i, stage in enumerate(design["stages"]):
        cols = st.columns(widths, vertical_alignment="center")
        cols[0].markdown(f"**{i + 1}**")
        values = {}
        for col, (field, label, low, high, step) in zip(cols[1:5], fields):
            with col:
                values[field] = st.number_input(f"Stage {i + 1} {label}", min_value=low, max_value=high, step=step,
                                                key=bind(f"stage{i}.{field}", int(stage[field])),
                                                label_visibility="collapsed")
        with cols[5]:
            st.button("", icon=":material/delete:", key=f"remove_stage{i}", on_click=remove_stage, args=(i,),
                      disabled=len(design["stages"]) == 1, help=f"Remove stage {i + 1}")
        edited["stages"][i] = values
    st.button("Add a stage", icon=":material/add:", on_click=add_stage, key="add_stage")


def input_output_fields(design, edited):
    """The widgets of the input shape and the classes; returns the input shape's parse errors."""
    errors = []
    st.markdown("#### Input and output")
    c1, c2 = st.columns(2)
    with c1:
        shape_text = st.text_input("Input shape", key=bind("input_shape", designs.format_shape(design["input_shape"])),
                                   help="height x width x channels (28x28x1, 32x32x3, 224x224x3), or a number "
                                        "of features for vectors (784).")
        try:
            edited["input_shape"] = designs.parse_shape(shape_text)
        except ValueError as error:
            errors.append(str(error))
    with c2:
        edited["classes"] = st.number_input("Classes", min_value=1,
                                            key=bind("classes", int(design["classes"])))
    return errors


def stem_fields(stem, edited):
    """The widgets of the stem, the layers before the blocks, in an expander."""
    with st.expander("Stem (before the blocks)"):
        new_stem = dict(stem)
        c1, c2, c3, c4 = st.columns(4)
        with c1:
            new_stem["kind"] = st.selectbox("Stem", STEMS, key=bind("stem.kind", stem["kind"]))
        with c2:
            new_stem["filters"] = st.number_input("Stem filters", min_value=1,
                                                  key=bind("stem.filters", int(stem["filters"])))
        with c3:
            new_stem["kernel_size"] = st.number_input("Stem kernel", min_value=1,
                                                      max_value=limits().max_kernel_size, step=2,
                                                      key=bind("stem.kernel_size", int(stem["kernel_size"])))
        with c4:
            new_stem["strides"] = st.number_input("Stem stride", min_value=1,
                                                  key=bind("stem.strides", int(stem["strides"])))
        c1, c2, c3, c4 = st.columns(4)
        for col, (field, label) in zip((c1, c2, c3, c4), (("use_bias", "bias"), ("batch_norm", "batch norm"),
                                                          ("activation", "activation"), ("pool", "3x3/2 max pool"))):
            with col:
                new_stem[field] = st.checkbox(f"Stem {label}", key=bind(f"stem.{field}", bool(stem[field])))
        edited["stem"] = new_stem


def head_fields(design, edited):
    """The widgets of the head, the layers after the blocks, in an expander."""
    with st.expander("Head (after the blocks)"):
        c1, c2 = st.columns(2)
        with c1:
            edited["pooling"] = _none(st.selectbox("Pooling", list(POOLINGS), format_func=POOLINGS.get,
                                                   key=bind("pooling", _text(design["pooling"]))))
            edited["pool_activation"] = st.checkbox("Activation after pooling (the lecture's relu(avg(x)))",
                                                    key=bind("pool_activation", design["pool_activation"]))
        with c2:
            edited["classifier_activation"] = _none(st.selectbox(
                "Classifier output", [NONE, "softmax"], format_func=lambda v: "logits" if v == NONE else v,
                key=bind("classifier_activation", _text(design["classifier_activation"]))))
            edited["include_top"] = st.checkbox("Include the classifier", key=bind("include_top", design["include_top"]))


def detail_fields(design, edited):
    """The widgets of the remaining fields (batch norm, biases, gate bias, name, seed, data format,
    precision), in an expander."""
    with st.expander("Details"):
        c1, c2, c3 = st.columns(3)
        with c1:
            edited["batch_norm"] = st.checkbox("Batch norm in blocks", key=bind("batch_norm", design["batch_norm"]))
            edited["use_bias"] = st.checkbox("Biases in blocks", key=bind("use_bias", design["use_bias"]))
            edited["zero_init_last_bn"] = st.checkbox("Zero-init last BN of each branch",
                                                      key=bind("zero_init_last_bn", design["zero_init_last_bn"]))
        with c2:
            edited["bn_momentum"] = st.number_input("BN momentum", min_value=0.0, max_value=1.0, step=0.01,
                                                    format="%.3f", key=bind("bn_momentum", float(design["bn_momentum"])))
            edited["bn_epsilon"] = st.number_input("BN epsilon", min_value=0.0, max_value=1.0, step=1e-5, format="%.1e",
                                                   key=bind("bn_epsilon", float(design["bn_epsilon"])))
            edited["transform_gate_bias"] = st.number_input(
                "Highway gate bias", min_value=-100.0, max_value=100.0, step=0.5,
                key=bind("transform_gate_bias", float(design["transform_gate_bias"])))
        with c3:
            automatic = designs.auto_name(design, state.preset_id())
            typed = st.text_input("Model name", key=bind("name", "" if design["name"] == automatic else design["name"]),
                                  max_chars=64, placeholder=automatic,
                                  help="Empty: named by what changed from the preset, on every page and in "
                                       "the runs it trains.")
            edited["name"] = typed.strip() or designs.auto_name(edited, state.preset_id())
            edited["seed"] = st.number_input("Stochastic-depth seed", min_value=0, max_value=MAX_SEED, value=None,
                                             placeholder="none", key=bind("seed", design["seed"]))
            edited["data_format"] = _none(st.selectbox(
                "Data format", [NONE, "channels_last", "channels_first"],
                format_func=lambda v: "Keras default" if v == NONE else v,
                key=bind("data_format", _text(design["data_format"]))))
            edited["dtype_policy"] = _none(st.selectbox(
                "Precision", [NONE, *DTYPE_POLICIES[1:]],
                format_func=lambda v: "automatic" if v == NONE else v,
                key=bind("dtype_policy", _text(design["dtype_policy"])),
                help="The Keras dtype policy the model computes in; weights stay float32. "
                     "Automatic: bfloat16 on CPUs with AMX or AVX-512 BF16 (TensorFlow, PyTorch), "
                     "else float32."))


def family(design, edited):
    """The widgets of the ResNet family's fields: cardinality, widths, dropout, ResNet-D."""
    c1, c2, c3 = st.columns(3)
    with c1:
        edited["groups"] = st.number_input(
            "Groups (cardinality)", min_value=1, max_value=1024, key=bind("groups", int(design["groups"])),
            help="ResNeXt (Xie et al. 2017): groups of the bottleneck's kxk convolution.")
    with c2:
        edited["width_per_group"] = st.number_input(
            "Width per group", min_value=1, max_value=4096,
            key=bind("width_per_group", int(design["width_per_group"])),
            help="Bottleneck inner width = int(channels x width_per_group / 64) x groups "
                 "(64: ResNet; 4 with 32 groups: ResNeXt-50 32x4d; 128: Wide ResNet-50-2).")
    with c3:
        edited["dropout"] = st.number_input(
            "Dropout in blocks", min_value=0.0, max_value=0.95, step=0.05, format="%.2f",
            key=bind("dropout", float(design["dropout"])),
            help="Wide ResNet (Zagoruyko & Komodakis 2016): dropout between a block's convolutions.")
    c1, c2 = st.columns(2)
    with c1:
        edited["avg_down"] = st.checkbox(
            "ResNet-D", key=bind("avg_down", design["avg_down"]),
            help="He et al. (2019): a strided projection averages 2x2 windows (avg-pool downsampling), "
                 "then a 1x1 conv.")
    with c2:
        edited["shortcut_batch_norm"] = st.checkbox(
            "BN in projections", key=bind("shortcut_batch_norm", design["shortcut_batch_norm"]),
            help="Batch norm after each projection shortcut's 1x1 conv; Wide ResNet's projections have none.")


NUMBERS = {"trainable": st.column_config.NumberColumn(format="localized"),
           "non-trainable": st.column_config.NumberColumn(format="localized")}


def counts_row(architecture):
    """The parameter counts, full width; returns the summary or ``None``."""
    st.caption(f"Estimated from the description before building: {designs.estimate_text(architecture)}.")
    try:
        summary, seconds = ui.summary_of(architecture)
    except Exception as error:  # the description validated, so this is a library problem: say it plainly
        st.error(f"Could not build this design: {type(error).__name__}: {error}", icon=":material/error:")
        return None
    counts = summary["counts"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Trainable parameters", f"{counts['trainable']:,}", border=True)
    c2.metric("Non-trainable", f"{counts['non_trainable']:,}", border=True,
              help="Batch-norm moving means and variances (PyTorch's buffers).")
    c3.metric("Total parameters", f"{counts['total']:,}", border=True)
    c4.metric("Multiply-adds / image", format_macs(summary["macs"]), border=True,
              help="Convolutions and dense layers, one image, inference.")
    kind = "residual" if architecture.residual else "plain"
    st.caption(f"`{architecture.name}`: {kind}, {summary['depth']} weighted layers, {summary['num_blocks']} blocks, "
               f"output {designs.shape_text(summary['output_shape'])}. Built on {ui.backend_name()} "
               f"in {seconds:.1f} s (cached afterwards).")
    return summary


def results(architecture, summary):
    diagrams, stages, layers = st.tabs(["Diagrams", "Stages", "Layers"])
    with diagrams:
        column, block = st.columns([1, 1], gap="medium")
        with column:
            expand = st.toggle("One box per layer", value=architecture.num_blocks <= diagram.EXPAND_LIMIT,
                               key="expand_network",
                               help="Like Figure 3 of He et al. (2015); off collapses each stage into one box.")
            st.graphviz_chart(diagram.network_dot(architecture, expand=expand), width="content")
        with block:
            stage_index = st.selectbox("Block picture of", range(len(architecture.stages)),
                                       format_func=lambda i: f"stage {i + 1}", key="block_stage")
            first = st.toggle("its first block", value=True, key="block_first",
                              help="The first block of a stage changes the shape (stride, width); "
                                   "off shows a later block.")
            st.graphviz_chart(diagram.block_dot(architecture, stage_index, first), width="content")
    with stages:
        st.dataframe(count_tables.stage_frame(summary), hide_index=True, column_config=NUMBERS, width="stretch",
                     placeholder="—")
    with layers:
        st.dataframe(count_tables.layer_frame(summary), hide_index=True, column_config=NUMBERS, width="stretch",
                     height=420, placeholder="—")


def page():
    st.title("Design a residual network")
    if "start_from" not in st.session_state:
        st.session_state["start_from"] = state.preset_id()
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    with c1:
        st.selectbox("Start from", list(designs.PRESET_CHOICES), key="start_from", on_change=on_preset,
                     format_func=lambda p: designs.PRESET_CHOICES[p].label)
    name_line = st.empty()
    with c2:
        st.button("Reset", icon=":material/restart_alt:", on_click=on_reset, key="reset_design",
                  help="Back to the preset, dropping your changes.")

    design = state.design()
    top = st.container()
    left, right = st.columns([2, 3], gap="large")
    with left:
        edited, errors = editor(design)
    state.store_design(edited)
    start = designs.preset_design(state.preset_id())["name"]
    name_line.markdown(f"**Design:** `{edited['name']}`" + (f" (started from `{start}`)" if edited["name"] != start
                                                             else ""))
    with top:
        if errors:
            for error in errors:
                st.error(f"**The design is not valid:** {error}", icon=":material/error:")
            return
        architecture = ui.checked_architecture()
        summary = counts_row(architecture) if architecture is not None else None
    if summary is not None:
        with right:
            results(architecture, summary)


page()
