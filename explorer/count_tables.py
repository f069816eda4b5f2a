"""The Design page's tables of a built design, from `explorer.models.summarize` (no Streamlit).

Example:
>>> summary = {"stages": [{"name": "stem", "blocks": 0, "output_shape": (None, 28, 28, 16),
...                        "trainable": 160, "non_trainable": 0, "macs": 112_896}]}
>>> row = stage_frame(summary).iloc[0]
>>> row["output shape"], row["blocks"], row["multiply-adds"]
('?×28×28×16', None, '112.90 K')
"""

from __future__ import annotations

import pandas as pd

from explorer.designs import shape_text
from keras_resnets.models.summary import format_macs


def stage_frame(summary) -> pd.DataFrame:
    """A row per part of the network (stem, stages, head): its blocks, output and counts."""
    return pd.DataFrame([{"part": row["name"], "blocks": row["blocks"] or None,
                          "output shape": shape_text(row["output_shape"]),
                          "trainable": row["trainable"], "non-trainable": row["non_trainable"],
                          "multiply-adds": format_macs(row["macs"])} for row in summary["stages"]])


def layer_frame(summary) -> pd.DataFrame:
    """A row per layer: its kind, stage and block, output and counts."""
    return pd.DataFrame([{"layer": row["name"], "kind": row["kind"],
                          "stage": row["stage"] or None, "block": row["block"] or None,
                          "output shape": shape_text(row["output_shape"]),
                          "trainable": row["trainable"], "non-trainable": row["non_trainable"],
                          "multiply-adds": format_macs(row["macs"])} for row in summary["layers"]])
