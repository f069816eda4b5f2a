"""Altair learning curves from the events of ``metrics.jsonl``.

One long table (`curve_frame`): a row per run, metric, split and event, with ``epoch`` as a
fraction (batch and probe events between epochs), so runs with different batch sizes line up.
Batch events are drawn thin and pale; epoch events, and the held-out probes between them, bold
with points: the style of He et al.'s Figure 4 (thin: training, bold: validation). So a
one-epoch run's validation curve is a curve: its probes and its epoch's end.

Every scale is padded by `PADDING` pixels, so that a point on the last epoch or at 100% is
drawn whole, not cut by the chart's border (zooming clips the marks to the plot).
"""

from __future__ import annotations

import importlib.util
import math

import altair as alt
import pandas as pd

from explorer import run_rows, seeds
from keras_resnets.design.validation import check_choice
from keras_resnets.runs import records
from keras_resnets.runs.records import RunConfig
from keras_resnets.training import TrainingRequest

METRICS = {"loss": "loss", "accuracy": "accuracy"}
PADDING = 10
"""Pixels added at both ends of each scale (the radius of a point, and a margin)."""
SOURCES = {"batch": "running mean of the epoch so far", "probe": "held-out probe",
           "epoch": "end of epoch (held out: all of it)"}
"""What each granularity's numbers are, for the tooltips."""
COLUMNS = ["run", "label", "metric", "split", "granularity", "epoch", "step", "value"]


def steps_per_epoch(events, config: RunConfig | None = None) -> float | None:
    """Steps of one epoch: from an epoch event if there is one, else from the request of the
    run's config (a `ValueError` if it cannot be read)."""
    for event in records.epochs(events):
        if event.get("step"):
            return event["step"] / (event["epoch"] + 1)
    request = config and TrainingRequest.from_config(config)
    if request and request.dataset.subset:
        return math.ceil(request.dataset.subset / request.recipe.batch_size)
    return None


def curve_frame(events, run_id="run", label=None, config: RunConfig | None = None) -> pd.DataFrame:
    """The learning-curve rows of one run."""
    per_epoch = steps_per_epoch(events, config)
    rows = []
    for event in events:
        kind = event.get("event")
        if kind not in ("batch", "probe", "epoch"):
            continue
        step = event.get("step")
        if kind == "epoch":
            x = event.get("epoch", 0) + 1
        elif per_epoch and step is not None:
            x = step / per_epoch
        else:
            x = None
        for metric in METRICS:
            splits = [] if kind == "probe" else [("train", metric)]
            if kind != "batch":
                splits.append(("validation", f"val_{metric}"))
            for split, key in splits:
                value = event.get(key)
                if value is None or x is None or not math.isfinite(value):
                    continue
                rows.append({"run": run_id, "label": label or run_id, "metric": metric, "split": split,
                             "granularity": kind, "epoch": float(x), "step": step, "value": float(value)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _x(epochs=None):
    """The epoch axis; to ``epochs`` when given (a run's planned length), so that a training
    run's curves grow into a fixed frame instead of stretching a few points across it."""
    extent = {} if epochs is None else {"domainMax": epochs}
    return alt.X("epoch:Q", title="epoch", scale=alt.Scale(domainMin=0, nice=False, padding=PADDING, **extent))


def _y(field, title, metric):
    return alt.Y(field, title=title, scale=alt.Scale(zero=metric == "accuracy", nice=True, padding=PADDING))


def _source():
    """The granularity as the tooltip's words (`SOURCES`)."""
    return alt.Tooltip("source:N", title="from")


def _with_source(data):
    return data.assign(source=data["granularity"].map(SOURCES))


def _tooltip():
    return [alt.Tooltip("label:N", title="run"), alt.Tooltip("split:N"), _source(),
            alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("step:Q"), alt.Tooltip("value:Q", format=".4f")]


def learning_curves(frame: pd.DataFrame, metric: str, compare: bool = False, batches: bool = True,
                    epochs: int | None = None) -> alt.LayerChart:
    """Loss or accuracy against epochs (the axis to ``epochs`` when given).

    One run (``compare=False``): colour is train/validation. Several runs: colour is the run
    (click the legend to pick runs), dash is the split.
    """
    data = _with_source(frame[frame["metric"] == metric])
    title = {"loss": "Loss", "accuracy": "Accuracy"}[metric]
    y = _y("value:Q", title, metric)
    x = _x(epochs)
    if compare:
        pick = alt.selection_point(fields=["label"], bind="legend")
        color = alt.Color("label:N", title="run", legend=alt.Legend(orient="right", labelLimit=360))
        opacity = alt.condition(pick, alt.value(1.0), alt.value(0.12))
        dash = alt.StrokeDash("split:N", title="split", sort=["train", "validation"],
                              legend=alt.Legend(orient="right"))
        detail = alt.Detail("run:N")
    else:
        pick = None
        color = alt.Color("split:N", title=None, sort=["train", "validation"],
                          scale=alt.Scale(domain=["train", "validation"], range=["#2563eb", "#ea580c"]),
                          legend=alt.Legend(orient="top"))
        opacity = alt.value(1.0)
        dash = None
        detail = alt.Detail("run:N")
    base = alt.Chart(data).encode(x=x, y=y, color=color, detail=detail, tooltip=_tooltip())
    layers = []
    if batches:
        batch = base.transform_filter(alt.datum.granularity == "batch").mark_line(strokeWidth=1)
        batch = batch.encode(opacity=alt.condition(pick, alt.value(0.45), alt.value(0.06)) if pick else alt.value(0.45))
        layers.append(batch)
    epoch = base.transform_filter(alt.datum.granularity != "batch")
    encode = {"opacity": opacity}
    if dash is not None:
        encode["strokeDash"] = dash
    layers.append(epoch.mark_line(strokeWidth=2.5).encode(**encode))
    layers.append(epoch.mark_point(filled=True, size=45).encode(opacity=opacity,
                                                                **({"shape": alt.Shape("split:N", legend=None)}
                                                                   if compare else {})))
    chart = alt.layer(*layers).properties(title=title)
    if pick is not None:
        chart = chart.add_params(pick)
    return chart.interactive(bind_y=False)


def seed_bands(bands: pd.DataFrame, metric: str) -> alt.LayerChart:
    """Mean curves of seed groups with a band of ± one standard deviation (`explorer.seeds.bands`):
    per epoch bold with points, per logged step (when the frame has them) thin and lighter.

    Colour is the group (click the legend to pick groups), dash the split, as in `learning_curves`.
    """
    data = _with_source(bands[bands["metric"] == metric])
    title = {"loss": "Loss", "accuracy": "Accuracy"}[metric]
    axis_title = f"{title} (mean ± std over seeds)"
    pick = alt.selection_point(fields=["label"], bind="legend")
    base = alt.Chart(data).encode(
        x=_x(),
        color=alt.Color("label:N", title="seed group", legend=alt.Legend(orient="right", labelLimit=360)),
        detail=alt.Detail("split:N"),
        tooltip=[alt.Tooltip("label:N", title="group"), alt.Tooltip("split:N"),
                 _source(), alt.Tooltip("epoch:Q", format=".2f"),
                 alt.Tooltip("mean:Q", format=".4f"), alt.Tooltip("std:Q", format=".4f"),
                 alt.Tooltip("count:Q", title="seeds")],
    )
    y = _y("mean:Q", axis_title, metric)
    dash = alt.StrokeDash("split:N", title="split", sort=["train", "validation"])
    layers = []
    for batch, band_opacity, line_opacity, line in (
            (True, 0.10, 0.45, {"strokeWidth": 1}),
            (False, 0.18, 1.0, {"strokeWidth": 2.5, "point": True})):
        rows = base.transform_filter((alt.datum.granularity == "batch") if batch
                                     else (alt.datum.granularity != "batch"))
        layers.append(rows.mark_area().encode(
            y=_y("low:Q", axis_title, metric), y2="high:Q",
            opacity=alt.condition(pick, alt.value(band_opacity), alt.value(0.03))))
        layers.append(rows.mark_line(**line).encode(
            y=y, strokeDash=dash, opacity=alt.condition(pick, alt.value(line_opacity), alt.value(0.06))))
    return alt.layer(*layers).properties(title=title).add_params(pick).interactive(bind_y=False)


def comparison_charts(groups, batches: bool, grouped: bool) -> tuple[dict, list[str]]:
    """``({metric: chart}, damaged)`` of the Compare page: mean ± std bands of seed groups when
    ``grouped`` and some group has several seeds, one curve per run otherwise; ``{}`` without
    metrics. ``damaged`` says which runs' metrics could not be read, and why."""
    banded = grouped and any(len(g) > 1 for g in groups)
    frames, damaged = [], []
    for g in groups:
        for run in g:
            label = run_rows.group_label(g) if banded else run_rows.describe(run)
            try:
                frames.append(curve_frame(run.metrics(), run.id, label, run.config))
            except run_rows.READ_ERRORS as error:
                damaged.append(f"{run.id} — damaged: {run_rows.damage_of(run, error)}")
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    if frame.empty:
        return {}, damaged
    if banded:
        bands = seeds.bands(frame, batches=batches)
        return {metric: seed_bands(bands, metric) for metric in ("accuracy", "loss")}, damaged
    return {metric: learning_curves(frame, metric, compare=True, batches=batches)
            for metric in ("accuracy", "loss")}, damaged


IMAGE_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def can_export_images() -> bool:
    """Whether charts can be written as PNG or SVG here (`vl-convert-python`, the explorer extra)."""
    return importlib.util.find_spec("vl_convert") is not None


def image(chart, fmt: str) -> bytes:
    """The chart as a PNG (twice the screen's resolution) or SVG file, rendered by vl-convert."""
    import vl_convert

    check_choice("fmt", fmt, list(IMAGE_FORMATS))
    with alt.data_transformers.disable_max_rows():
        spec = chart.to_json()
    if fmt == "png":
        return vl_convert.vegalite_to_png(spec, scale=2)
    return vl_convert.vegalite_to_svg(spec).encode()
