"""Train: pick data, recipe and backend, start a worker, watch its curves live, cancel it."""

import datetime

import pandas as pd
import streamlit as st

from explorer import charts, designs, models, progress, runner, state, ui
from explorer.runner import BACKENDS, TrainRequest
from keras_resnets.data.datasets import DATASETS, is_available
from keras_resnets.runs import records
from keras_resnets.runs.store import Run
from keras_resnets.training.probe import PROBE_IMAGES
from keras_resnets.training.recipe import Recipe

DEFAULTS = TrainRequest()
STATE_ICONS = {"created": ":material/hourglass_top:", "running": ":material/directions_run:",
               "completed": ":material/check_circle:", "interrupted": ":material/warning:",
               "cancelled": ":material/stop_circle:", "failed": ":material/error:", "starting": ":material/hourglass_top:"}
RECIPE = "recipe"  # selectboxes hold strings: None would read as "nothing selected"
DISTRIBUTIONS = {"none": "One device", "data_parallel": "Data parallel over all devices"}


@st.cache_data(ttl=120, show_spinner=False)
def reachable(name: str) -> bool:
    """Whether a dataset can be loaded here (prepared locally, or its host answers); cached."""
    try:
        return is_available(name, timeout=1.5)
    except ValueError:
        return False


def bind(key, value):
    """The widget key of a setting, initialised from the settings kept for this session (widget
    state itself is dropped when the user visits another page)."""
    key = "train." + key
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get("train.saved", {}).get(key, value)
    return key


def keep_settings():
    st.session_state["train.saved"] = {key: st.session_state[key] for key in SETTINGS if key in st.session_state}


SETTINGS = ["train." + name for name in ("dataset", "subset", "epochs", "batch_size", "validation_split", "recipe",
                                         "optimizer", "schedule", "learning_rate", "seed", "backend",
                                         "distribution")]
SCHEDULES = {RECIPE: "the recipe's", "constant": "constant", "step": "÷10 at 50% and 75%"}
RATE_PHRASES = {None: "", "constant": " at a constant rate", "step": " with the rate ÷10 at 50% and 75%"}


def fit_design():
    info = DATASETS[st.session_state.get("train.dataset") or DEFAULTS.dataset]
    design = state.design()
    design["input_shape"] = list(info.image_shape)
    design["classes"] = info.classes
    state.set_design(design)


def settings(architecture):
    """The settings widgets; returns ``(TrainRequest, problem or None)``."""
    dataset, available = dataset_fields()
    size_fields()
    recipe_fields()
    backend_fields()
    keep_settings()
    request = current_request()
    return request, training_problem(architecture, request, dataset, available)


def dataset_fields():
    """The dataset's selectbox and whether it can be loaded here; returns ``(name, available)``."""
    names = list(DATASETS)
    c1, c2 = st.columns([3, 2])
    with c1:
        dataset = st.selectbox("Dataset", names, key=bind("dataset", DEFAULTS.dataset),
                               format_func=lambda n: f"{n} — {DATASETS[n].description}")
    info = DATASETS[dataset]
    available = dataset == "mnist_sample" or reachable(dataset)
    with c2:
        if dataset == "mnist_sample":
            st.caption("Embedded in the package: works offline, 28x28x1, 10 classes.")
        elif available:
            st.caption(f"Loaded with tensorflow-datasets ({info.tfds_name}); the first run downloads it.")
        else:
            fallback = " (it would fall back to the embedded sample)" if dataset == "mnist" else ""
            st.warning(f"{dataset} is not prepared here and its download host does not answer{fallback}.",
                       icon=":material/cloud_off:")
    return dataset, available


def size_fields():
    """The widgets of how much to train: images, epochs, batch size and the validation fraction."""
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        st.number_input("Training images (subset)", min_value=0, max_value=100_000, step=256,
                        key=bind("subset", DEFAULTS.subset), help="How many training images to use; 0 uses them all.")
    with c2:
        st.number_input("Epochs", min_value=1, max_value=500, key=bind("epochs", DEFAULTS.epochs))
    with c3:
        st.number_input("Batch size", min_value=1, max_value=4096, key=bind("batch_size", DEFAULTS.batch_size))
    with c4:
        st.number_input("Validation fraction", min_value=0.0, max_value=0.5, step=0.01, format="%.2f",
                        key=bind("validation_split", DEFAULTS.validation_split),
                        help="Held out of the training data, evaluated after each epoch.")


def recipe_fields():
    """The widgets of the recipe and what overrides it: optimizer, rate schedule, learning rate, seed."""
    c1, c2, c3, c4, c5 = st.columns(5)
    with c1:
        quick = Recipe()
        st.selectbox("Recipe", ["quick", "paper"], key=bind("recipe", DEFAULTS.recipe),
                     format_func={"quick": f"quick ({quick.optimizer.capitalize()})", "paper": "paper (SGD)"}.get,
                     help=f"quick, the first minute's recipe: {quick.optimizer.capitalize()} at "
                          f"{quick.learning_rate:g}, {quick.schedule} rate. paper: SGD at 0.1 with momentum 0.9 "
                          "and weight decay 1e-4. With the rate schedule \"the recipe's\", a step rate is "
                          "divided by 10 at 50% and 75% of the steps.")
    with c2:
        st.selectbox("Optimizer", [RECIPE, "adam", "sgd"], key=bind("optimizer", RECIPE),
                     format_func=lambda o: "the recipe's" if o == RECIPE else o)
    with c3:
        st.selectbox("Rate schedule", list(SCHEDULES), key=bind("schedule", DEFAULTS.schedule or RECIPE),
                     format_func=SCHEDULES.get,
                     help="Constant keeps a short run learning. Dividing the rate by 10 late in training "
                          "settles the batch-norm statistics in longer runs (both recipes do).")
    with c4:
        st.number_input("Learning rate", min_value=0.0, max_value=10.0, value=None, format="%.4g",
                        placeholder="the recipe's", key=bind("learning_rate", None))
    with c5:
        st.number_input("Seed", min_value=0, max_value=2**31 - 1, key=bind("seed", DEFAULTS.seed))


def backend_fields():
    """The widgets of where the worker trains: the backend (of those installed) and the devices."""
    installed = runner.available_backends()
    choices = [b for b in BACKENDS if installed[b]] or ["tensorflow"]
    st.segmented_control("Backend (each run trains in its own worker process with KERAS_BACKEND set)",
                         choices, format_func=BACKENDS.get, key=bind("backend", DEFAULTS.backend),
                         selection_mode="single")
    missing = [BACKENDS[b] for b in BACKENDS if not installed[b]]
    if missing:
        st.caption(f"Not installed here: {', '.join(missing)}.")
    st.radio("Devices", list(DISTRIBUTIONS), key=bind("distribution", DEFAULTS.distribution), horizontal=True,
             format_func=DISTRIBUTIONS.get,
             help="Data parallelism splits each batch (the global batch) over all devices the worker sees: "
                  "keras.distribution.DataParallel on JAX, tf.distribute.MirroredStrategy on TensorFlow. "
                  "The learning rate is not rescaled.")


def training_problem(architecture, request, dataset, available):
    """Why ``architecture`` cannot train as ``request`` asks, for the user; ``None`` when it can."""
    info = DATASETS[dataset]
    if len(architecture.input_shape) == 1:
        return (f"the design takes vectors of {architecture.input_shape[0]} features; the datasets here are "
                "images (use a convolutional stem and basic, bottleneck or highway blocks).")
    if not architecture.include_top:
        return "the design has no classifier (include_top is off): training needs one."
    if tuple(architecture.input_shape) != tuple(info.image_shape) or architecture.classes != info.classes:
        return (f"the design takes {designs.shape_text(architecture.input_shape)} images and {architecture.classes} "
                f"classes; {dataset} has {designs.shape_text(info.image_shape)} images and {info.classes} classes.")
    if not available and dataset != "mnist":
        return f"{dataset} cannot be loaded here (offline)."
    if request.distribution != "none" and request.backend == "torch":
        return ("data parallelism runs on JAX and TensorFlow here; with PyTorch, launch your own "
                "DistributedDataParallel script with torchrun.")
    return None


def estimate(architecture, request):
    """Seconds of training for ``request``, from the speed of the last run of the same design
    in the store; ``None`` when there is none."""
    wanted = architecture.to_dict()
    for run in runner_instance().runs()[:50]:
        if run.config.architecture != wanted:
            continue
        speeds = sorted(e["images_per_second"] for e in run.batches() if e.get("images_per_second"))
        if not speeds:
            continue
        speed = speeds[len(speeds) // 2]
        if request.subset:
            images = request.subset
        elif request.dataset == "mnist_sample":
            images = int(10_000 * (1 - request.validation_split))
        else:
            return None
        return request.epochs * images / speed, speed
    return None


def numbers(events, status):
    """The run's newest numbers, each said with what it is: the cards and the line under them
    come from the same events."""
    loss, accuracy = progress.training_numbers(events)
    held_out = progress.held_out_accuracy(events, status.get("num_validation"))
    batches = records.batches(events)
    speed = batches[-1].get("images_per_second") if batches else None
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Training loss", "–" if loss.value is None else f"{loss.value:.3f}", help=loss.source)
    c2.metric("Training accuracy", "–" if accuracy.value is None else f"{accuracy.value:.1%}",
              help=accuracy.source)
    c3.metric("Held-out accuracy", "–" if held_out.value is None else f"{held_out.value:.1%}",
              help=held_out.source)
    c4.metric("Images / s", f"{speed:.0f}" if speed else "–", help="training images per second, recently")
    st.caption(f"Training: {loss.source} (the weights change as it goes). Held out (never trained on): "
               f"{held_out.source}.")


def status_line(run):
    status = run.status
    config = run.config
    backend = BACKENDS.get(config.backend, config.backend or "?")
    return status, f"`{config.architecture.get('name', '?')}` on {config.dataset.name or '?'} with {backend}"


def show_run(run_id):
    """The run's state, progress, numbers and curves; polled while it trains. A run whose
    files cannot be read is shown as damaged, with the reason."""
    store = runner_instance().store
    try:
        run = store.get(run_id)
    except ValueError as error:
        if run_id not in [r.id for r in store.list()]:
            st.warning(str(error))
            return False
        run = Run.damaged(store.path(run_id), error)
    try:
        return damaged(run) if ui.damage_of(run) else run_panel(run)
    except ui.READ_ERRORS as error:
        return damaged(run, error)


def damaged(run, error=None):
    st.warning(f"**{run.id}** — damaged: {ui.damage_of(run, error)}", icon=":material/broken_image:")
    return False


def run_panel(run):
    status, line = status_line(run)
    events = run.metrics()
    state_name = status.get("state", "?")
    epochs = status.get("epochs") or run.config.recipe.get("epochs") or 1
    now = progress.run_progress(status, run.config.recipe, events, charts.steps_per_epoch(events, run.config),
                                backend=BACKENDS.get(run.config.backend, "its backend"))
    st.markdown(f"{STATE_ICONS.get(state_name, '')} **{run.id}** — {state_name}: {line}")
    text = f"epoch {status.get('epoch', 0)} of {epochs} done · {now.fraction:.0%}"
    if now.phase:
        text = f"{now.phase} · {text}"
    if now.seconds_left is not None:
        text += f" · about {now.seconds_left:.0f} s left"
    if status.get("data_source"):
        text += f" · data: {status['data_source']}"
    if status.get("dtype_policy"):
        text += f" · computes in {status['dtype_policy']}"
    st.progress(now.fraction, text=text)
    numbers(events, status)
    if status.get("message") and state_name not in ("running", "completed"):
        st.caption(status["message"])  # why it stopped; a running or completed run's numbers are above
    if state_name in runner.ACTIVE_STATES:
        st.button("Cancel this run", icon=":material/stop_circle:", key=f"cancel_{run.id}", on_click=cancel,
                  args=(run.id,), type="secondary")
    frame = charts.curve_frame(events, run.id, config=run.config)
    if frame.empty:
        if state_name in runner.ACTIVE_STATES:
            st.info(f"No curves yet: {(now.phase or 'starting').lower()}.", icon=":material/hourglass_top:")
    else:
        c1, c2 = st.columns(2)
        with c1:
            st.altair_chart(charts.learning_curves(frame, "loss", epochs=epochs), width="stretch", height=300,
                            key=f"loss_chart_{run.id}")
        with c2:
            st.altair_chart(charts.learning_curves(frame, "accuracy", epochs=epochs), width="stretch", height=300,
                            key=f"accuracy_chart_{run.id}")
        st.caption("Thin line: training, every few batches (running mean over the epoch so far). Bold "
                   f"points: held out, a fixed {PROBE_IMAGES} images a few times a run, and all of them at each "
                   "epoch's end; training, the whole epoch's mean. Drag to pan, scroll to zoom, hover for values.")
    if run.model_path.exists():
        try_model(run)
        st.download_button("Download the trained model (.keras)", data=run.model_path.read_bytes,
                           file_name=f"{run.id}.keras", mime="application/zip", icon=":material/download:",
                           key=f"download_{run.id}", on_click="ignore")
    return state_name in runner.ACTIVE_STATES


def try_model(run):
    """Predictions of a trained MNIST-shaped model on a few embedded digits."""
    arch = run.config.architecture
    if list(arch.get("input_shape") or []) != [28, 28, 1] or arch.get("classes") != 10:
        return
    if not st.toggle("Try the trained model on 16 digits of the embedded MNIST sample", key=f"try_{run.id}",
                     help="Loads model.keras (with safe_mode) in this app. Some of these digits may have been "
                          "among its training images."):
        return
    try:
        images, labels, predictions = models.predict_sample(run.model_path, arch.get("data_format"))
    except Exception as error:  # a damaged or foreign file must not break the page
        st.warning(f"Could not load or run {run.model_path.name}: {type(error).__name__}: {error}")
        return
    right = int((labels == predictions).sum())
    st.caption(f"Under each digit: the model's answer, ✓ or ✗ (with the true label). {right} of {len(labels)} right.")
    for start in range(0, len(labels), 8):
        for col, i in zip(st.columns(8), range(start, min(start + 8, len(labels)))):
            mark = "✓" if labels[i] == predictions[i] else f"✗ (is {labels[i]})"
            col.image(images[i][:, :, 0], width=56, caption=f"{predictions[i]} {mark}", clamp=True)


def cancel(run_id):
    try:
        runner_instance().cancel(run_id)
        st.toast(f"Asked {run_id} to stop after its current batch.", icon=":material/stop_circle:")
    except ValueError as error:
        st.toast(str(error))


def runner_instance():
    return runner.Runner(ui.runs_root())


def current_request():
    """The `TrainRequest` of the settings widgets, read from the session state (so that a
    button's callback sees values changed in the same interaction)."""
    value = {name: st.session_state.get("train." + name) for name in (
        "dataset", "subset", "epochs", "batch_size", "validation_split", "recipe", "optimizer", "schedule",
        "learning_rate", "seed", "backend", "distribution")}
    return TrainRequest(dataset=value["dataset"] or DEFAULTS.dataset, subset=int(value["subset"] or 0) or None,
                        validation_split=float(value["validation_split"] or 0.0), recipe=value["recipe"] or "quick",
                        epochs=int(value["epochs"] or 1), batch_size=int(value["batch_size"] or 1),
                        optimizer=None if value["optimizer"] in (None, RECIPE) else value["optimizer"],
                        schedule=None if value["schedule"] == RECIPE else value["schedule"] or DEFAULTS.schedule,
                        learning_rate=value["learning_rate"] or None, seed=int(value["seed"] or 0),
                        backend=value["backend"] or DEFAULTS.backend,
                        distribution=value["distribution"] or DEFAULTS.distribution)


def start():
    architecture = ui.checked_architecture(show=False)
    if architecture is None:
        st.session_state["train.error"] = "The design is not valid: fix it on the Design page."
        return
    request = current_request()
    try:
        run_id = runner_instance().launch(architecture, request)
    except (OSError, ValueError) as error:
        st.session_state["train.error"] = f"Could not start the worker: {error}"
        return
    st.session_state["train.follow"] = run_id


def runs_table(runs):
    rows = []
    for run in runs[:50]:
        try:
            rows.append(table_row(run))
        except ui.READ_ERRORS as error:
            rows.append({"run": run.id, "state": "damaged", "design": ui.damage_of(run, error)})
    return pd.DataFrame(rows)


def table_row(run):
    status = run.status
    config = run.config
    epochs = run.epochs()
    best = max((e["val_accuracy"] for e in epochs if e.get("val_accuracy") is not None), default=None)
    return {
        "run": run.id, "state": status.get("state"),
        "design": str(config.architecture.get("name") or run.damage),
        "dataset": str(config.dataset.name),
        "backend": str(BACKENDS.get(config.backend, config.backend)),
        "epochs": f"{status.get('epoch', 0)}/{status.get('epochs', '?')}",
        "best val. accuracy": best,
    }


def page():
    st.title("Train")
    architecture = ui.checked_architecture()
    if architecture is None:
        st.page_link("app_pages/design.py", label="Fix the design", icon=":material/architecture:")
        return
    store = runner_instance()
    with st.container(border=True):
        launch_panel(architecture)
    if "train.error" in st.session_state:
        st.error(st.session_state.pop("train.error"))
    pending_launches(store)
    runs_section(store)


def launch_panel(architecture):
    """The settings, what they will train, how long it may take, and the button that starts it."""
    summary, _ = ui.summary_of(architecture)
    request, problem = settings(architecture)
    images = f"{request.subset:,} training images" if request.subset else "all training images"
    st.markdown(f"**Will train** `{architecture.name}` ({summary['counts']['trainable']:,} trainable parameters) "
                f"on **{request.dataset}** ({images}, {request.validation_split:.0%} held out for validation), "
                f"{request.epochs} epoch{'s' * (request.epochs != 1)} of batches of {request.batch_size}, "
                f"{request.recipe} recipe"
                f"{RATE_PHRASES[request.schedule]}, with **{BACKENDS[request.backend]}** "
                "in a background worker process.")
    guess = estimate(architecture, request)
    if guess:
        st.caption(f"The last run of this design trained at {guess[1]:.0f} images/s: about {guess[0]:.0f} s of "
                   "training, plus the time to start the worker and compile the model.")
    if problem:
        st.warning(f"Cannot train yet: {problem}", icon=":material/warning:")
        if problem.startswith("the design takes") and len(architecture.input_shape) == 3:
            st.button(f"Fit the design to {request.dataset}", on_click=fit_design,
                      icon=":material/fit_screen:", key="fit_design")
    st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=problem is not None,
              on_click=start, key="start_training")


def pending_launches(store):
    """Workers still starting, and those that stopped before their run began (with their log)."""
    for launch in store.pending():
        if launch["state"] == "starting":
            phase = progress.PHASES["starting"].format(backend=BACKENDS.get(launch["backend"], "its backend"))
            st.info(f"**{launch['run_id']}** — {phase}…", icon=":material/hourglass_top:")
            st.progress(0.0, text=f"{phase} · 0%")
        else:
            st.error(f"The worker for {launch['run_id']} stopped before it started training:\n\n"
                     f"```\n{launch['log'] or '(no output)'}\n```")
            st.button("Dismiss", key=f"dismiss_{launch['run_id']}", on_click=store.dismiss, args=(launch["run_id"],))


def runs_section(store):
    """The run picker, the shown run (live while something trains or starts) and the table of all runs."""
    runs = store.runs()
    active = [r.id for r in runs if runner.is_active(r)]
    polling = bool(active) or any(p["state"] == "starting" for p in store.pending())
    if not runs:
        if polling:
            live(True, [])
        else:
            st.caption(f"No runs yet in `{ui.runs_root()}`. Runs keep training if you close or reload this page.")
        return
    ids = [r.id for r in runs]
    st.session_state["train.view"] = shown_run(ids, active)
    st.subheader("Runs")
    # The labels must not change while the page is open (the browser answers with the label):
    # no "running"/"finished" in them; the state is shown below.
    st.selectbox("Show run", ids, key="train.view")
    live(polling, ids)
    with st.expander(f"All runs ({len(runs)})", expanded=False):
        st.dataframe(runs_table(runs), hide_index=True, width="stretch", placeholder="—",
                     column_config={"best val. accuracy": st.column_config.NumberColumn(
                         format="percent", help="The best epoch's, on all its held-out images")})


def shown_run(ids, active):
    """The id of the run to show: a just-started one, else the one picked, else the first active or newest."""
    viewing = st.session_state.get("train.view")
    if st.session_state.get("train.follow") in ids:
        viewing = st.session_state.pop("train.follow")
    if viewing not in ids:
        viewing = active[0] if active else ids[0]
    return viewing


def live(polling, known_ids):
    """The shown run, redrawn every 1.5 s while something trains or starts. When the runs
    change (a worker created its run, or the last one finished) the whole page is redrawn."""

    @st.fragment(run_every=1.5 if polling else None)
    def panel():
        run_id = st.session_state.get("train.view")
        still_active = False
        if run_id:
            still_active = show_run(run_id)
        store = runner_instance()
        runs = store.runs()
        now_active = any(runner.is_active(r) for r in runs) or any(
            p["state"] == "starting" for p in store.pending())
        if [r.id for r in runs] != list(known_ids):
            st.rerun()  # a new run appeared: show it
        if polling and not now_active:
            st.rerun()  # the run finished: redraw the page once and stop polling
        if not polling and (now_active or still_active):
            st.rerun()
        st.caption(f"Updated {datetime.datetime.now():%H:%M:%S}" + (" · refreshing every 1.5 s" if polling else ""))

    panel()


page()
