"""Experiments: run one of the lecture's experiments in a worker, watch its progress, then see
its chart and headline numbers beside the lecture's claim."""

import functools

import streamlit as st

from explorer import progress, run_rows, runner, ui
from explorer.experiment_runner import ExperimentRunner
from explorer.runner import BACKENDS
from keras_resnets.experiments import EXPERIMENTS
from keras_resnets.experiments.scoreboard import scoreboard
from keras_resnets.runs.store import ACTIVE_STATES

SIZES = {"quick": "quick", "full": "full (for a GPU)"}
SIZE_NOTES = {"quick": "Quick: minutes on a CPU.",
              "full": "Full: the real experiment, sized for a GPU; on a CPU it takes hours."}
SETTINGS = ("name", "size", "seed", "backend")


def runner_instance():
    return ExperimentRunner(ui.runs_root())


bind = functools.partial(ui.bind, "experiments.")


def setting(name, default):
    """A setting's value, read from the session state (a segmented control may be unset)."""
    value = st.session_state.get(f"experiments.{name}")
    return default if value is None else value


def show_claim(name):
    experiment = EXPERIMENTS[name]
    with st.container(border=True):
        st.markdown(f"**The lecture's claim** · {experiment.title}")
        st.markdown(experiment.claim)


def settings():
    """The settings widgets and the Run button, with the chosen experiment's claim beside them."""
    left, right = st.columns([2, 3])
    with left:
        name = st.selectbox("Experiment", list(EXPERIMENTS), format_func=lambda n: EXPERIMENTS[n].title,
                            key=bind("name", next(iter(EXPERIMENTS))))
        st.segmented_control("Size", list(SIZES), format_func=SIZES.get, key=bind("size", "quick"),
                             selection_mode="single")
        st.caption(SIZE_NOTES[setting("size", "quick")])
        st.number_input("Seed", min_value=0, max_value=2**31 - 1, key=bind("seed", 0))
        st.segmented_control("Backend (the experiment runs in its own worker process with KERAS_BACKEND set)",
                             runner.backend_choices(runner.available_backends()), format_func=BACKENDS.get,
                             key=bind("backend", runner.default_backend()), selection_mode="single")
        st.button("Run the experiment", type="primary", icon=":material/play_arrow:", on_click=start,
                  key="experiments.run")
    with right:
        show_claim(name)
    ui.keep_settings("experiments.", SETTINGS)


def start():
    try:
        run_id = runner_instance().launch(setting("name", next(iter(EXPERIMENTS))), setting("size", "quick"),
                                          int(setting("seed", 0)), setting("backend", runner.default_backend()))
    except (OSError, ValueError) as error:
        st.session_state["experiments.error"] = f"Could not start the worker: {error}"
        return
    st.session_state["experiments.follow"] = run_id


def start_all():
    """Launches every experiment at the quick size, each in its own worker."""
    store = runner_instance()
    seed, backend = int(setting("seed", 0)), setting("backend", runner.default_backend())
    try:
        ids = [store.launch(name, "quick", seed, backend, starting=len(EXPERIMENTS) - i)
               for i, name in enumerate(EXPERIMENTS)]
    except (OSError, ValueError) as error:
        st.session_state["experiments.error"] = f"Could not start the workers: {error}"
        return
    st.session_state["experiments.follow"] = ids[0]


def claims_scoreboard(active):
    """The seven claims: the paper's number, ours at the chosen size, the criterion, a verdict."""
    size = setting("size", "quick")
    st.subheader("The lecture's claims")
    board, agree, run = run_rows.scoreboard_table(scoreboard(runner_instance().store, size), size)
    # A static table: the statements wrap, where a data grid would cut them.
    st.table(board)
    if run:
        st.caption(f"{agree} of {run} claims measured at the {size} size agree with the paper; each row reads "
                   "the newest completed result of that experiment at this size (any seed or backend).")
    else:
        st.info(f"No claim is measured at the {size} size yet. Press **Run all quick experiments** to measure all "
                f"{len(board)} (a few minutes on a laptop's CPU), or run one claim at a time below.",
                icon=":material/science:")
    st.button("Run all quick experiments", icon=":material/playlist_play:", on_click=start_all,
              key="experiments.run_all", disabled=active,
              help="Seven workers at once, with the seed and backend below; each takes a minute or two "
                   "alone on 2 quiet CPU cores." if not active else "Wait for the running experiments to finish.")


def cancel(run_id):
    try:
        runner_instance().cancel(run_id)
    except (OSError, ValueError) as error:
        st.toast(f"Could not cancel {run_id}: {error}")


def show_result(run, name):
    """The finished run's claim, headline numbers, chart and data."""
    try:
        spec, summary, data = run.chart_spec(), run.summary(), run.data_csv()
    except ValueError as error:
        st.error(f"The results of {run.id} cannot be read: {error}", icon=":material/error:")
        return
    left, right = st.columns([3, 2])
    with left:
        if name in EXPERIMENTS:
            show_claim(name)
    with right:
        st.dataframe(run_rows.summary_table(summary), hide_index=True, width="stretch", placeholder="—")
        st.download_button("Download the data (data.csv)", data=data, file_name=f"{run.id}.csv", mime="text/csv",
                           icon=":material/download:", key=f"experiments.download_{run.id}", on_click="ignore")
    try:
        st.vega_lite_chart(spec, width="content", key=f"experiments.chart_{run.id}")
    except Exception as error:  # a damaged spec must not break the page
        st.error(f"The chart of {run.id} cannot be drawn: {error}", icon=":material/error:")


def show_run(run_id):
    """The run's state, progress and Cancel while it runs; its results once completed."""
    try:
        run = runner_instance().get(run_id)
    except ValueError as error:
        st.warning(str(error))
        return
    status = run.status
    state = status.get("state", "?")
    st.markdown(f"{ui.STATE_ICONS.get(state, '')} **{run_rows.experiment_label(status, run.id)}** — {state}"
                + (f" in {status['seconds']:.0f} s" if state == "completed" and status.get("seconds") else ""))
    if state in ACTIVE_STATES:
        fraction = progress.experiment_fraction(status)
        st.progress(fraction, text=f"{fraction:.0%} · {status.get('message', '')}")
        st.button("Cancel", icon=":material/stop_circle:", key=f"experiments.cancel_{run.id}", on_click=cancel,
                  args=(run.id,))
    elif state == "failed":
        st.error(f"The experiment failed: {status.get('message') or 'no reason given'}. "
                 f"The worker's output is in `{run.path / 'log.txt'}`.", icon=":material/error:")
    elif state in ("cancelled", "interrupted"):
        st.warning(f"The experiment was {state}: {status.get('message', '')}", icon=ui.STATE_ICONS[state])
    elif state == "completed":
        show_result(run, status.get("name"))


def live(polling, known_ids):
    """The shown run, redrawn every 1.5 s while an experiment runs (`ui.live`)."""

    def show():
        run_id = st.session_state.get("experiments.view")
        if run_id:
            show_run(run_id)

    def now():
        runs = runner_instance().runs()
        return [r.id for r in runs], any(r.status.get("state") in ACTIVE_STATES for r in runs)

    ui.live(polling, known_ids, show, now)


def page():
    st.title("Experiments")
    st.caption("The lecture's claims about why residual networks train, each as a small experiment on the "
               "embedded MNIST sample or synthetic data. Each run is a worker process: it keeps going if you "
               "close or reload this page.")
    store = runner_instance()
    runs = store.runs()
    claims_scoreboard(any(r.status.get("state") in ACTIVE_STATES for r in runs))
    with st.container(border=True):
        settings()
    if "experiments.error" in st.session_state:
        st.error(st.session_state.pop("experiments.error"), icon=":material/error:")
    runs = store.runs()
    if not runs:
        st.caption(f"No experiment results yet in `{store.store.root}`.")
        return
    statuses = {r.id: r.status for r in runs}
    ids = list(statuses)
    active = [i for i in ids if statuses[i].get("state") in ACTIVE_STATES]
    st.session_state["experiments.view"] = ui.shown_run("experiments.", ids, active)
    st.subheader("Results")
    labels = {i: run_rows.experiment_label(statuses[i], i) for i in ids}
    st.selectbox("Show result", ids, format_func=labels.get, key="experiments.view")
    live(bool(active), ids)
    with st.expander(f"All results ({len(ids)})"):
        st.dataframe(run_rows.results_table(statuses), hide_index=True, width="stretch")
    st.caption(f"Results are kept in `{store.store.root}`.")


page()
