"""Compare: overlay the learning curves of several runs and tabulate what differs."""

import streamlit as st

from explorer import charts, run_rows, runner, seeds, state, ui


@st.cache_data(max_entries=256, show_spinner=False)
def parameters(architecture_json: str):
    """A design's trainable parameters for the table, cached; None when it cannot be built."""
    from explorer import models

    try:
        return models.summarize(architecture_json)["counts"]["trainable"]
    except Exception:
        return None


def open_design():
    run_id = st.session_state.get("compare.open")
    try:
        run = runner.Runner(ui.runs_root()).get(run_id)
        design = run.config.design().to_dict()
    except (ValueError, KeyError, TypeError) as error:
        st.toast(f"Could not open that design: {error}")
        return
    state.set_design(design)
    st.session_state.pop("start_from", None)
    st.toast(f"Opened the design of {run_id} on the Design page.", icon=":material/architecture:")


# What a table shows where a run has no number (a single seed's spread, a run with no epoch yet):
# Streamlit would write "None". (A comment: a page's bare string would be drawn on the page.)
MISSING = "—"


def downloads(table, chart_by_metric):
    """The table as CSV; each chart as PNG or SVG."""
    c1, c2, c3, c4 = st.columns([2, 1, 2, 2], vertical_alignment="bottom")
    with c1:
        st.download_button("Table (CSV)", data=table.to_csv(index=False), file_name="comparison.csv",
                           mime="text/csv", icon=":material/table:", key="compare.csv", on_click="ignore")
    if not chart_by_metric:
        return
    if not charts.can_export_images():
        c3.caption("PNG and SVG need `vl-convert-python` (`pip install keras-resnets[explorer]`).")
        return
    with c2:
        fmt = st.segmented_control("Chart format", list(charts.IMAGE_FORMATS), format_func=str.upper,
                                   key="compare.image_format", default="png") or "png"
    for column, (metric, chart) in zip((c3, c4), chart_by_metric.items()):
        with column:
            st.download_button(f"{metric.capitalize()} chart ({fmt.upper()})",
                               data=lambda chart=chart: charts.image(chart, fmt), file_name=f"{metric}.{fmt}",
                               mime=charts.IMAGE_FORMATS[fmt], icon=":material/image:",
                               key=f"compare.image_{metric}", on_click="ignore")


def curves_and_table(selected, batches, polling, grouped=False):
    """The overlaid curves and the table; refreshed every few seconds while a run trains."""

    @st.fragment(run_every=3.0 if polling else None)
    def show():
        by_id = {run.id: run for run in runner.Runner(ui.runs_root()).runs()}
        runs = [by_id[run_id] for run_id in selected if run_id in by_id]
        groups = seeds.group(runs) if grouped else [[run] for run in runs]
        chart_by_metric, damaged = charts.comparison_charts(groups, batches, grouped)
        for problem in damaged:
            st.warning(problem, icon=":material/broken_image:")
        if not chart_by_metric:
            st.info("These runs have no metrics yet.")
        for metric, chart in chart_by_metric.items():
            st.altair_chart(chart, width="stretch", height=320, key=f"compare_{metric}")
        if chart_by_metric:
            st.caption("Solid: training, dashed: validation; seed groups: mean, with a band of ± one standard "
                       "deviation. Click a run in the legend to highlight it (shift-click for several); hover "
                       "for values; drag to pan, scroll to zoom.")
        table = run_rows.comparison_table(groups, grouped, parameters)
        st.dataframe(table, hide_index=True, width="stretch", placeholder=MISSING, column_config={
            "parameters": st.column_config.NumberColumn(format="localized"),
            "best val. accuracy": st.column_config.NumberColumn(
                format="percent", help="The best epoch's, on all its held-out images"),
            "best val. accuracy ± std": st.column_config.NumberColumn(
                format="percent", help=f"Over the group's seeds; {MISSING} for a single seed"),
            "final train loss": st.column_config.NumberColumn(format="%.4f"),
            "final train loss ± std": st.column_config.NumberColumn(format="%.4f"),
            "time per epoch (s)": st.column_config.NumberColumn(format="%.1f"),
            "time per epoch (s) ± std": st.column_config.NumberColumn(format="%.1f"),
        })
        if any(c.endswith(" ± std") for c in table.columns):
            st.caption(f"± std: the standard deviation over a group's seeds; {MISSING} where a group has one seed.")
        downloads(table, chart_by_metric)
        if polling:
            if not any(runner.is_active(run) for run in runs):
                st.rerun()
            st.caption("Some of these runs are training: refreshing every 3 s.")

    show()


def run_seeds():
    """Launches N more seeds of the chosen run: its design, data, recipe and backend."""
    store = runner.Runner(ui.runs_root())
    try:
        source = store.get(st.session_state.get("compare.seed_source"))
        group = seeds.group_of(store.runs(), source.id)
        new_seeds = seeds.next_seeds(group, int(st.session_state.get("compare.seed_count", 3)))
        for i, seed in enumerate(new_seeds):
            run_id = store.launch(seeds.replica_request(source.config, seed), source.config.backend,
                                  starting=len(new_seeds) - i)
            st.session_state["compare.starting"] = [*st.session_state.get("compare.starting", []), run_id]
    except (OSError, ValueError, KeyError, TypeError) as error:
        st.session_state["compare.seed_error"] = f"Could not start the seeds: {error}"


def take_arrivals(store, by_id) -> list[str]:
    """Selects the launched seeds whose run has appeared; returns those still starting."""
    launched = st.session_state.get("compare.starting", [])
    starting_now = {p["run_id"] for p in store.pending() if p["state"] == "starting"}
    arrived = [i for i in launched if i in by_id]
    if arrived and "compare.runs" in st.session_state:
        st.session_state["compare.runs"] = [*st.session_state["compare.runs"], *arrived]
    elif arrived:
        st.session_state["compare.selected"] = [*(st.session_state.get("compare.selected") or []), *arrived]
    st.session_state["compare.starting"] = [i for i in launched if i not in by_id and i in starting_now]
    return st.session_state["compare.starting"]


def seeds_section(selected, by_id):
    """Run N more seeds of a selected run (a new seed each), so that it becomes a seed group."""
    st.subheader("Run more seeds")
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    with c1:
        st.selectbox("Design, data, recipe and backend of", selected, key="compare.seed_source",
                     format_func=lambda i: f"{run_rows.describe(by_id[i])} — {i}")
    with c2:
        count = st.number_input("Seeds", min_value=1, max_value=10, value=3, key="compare.seed_count")
    with c3:
        st.button(f"Run {count} seed{'' if count == 1 else 's'}", on_click=run_seeds, key="compare.seed_button", icon=":material/casino:",
                  help="Starts one worker per seed, each with a seed no run of the group has used.")
    if "compare.seed_error" in st.session_state:
        st.error(st.session_state.pop("compare.seed_error"), icon=":material/error:")


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
    starting = take_arrivals(store, by_id)
    default = [r.id for r in runs[:2]]
    if "compare.runs" not in st.session_state:  # first visit, or back from another page
        wanted = st.session_state.get("compare.selected")
        if wanted is None:  # ids from the URL only select among known runs, each once
            wanted, problems = runner.runs_from_link(st.query_params.get_all("runs"), by_id)
            if problems:
                shown = "" if wanted else " Showing the two newest runs."
                st.warning(f"From the link: {'; '.join(problems)}.{shown}", icon=":material/link_off:")
        chosen = [i for i in wanted if i in by_id]
        st.session_state["compare.runs"] = chosen or default
    else:
        st.session_state["compare.runs"] = [i for i in st.session_state["compare.runs"] if i in by_id]
    selected = st.multiselect("Runs", list(by_id), key="compare.runs",
                              format_func=lambda i: f"{run_rows.describe(by_id[i])} — {i}",
                              help="Runs of the store, newest first.")
    st.session_state["compare.selected"] = selected
    st.query_params["runs"] = ",".join(selected)
    if not selected:
        st.info("Pick runs to compare.")
        return
    batches = st.toggle("Show batch curves", value=all(run_rows.single_epoch(by_id[i]) for i in selected),
                        key="compare.batches",
                        help="Off: one point per epoch (clearer); on: also every few batches. On at first "
                             "when every run has a single epoch, whose epoch curve is one point.")
    grouped = st.toggle("Group seeds", value=True, key="compare.group_seeds",
                        help="Runs that differ only by their seed: one mean curve with a band of ± one standard "
                             "deviation, and one table row with mean and ± std.")
    if starting:
        st.info(f"Starting {len(starting)} seed run(s); they join the comparison as their workers begin.",
                icon=":material/hourglass_top:")
    active = any(runner.is_active(by_id[i]) for i in selected) or bool(starting)
    curves_and_table(selected, batches, polling=active, grouped=grouped)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    with c1:
        st.selectbox("Open a run's design", selected, key="compare.open",
                              format_func=lambda i: f"{run_rows.describe(by_id[i])} — {i}")
    with c2:
        st.button("Open in Design", on_click=open_design, key="compare.open_button",
                  icon=":material/architecture:")
    seeds_section(selected, by_id)


page()
