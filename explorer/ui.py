"""Small display helpers shared by the pages."""

from __future__ import annotations

import os
import time

import streamlit as st

from explorer import designs, models, state
from keras_resnets.models.summary import format_macs
from keras_resnets.runs.status import DAMAGED


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


READ_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError,
               OverflowError)
"""What a page may meet reading a run whose files hold unexpected values (the store checks the
fields it knows; a reader shows such a run as damaged and every other run as usual)."""


def damage_of(run, error=None) -> str | None:
    """Why ``run`` is shown as damaged: the store's reason, the reader's ``error``, or None."""
    if run.damage is not None:
        return run.damage
    if error is not None:
        return f"a file of this run holds an unexpected value ({type(error).__name__}: {error})"
    status = run.status
    return status["message"] if status["state"] == DAMAGED else None


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
