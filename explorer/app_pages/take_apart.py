"""Take apart: delete blocks of a trained network at test time (Veit et al. 2016)."""

import json

import streamlit as st

from explorer import claims, dissect, models, runner, ui
from explorer.dissect import NETWORKS
from keras_resnets.experiments import lesions
from keras_resnets.runs.pretrained import load_pretrained
from keras_resnets.runs.records import RunConfig
from keras_resnets.training import TrainingRequest


@st.cache_resource(max_entries=6, show_spinner=False)
def load(source: str, stamp: float):
    """The model of a source: ``pretrained:<name>:<its file>`` or ``run:<path of its model.keras>``."""
    kind, _, name = source.partition(":")
    return load_pretrained(name.partition(":")[0]) if kind == "pretrained" else models.load_model(name)


@st.cache_data(max_entries=8, show_spinner=False)
def digits(config_json: str, limit: int):
    return lesions.held_out(RunConfig.from_dict(json.loads(config_json)), limit=limit)


@st.cache_data(max_entries=64, show_spinner=False)
def lesion_accuracy(source: str, stamp: float, config_json: str, limit: int, deleted: tuple) -> float:
    x, y = digits(config_json, limit)
    return lesions.lesion_accuracy(load(source, stamp), x, y, deleted)


@st.cache_data(max_entries=8, show_spinner=False)
def study(source: str, stamp: float, config_json: str, limit: int) -> dict:
    """`dissect.study` of a source, cached."""
    x, y = digits(config_json, limit)
    residual = RunConfig.from_dict(json.loads(config_json)).design().residual
    return dissect.study(load(source, stamp), x, y, residual)


def lesion_metrics(picked, limit, deleted):
    """The held-out accuracy of each network with the blocks ``deleted`` (0-based)."""
    for column, (key, (config, source, stamp)) in zip(st.columns(len(picked)), picked.items()):
        intact = lesion_accuracy(source, stamp, json.dumps(config.raw), limit, ())
        value = lesion_accuracy(source, stamp, json.dumps(config.raw), limit, tuple(deleted))
        column.metric(f"{NETWORKS[key]}: held-out accuracy", f"{value:.1%}",
                      delta=f"{(value - intact) * 100:+.1f} points" if deleted else None)


def show_studies(results):
    """The lesion studies ``results`` (by network) as charts, each beside the lecture's claim
    and whether it holds here."""
    one, several = dissect.lesion_charts(results)
    resnet, plain = results.get("resnet"), results.get("plain")
    for chart, claim, verdict in [
            (one, "lesion", resnet and claims.lesion_verdict(resnet, plain)),
            (several, "smooth", resnet and claims.smooth_verdict(resnet, plain))]:
        c1, c2 = st.columns([3, 2])
        c1.altair_chart(chart, width="stretch")
        c2.markdown(f"**The lecture:** {claims.CLAIMS[claim]}")
        if verdict:
            c2.markdown(f"**Here:** {verdict}")
    if resnet is None:
        return
    n = len(resnet["each"])
    c1, c2 = st.columns([3, 2])
    c1.altair_chart(dissect.path_chart(n, resnet["gradient"]), width="stretch")
    c2.markdown(f"**The lecture:** {claims.CLAIMS['paths']}")
    c2.markdown(f"**Here:** {claims.paths_verdict(resnet)}")
    c1, c2 = st.columns([3, 2])
    c1.altair_chart(dissect.ratio_chart(resnet["ratios"]), width="stretch")
    c2.markdown("**Per block:** the norm of what the block adds to the stream (its residual branch, after "
                "the block's ReLU) relative to the stream it receives, on 64 held-out digits. Small ratios "
                "are blocks a lesion barely notices.")


def page():
    st.title("Take a trained network apart")
    st.caption("Veit et al. (2016): delete blocks of a trained network at test time and see what is left. "
               "Accuracies are on held-out digits the network never trained on.")
    found = dissect.sources(runner.Runner(ui.runs_root()).runs())
    if not found:
        st.info("No network to take apart yet: train one on the Train page (the embedded digits), "
                "or rebuild the pretrained one with `python scripts/make_pretrained.py`.")
        return
    label = st.selectbox("Network", list(found), key="apart.source")
    config, status, source, stamp = found[label]
    problem = dissect.problem(config, status)
    if problem:
        st.warning(f"Cannot take this network apart: {problem}", icon=":material/warning:")
        return
    limit = int(st.number_input("Held-out digits", min_value=10, max_value=10_000, value=500, step=100,
                                key="apart.digits", help="The first of the digits the run held out "
                                                         "for validation, which it never trained on."))
    kind, picked = dissect.networks(label, found)
    try:
        with st.spinner("Loading the network(s) and the held-out digits…"):
            loaded = {key: load(s, t) for key, (_, s, t) in picked.items()}
            x, y = digits(json.dumps(config.raw), limit)
    except Exception as error:  # a damaged or foreign model must not break the page
        st.warning(f"Could not load this network: {type(error).__name__}: {error}", icon=":material/warning:")
        return
    try:
        n = len(lesions.blocks_of(loaded[kind]))
    except ValueError as error:  # blocks that change the stream's shape cannot be deleted
        st.warning(f"Cannot take this network apart: {error}", icon=":material/warning:")
        return
    epochs = TrainingRequest.from_config(config).recipe.epochs  # it reads: dissect.problem said so
    st.caption(f"{len(y):,} held-out digits · {n} blocks · "
               + f"trained {epochs} epoch{'s' if epochs != 1 else ''} · "
               + ("with its twin" if len(loaded) == 2 else "no twin of this run (residual flipped) in the store"))
    intact = lesion_accuracy(source, stamp, json.dumps(config.raw), limit, ())
    briefly = claims.training_warning(intact, epochs)
    if briefly:
        st.warning(briefly, icon=":material/hourglass_bottom:")
    if any(d > n for d in st.session_state.get("apart.deleted", [])):  # picked from a deeper network
        st.session_state["apart.deleted"] = []
    deleted = st.multiselect("Delete blocks", list(range(1, n + 1)), key="apart.deleted",
                             help="Each deleted block is replaced by the identity of its skip connection.")
    if len(deleted) == n:
        st.warning(f"Deleting all {n} blocks leaves no network to take apart: keep at least one.",
                   icon=":material/warning:")
    else:
        lesion_metrics(picked, limit, [d - 1 for d in deleted])
    st.subheader("The lesion study")
    stored = {key: c.get("lesions") for key, (c, _, _) in picked.items()}
    if all(stored.values()):
        st.caption(f"Measured by `scripts/make_pretrained.py` on all {stored[kind]['digits']:,} "
                   f"held-out digits, {stored[kind]['random']['samples']} random sets of blocks per k.")
        show_studies(stored)
        return
    study_digits = int(st.number_input("Digits for the lesion study", min_value=10, max_value=10_000,
                                       value=200, step=50, key="apart.study_digits",
                                       help="Each block is deleted in turn, and random sets of k "
                                            "blocks: about a minute for 25 blocks and 200 digits on 2 "
                                            "CPU cores."))
    if st.toggle("Run the lesion study: delete every block in turn, and random sets of blocks",
                 key="apart.study"):
        with st.spinner("Deleting blocks and following gradients…", show_time=True):
            show_studies({key: study(s, t, json.dumps(c.raw), min(study_digits, limit))
                          for key, (c, s, t) in picked.items()})


page()
