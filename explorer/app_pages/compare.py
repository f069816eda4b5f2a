"""Compare: overlay the learning curves of several runs and tabulate what differs."""

import pandas as pd
import streamlit as st

from explorer import charts, runner, state, ui
from explorer.runner import BACKENDS
from keras_resnets import Architecture


def describe(run) -> str:
    """A short label: the design's name and what sets it apart (plain, option, p_L...)."""
    try:
        return _describe(run)
    except ui.READ_ERRORS:
        return f"damaged run ({run.id[-4:]})"


def _describe(run) -> str:
    if run.damage is not None:
        return f"damaged run ({run.id[-4:]})"
    arch = (run.config.get("architecture") or {})
    parts = [arch.get("name", "?")]
    if arch.get("residual") is False:
        parts.append("plain")
    if arch.get("shortcut"):
        parts.append(f"option {arch['shortcut']}")
    if arch.get("final_survival_probability", 1.0) < 1.0:
        parts.append(f"p_L={arch['final_survival_probability']:g}")
    if arch.get("preactivation"):
        parts.append("pre-act")
    parts.append(BACKENDS.get(run.config.get("backend"), run.config.get("backend", "?")))
    return f"{' · '.join(parts)} ({run.id[-4:]})"


@st.cache_data(max_entries=256, show_spinner=False)
def parameters(architecture_json: str):
    from explorer import models

    try:
        return models.summarize(architecture_json)["counts"]["trainable"]
    except Exception:
        return None


def row(run):
    error = None
    if run.damage is None:
        try:
            return _row(run)
        except ui.READ_ERRORS as caught:
            error = caught
    return {"run": describe(run), "state": f"damaged: {ui.damage_of(run, error)}", "id": run.id}


def _row(run):
    config = run.config
    status = run.status
    events = run.metrics()
    epochs = [e for e in events if e.get("event") == "epoch"]
    best = max((e["val_accuracy"] for e in epochs if e.get("val_accuracy") is not None), default=None)
    seconds = [e["seconds"] for e in epochs if e.get("seconds")]
    try:
        arch = Architecture.from_dict(config.get("architecture") or {})
        params = parameters(arch.to_json())
        depth = arch.depth
    except (TypeError, ValueError):
        params, depth = None, None
    recipe = config.get("recipe") or {}
    dataset = config.get("dataset") or {}
    return {
        "run": _describe(run),
        "parameters": params,
        "best val. accuracy": best,
        "time per epoch (s)": sum(seconds) / len(seconds) if seconds else None,
        "backend": BACKENDS.get(config.get("backend"), config.get("backend")),
        "final train loss": epochs[-1].get("loss") if epochs else None,
        "depth": depth,
        "state": status.get("state"),
        "epochs": f"{status.get('epoch', 0)}/{status.get('epochs', recipe.get('epochs', '?'))}",
        "dataset": dataset.get("name"),
        "images": dataset.get("subset") or "all",
        "optimizer": f"{recipe.get('optimizer', '?')} {recipe.get('learning_rate', '')}",
        "id": run.id,
    }


def open_design():
    run_id = st.session_state.get("compare.open")
    try:
        run = runner.Runner(ui.runs_root()).get(run_id)
        design = Architecture.from_dict(run.config["architecture"]).to_dict()
    except (ValueError, KeyError, TypeError) as error:
        st.toast(f"Could not open that design: {error}")
        return
    state.set_design(design)
    st.session_state.pop("start_from", None)
    st.toast(f"Opened the design of {run_id} on the Design page.", icon=":material/architecture:")


def curves_and_table(selected, batches, polling):
    """The overlaid curves and the table; refreshed every few seconds while a run trains."""

    @st.fragment(run_every=3.0 if polling else None)
    def show():
        by_id = {run.id: run for run in runner.Runner(ui.runs_root()).runs()}
        runs = [by_id[run_id] for run_id in selected if run_id in by_id]
        frames = []
        for run in runs:
            try:
                frames.append(charts.curve_frame(run.metrics(), run.id, describe(run), run.config))
            except ui.READ_ERRORS as error:
                st.warning(f"{run.id} — damaged: {ui.damage_of(run, error)}", icon=":material/broken_image:")
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=charts.COLUMNS)
        if frame.empty:
            st.info("These runs have no metrics yet.")
        else:
            st.altair_chart(charts.learning_curves(frame, "accuracy", compare=True, batches=batches),
                            width="stretch", height=320, key="compare_accuracy")
            st.altair_chart(charts.learning_curves(frame, "loss", compare=True, batches=batches), width="stretch",
                            height=320, key="compare_loss")
            st.caption("Solid: training, dashed: validation. Click a run in the legend to highlight it "
                       "(shift-click for several); hover for values; drag to pan, scroll to zoom.")
        table = pd.DataFrame([row(run) for run in runs])
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "parameters": st.column_config.NumberColumn(format="localized"),
            "best val. accuracy": st.column_config.NumberColumn(format="percent"),
            "final train loss": st.column_config.NumberColumn(format="%.4f"),
            "time per epoch (s)": st.column_config.NumberColumn(format="%.1f"),
        })
        if polling:
            if not any(runner.is_active(run) for run in runs):
                st.rerun()
            st.caption("Some of these runs are training: refreshing every 3 s.")

    show()


def page():
    st.title("Compare runs")
    store = runner.Runner(ui.runs_root())
    runs = store.runs()
    if not runs:
        st.info(f"No runs yet in `{ui.runs_root()}`: train a few on the Train page (for instance plain-20 and "
                "ResNet-20, or options A and B), then compare them here.", icon=":material/info:")
        st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
        return
    by_id = {run.id: run for run in runs}
    default = [r.id for r in runs[:2]]
    if "compare.runs" not in st.session_state:  # first visit, or back from another page
        wanted = st.session_state.get("compare.selected")
        if wanted is None:
            wanted = [part for value in st.query_params.get_all("runs") for part in value.split(",")]
        chosen = [i for i in wanted if i in by_id]  # ids from the URL only select among known runs
        st.session_state["compare.runs"] = chosen or default
    else:
        st.session_state["compare.runs"] = [i for i in st.session_state["compare.runs"] if i in by_id]
    selected = st.multiselect("Runs", list(by_id), key="compare.runs",
                              format_func=lambda i: f"{describe(by_id[i])} — {i}",
                              help="Runs of the store, newest first.")
    st.session_state["compare.selected"] = selected
    st.query_params["runs"] = ",".join(selected)
    if not selected:
        st.info("Pick runs to compare.")
        return
    batches = st.toggle("Show batch curves", value=False, key="compare.batches",
                        help="Off: one point per epoch (clearer); on: also every few batches.")
    active = any(runner.is_active(by_id[i]) for i in selected)
    curves_and_table(selected, batches, polling=active)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    with c1:
        st.selectbox("Open a run's design", selected, key="compare.open",
                              format_func=lambda i: f"{describe(by_id[i])} — {i}")
    with c2:
        st.button("Open in Design", on_click=open_design, key="compare.open_button",
                  icon=":material/architecture:")


page()
