"""Export and share: the .keras model, the JSON description, a Python snippet and a link."""

import streamlit as st

from explorer import designs, models, state, ui
from keras_resnets.interop import export_torch


def load_json():
    upload = st.session_state.get("export.upload")
    if upload is None:
        return
    try:
        architecture = designs.read_description(upload.getvalue(), upload.name)
    except ValueError as error:
        st.session_state["export.message"] = ("error", str(error))
        return
    state.set_design(architecture.to_dict())
    st.session_state.pop("start_from", None)
    st.session_state["export.message"] = ("success", f"Loaded `{architecture.name}`: it is now the design.")


def torch_download(architecture, safe_name):
    """The design as a plain PyTorch file, or why it cannot be exported."""
    st.subheader("As a PyTorch module")
    try:
        source = export_torch.torch_source(architecture)
    except ValueError as error:
        st.info(str(error), icon=":material/info:")
        return
    st.download_button("PyTorch module (.py)", data=source, file_name=f"{safe_name}_torch.py",
                       mime="text/x-python", icon=":material/code:", key="export.torch", on_click="ignore")
    st.caption(f"Plain `torch`, no Keras: `{export_torch.torch_class_name(architecture)}()` builds the same "
               "network, and `load_keras_weights(module, keras_resnets.interop.export_torch.keras_weights(model))` "
               "copies a Keras model's weights into it (outputs equal to 1e-4).")


def share_link() -> str:
    """`designs.share_link` of this page's address (unknown to older Streamlits)."""
    try:
        url = st.context.url
    except AttributeError:
        url = None
    return designs.share_link(url, state.share_query())


def page():
    st.title("Export and share")
    message = st.session_state.pop("export.message", None)
    if message:
        getattr(st, message[0])(message[1])
    architecture = ui.checked_architecture()
    if architecture is None:
        st.page_link("app_pages/design.py", label="Fix the design", icon=":material/architecture:")
    else:
        text = architecture.to_json(indent=2)
        st.subheader("Share a link")
        st.caption("The address bar always holds the design (the preset it started from and the fields you "
                   "changed): copy it, or this link, and whoever opens it sees the same network.")
        st.code(share_link(), language=None, wrap_lines=True)

        st.subheader("Download")
        c1, c2, c3 = st.columns(3)
        safe_name = designs.file_stem(architecture.name)
        with c1:
            st.download_button("Architecture (JSON)", data=text, file_name=f"{safe_name}.json",
                               mime="application/json", icon=":material/data_object:", key="export.json",
                               on_click="ignore", width="stretch")
        with c2:
            st.download_button("Python snippet (.py)", data=designs.python_snippet(architecture),
                               file_name=f"{safe_name}.py", mime="text/x-python", icon=":material/code:",
                               key="export.py", on_click="ignore", width="stretch")
        with c3:
            arch_json = architecture.to_json()
            st.download_button("Untrained model (.keras)", data=lambda: models.keras_file(arch_json),
                               file_name=f"{safe_name}.keras", mime="application/zip", icon=":material/download:",
                               key="export.keras", on_click="ignore", width="stretch",
                               help="Built when you click; trained models are on the Train page.")
        torch_download(architecture, safe_name)
        st.subheader("Rebuild it in Python")
        st.code(designs.python_snippet(architecture), language="python")
        st.caption("Or from the JSON: `keras_resnets.build_resnet(keras_resnets.Architecture.from_json(text))`; "
                   "from the command line: `python -m keras_resnets summary --architecture "
                   f"{safe_name}.json`.")
        with st.expander("The description (JSON)"):
            st.code(text, language="json")

    st.subheader("Open a description")
    st.file_uploader("An architecture JSON file (or a run's config.json)", type=["json"], key="export.upload",
                     on_change=load_json, max_upload_size=1)


page()
