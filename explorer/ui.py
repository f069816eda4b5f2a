"""Small display helpers shared by the pages: widget state, the run shown, live panels."""

from __future__ import annotations

import datetime
import os
import time

import streamlit as st

from explorer import designs, models, run_rows, state
from keras_resnets.models.summary import format_macs


def backend_name() -> str:
    """The app's own Keras backend (where designs are built for counting)."""
    import keras

    return {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}.get(
        keras.backend.backend(), keras.backend.backend())


def summary_of(architecture):
    """`models.summarize` with a spinner for slow builds; ``(summary, seconds)`` or raises."""
    started = time.perf_counter()
    label = (f"Building {architecture.name} ({architecture.num_blocks} blocks, "
             f"{designs.estimate_text(architecture)}) to count its parameters…")
    with st.spinner(label, show_time=True):
        summary = models.summarize(architecture.to_json())
    return summary, time.perf_counter() - started


def checked_architecture(show=True):
    """The current design as an `Architecture`, or ``None`` after showing why it is not one."""
    architecture, error = state.architecture()
    if error is not None and show:
        st.error(f"**The design is not valid:** {error}", icon=":material/error:")
    return architecture


def link_problems() -> None:
    """Why the link this session started from was not opened, on whichever page it opened."""
    problems = st.session_state.pop("url_problems", [])
    if problems:
        st.warning("From the link:\n" + "\n".join(f"- {problem}" for problem in problems),
                   icon=":material/link_off:")


def sidebar_summary() -> None:
    """The current design in the sidebar, on every page."""
    with st.sidebar:
        architecture, error = state.architecture()
        if error is None:
            st.markdown(f"**Design:** `{architecture.name}`")
            try:
                summary = models.summarize(architecture.to_json())
            except Exception as exc:  # a build failure must not break every page
                st.caption(f"Could not build it: {exc}")
            else:
                counts = summary["counts"]
                st.caption(f"{counts['trainable']:,} trainable parameters · {summary['depth']} layers · "
                           f"{format_macs(summary['macs'])} multiply-adds per image")
        else:
            st.markdown("**Design:** not valid yet")
        st.caption(f"Counts built with Keras {_keras_version()} on {backend_name()}. "
                   f"Runs in `{runs_root()}`.")


def _keras_version():
    import keras

    return keras.__version__


def runs_root() -> str:
    """The run store's directory: ``KERAS_RESNETS_RUNS_DIR`` or ``runs`` (relative to the
    directory the app was launched from)."""
    return os.environ.get("KERAS_RESNETS_RUNS_DIR", "runs")


STATE_ICONS = {"created": ":material/hourglass_top:", "running": ":material/directions_run:",
               "completed": ":material/check_circle:", "interrupted": ":material/warning:",
               "cancelled": ":material/stop_circle:", "failed": ":material/error:",
               "starting": ":material/hourglass_top:"}
"""The icon of each state of a run, an experiment or a launch."""


def bind(prefix: str, name: str, value):
    """The widget key ``prefix + name``, initialised from the settings the page kept with
    `keep_settings` (widget state itself is dropped when the user visits another page), else
    from ``value``."""
    key = prefix + name
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(f"{prefix}saved", {}).get(key, value)
    return key


def keep_settings(prefix: str, names) -> None:
    """Keeps the values of the widgets ``prefix + name`` for `bind` to restore them."""
    st.session_state[f"{prefix}saved"] = {prefix + name: st.session_state[prefix + name]
                                          for name in names if prefix + name in st.session_state}


def shown_run(prefix: str, ids, active) -> str:
    """`run_rows.choose_run` of the run picked (``prefix + "view"``) and of one just started
    (``prefix + "follow"``, followed once)."""
    followed = st.session_state.get(prefix + "follow")
    if followed in ids:
        del st.session_state[prefix + "follow"]
    return run_rows.choose_run(st.session_state.get(prefix + "view"), followed, ids, active)


def live(polling: bool, known_ids, show, now, stamp_idle: bool = False) -> None:
    """``show()`` in a fragment redrawn every 1.5 s while ``polling``. ``now()`` returns the
    store's ``(run ids, whether any is active or starting)``; when they change (a run appeared,
    the last one finished, or ``show()`` returns True for a run that became active), the whole
    page is redrawn. The "Updated" stamp shows while polling (always with ``stamp_idle``)."""

    @st.fragment(run_every=1.5 if polling else None)
    def panel():
        still_active = show()
        ids, active = now()
        if ids != list(known_ids) or active != polling or (still_active and not polling):
            st.rerun()
        if polling or stamp_idle:
            st.caption(f"Updated {datetime.datetime.now():%H:%M:%S}"
                       + (" · refreshing every 1.5 s" if polling else ""))

    panel()
