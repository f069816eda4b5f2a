"""The keras-resnets explorer: ``streamlit run explorer/app.py``.

Navigation only: each page lives in ``explorer/app_pages/``; the design they share lives in
``explorer/state.py`` (session state, mirrored in the URL).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from explorer import state, ui  # noqa: E402

# Not "pages/": Streamlit treats a pages/ folder beside the entry point as an old-style
# multipage app and would run a page without this file (no navigation, no shared state).
PAGES = Path(__file__).resolve().parent / "app_pages"

st.set_page_config(page_title="keras-resnets explorer", page_icon=":material/account_tree:", layout="wide")
state.init()
COMPARE = st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare_arrows:")
page = st.navigation([
    st.Page(PAGES / "design.py", title="Design", icon=":material/architecture:", default=True),
    st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
    COMPARE,
    st.Page(PAGES / "take_apart.py", title="Take apart", icon=":material/content_cut:"),
    st.Page(PAGES / "experiments.py", title="Experiments", icon=":material/science:"),
    st.Page(PAGES / "export.py", title="Export and share", icon=":material/ios_share:"),
])
ui.link_problems()
page.run()
ui.sidebar_summary()
state.sync_url(keep=("runs",) if page.url_path == COMPARE.url_path else ())
