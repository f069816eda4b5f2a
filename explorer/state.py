"""The design every page sees: `st.session_state` while the session lives, the URL for links.

- ``st.session_state["design"]``: the design dict being edited (maybe invalid).
- ``st.session_state["preset"]``: the "start from" choice it is diffed against in the URL.
- The URL's query parameters: ``preset`` plus the changed fields (see `explorer.designs`).

On a session's first run the design comes from the URL (a shared link) or the default preset;
from then on the session is the truth and `sync_url` writes it back to the URL after each run,
so the address bar always holds a link that reproduces the design.
"""

from __future__ import annotations

import streamlit as st

from explorer import designs

WIDGET_PREFIX = "design."
"""Session-state keys of the design page's widgets start with this."""


def init() -> None:
    """Loads the design from the URL on the session's first run."""
    if "design" in st.session_state:
        return
    params = {key: st.query_params.get_all(key) for key in st.query_params}
    preset_id, design, problems = designs.decode_query(params)
    st.session_state["preset"] = preset_id
    st.session_state["design"] = design
    st.session_state["url_problems"] = problems


def design() -> dict:
    """The current design dict (a copy)."""
    init()
    return _copy(st.session_state["design"])


def preset_id() -> str:
    init()
    return st.session_state["preset"]


def architecture():
    """``(Architecture or None, error message or None)`` of the current design."""
    return designs.validate(design())


def set_design(new_design: dict, preset: str | None = None) -> None:
    """Replaces the design (and its preset); the design page's widgets reload from it.

    Call it from a widget callback or before the design page's widgets are drawn.
    """
    if preset is None:  # an edit of the design: an automatic name follows it
        new_design = designs.named(st.session_state.get("design", {}), _copy(new_design), preset_id())
    st.session_state["design"] = _copy(new_design)
    if preset is not None:
        st.session_state["preset"] = preset
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(WIDGET_PREFIX)]:
        del st.session_state[key]


def load_preset(preset: str) -> None:
    set_design(designs.preset_design(preset), preset)


def store_design(new_design: dict) -> None:
    """Records the design composed from the widgets (no widget reload)."""
    st.session_state["design"] = _copy(new_design)


def sync_url(keep=()) -> None:
    """Writes the design into the URL, plus the current page's own parameters ``keep``
    (such as ``runs`` on the Compare page); other parameters are dropped."""
    init()
    wanted = designs.encode_query(st.session_state["design"], st.session_state["preset"])
    current = {key: st.query_params.get(key) for key in st.query_params}
    others = {k: v for k, v in current.items() if k in keep and k not in designs.DESIGN_PARAMS}
    target = {**wanted, **others}
    if target != current:
        st.query_params.from_dict(target)


def share_query() -> str:
    """The query string of the current design, for links."""
    from urllib.parse import urlencode

    init()
    return urlencode(designs.encode_query(st.session_state["design"], st.session_state["preset"]), safe=",/")


def _copy(value):
    import copy

    return copy.deepcopy(value)
