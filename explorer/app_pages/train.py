"""Train: pick data (a named dataset, an image folder, an uploaded zip), recipe, backend and
processes, start a worker, watch its curves live, cancel it."""

import contextlib
import functools

import streamlit as st

from explorer import charts, designs, launch, models, progress, run_rows, runner, state, ui, uploads
from explorer.launch import DEFAULTS, RECIPE
from explorer.runner import BACKENDS
from keras_resnets.data.datasets import DATASETS
from keras_resnets.data.transforms import TRANSFORMS
from keras_resnets.runs.store import Run
from keras_resnets.training import Recipe, TrainingRequest
from keras_resnets.training.probe import PROBE_IMAGES
from keras_resnets.training.recipe import default_subset

DISTRIBUTIONS = {"none": "One device", "data_parallel": "Data parallel over all devices"}
PROCESSES_HELP = ("Trains the run with this many processes on this machine, each backend on its own engine: "
                  "jax.distributed, MultiWorkerMirroredStrategy, torch.distributed DDP (started by torchrun). The "
                  "batch size is global: each process trains its share, so it must divide by the processes, and "
                  "an epoch's last partial batch is left out. The embedded sample and image folders can be shared, "
                  "tensorflow-datasets streams cannot. Process 0 writes the run and its curves; every process keeps "
                  "its output in logs/process-<i>.log of the run. Cancel stops them all.")


@st.cache_data(ttl=120, show_spinner=False)
def reachable(name: str) -> bool:
    """`launch.reachable`, cached."""
    return launch.reachable(name)


bind = functools.partial(ui.bind, "train.")
SCHEDULES = {RECIPE: "the recipe's", "constant": "constant", "step": "÷10 at 50% and 75%"}


def fit_design():
    state.set_design(launch.fitted(state.design(), current_data(current_request())))


def settings(architecture):
    """The settings widgets; returns ``(TrainRequest, its DataFacts, problem or None)``."""
    validation_folder, found = data_fields()
    size_fields(validation_folder)
    recipe_fields()
    backend_fields()
    ui.keep_settings("train.", launch.SETTINGS)
    request = current_request()
    with st.spinner("Reading the folder's images…") if found is not None else contextlib.nullcontext():
        data = current_data(request)
    if found is not None:
        with found:
            show_found(request, data)
    return request, data, launch.training_problem(architecture, request, data)


def data_fields():
    """The widgets of the data: where it comes from, then the dataset, or the folder (typed or
    an uploaded zip), a validation folder and the input transforms. Returns whether a validation
    folder is given and, for a folder, the place that shows what it holds."""
    source = st.radio("Data", list(launch.SOURCES), key=bind("source", "named"), horizontal=True,
                      format_func=launch.SOURCES.get, on_change=source_changed)
    if source == "named":
        dataset_fields()
        return False, None
    if source == "folder":
        st.text_input("Image folder", key=bind("folder", ""), placeholder="/path/to/images",
                      help="A folder with one subfolder of JPEG or PNG images per class (cats/1.jpg, dogs/2.png): "
                           "the subfolders' names are the classes.")
    else:
        upload_field()
    c1, c2 = st.columns([3, 2])
    with c1:
        validation = st.text_input("Validation folder (optional)", key=bind("validation_folder", ""),
                                   placeholder="/path/to/held-out images",
                                   help="Held-out images in subfolders named as the training folder's classes; "
                                        "they replace the validation fraction.")
    with c2:
        st.selectbox("Input transforms", list(TRANSFORMS), key=bind("transforms", "none"),
                     format_func=lambda name: TRANSFORMS[name].description,
                     help="none and the augmentations keep the images' size, so they must all have one; imagenet "
                          "crops and resizes any size to 224×224 (torchvision's ImageNet recipe).")
    return bool(validation.strip()), st.container()


def source_changed():
    """Sets the subset to the new data's default, as the command line does (`default_subset`):
    the first minute's for the embedded sample, all images of a folder, however few."""
    dataset = st.session_state.get("train.dataset") if st.session_state["train.source"] == "named" else None
    st.session_state["train.subset"] = default_subset(dataset) or 0


def upload_field():
    """The zip's uploader, and where it was extracted or why it was refused."""
    st.file_uploader("A zip of an image folder", type=["zip"], key="train.zip", on_change=extract_upload,
                     max_upload_size=uploads.MAX_ZIP_MB,
                     help=f"The class subfolders at its top, or in its one top folder. It is extracted once into "
                          f"`{ui.runs_root()}/{uploads.UPLOADS}/` (at most {uploads.MAX_BYTES / 2**20:,.0f} MB, "
                          f"{uploads.MAX_FILES:,} files); the same zip again reuses that folder.")
    if "train.upload_error" in st.session_state:
        st.error(st.session_state["train.upload_error"], icon=":material/folder_zip:")
    elif st.session_state.get("train." + launch.UPLOADED):
        st.caption(f"Extracted into `{st.session_state['train.' + launch.UPLOADED]}`.")


def extract_upload():
    """Extracts the uploaded zip (`uploads.extract_zip`) and keeps its folder, or why it is refused."""
    upload = st.session_state.get("train.zip")
    for key in ("train." + launch.UPLOADED, "train.upload_error"):
        st.session_state.pop(key, None)
    if upload is None:
        return
    try:
        st.session_state["train." + launch.UPLOADED] = str(uploads.extract_zip(upload.getvalue(), ui.runs_root()))
    except ValueError as error:
        st.session_state["train.upload_error"] = f"{upload.name} is refused: {error}"
    except OSError as error:
        st.session_state["train.upload_error"] = f"{upload.name} could not be extracted: {error}"


def show_found(request, data):
    """What the folder holds, or why it cannot be used (the library's message)."""
    if not request.dataset:
        st.info(data.problem.capitalize(), icon=":material/folder_open:")
    elif data.problem:
        st.error(data.problem, icon=":material/folder_off:")
    else:
        st.success(launch.data_text(data), icon=":material/folder:")


def dataset_fields():
    """The dataset's selectbox, and whether it can be loaded here."""
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


def size_fields(validation_folder):
    """The widgets of how much to train: images, epochs, batch size and the validation fraction
    (none with a ``validation_folder``)."""
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
                        key=bind("validation_split", DEFAULTS.validation_split), disabled=validation_folder,
                        help="Held out of the training data, evaluated after each epoch; none when a validation "
                             "folder is given (its images are held out instead).")


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
    """The widgets of where the worker trains: the backend (of those installed), the devices and
    the processes."""
    installed = runner.available_backends()
    st.segmented_control("Backend (each run trains in its own worker process with KERAS_BACKEND set)",
                         runner.backend_choices(installed), format_func=BACKENDS.get,
                         key=bind("backend", DEFAULTS.backend), selection_mode="single")
    missing = [BACKENDS[b] for b in BACKENDS if not installed[b]]
    if missing:
        st.caption(f"Not installed here: {', '.join(missing)}.")
    c1, c2 = st.columns([3, 1])
    with c1:
        st.radio("Devices", list(DISTRIBUTIONS), key=bind("distribution", DEFAULTS.distribution), horizontal=True,
                 format_func=DISTRIBUTIONS.get,
                 help="Data parallelism splits each batch (the global batch) over all devices of the worker "
                      "process: keras.distribution.DataParallel on JAX, tf.distribute.MirroredStrategy on "
                      "TensorFlow (with PyTorch, use several processes). The learning rate is not rescaled.")
    with c2:
        st.number_input("Processes", min_value=1, max_value=launch.MAX_PROCESSES, step=1,
                        key=bind("processes", DEFAULTS.processes), help=PROCESSES_HELP)


def numbers(events, status):
    """The run's newest numbers, each said with what it is (`progress.numbers`)."""
    cards, line = progress.numbers(events, status)
    for column, (label, value, source) in zip(st.columns(4), cards):
        column.metric(label, value, help=source)
    st.caption(line)


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
        return damaged(run) if run_rows.damage_of(run) else run_panel(run)
    except run_rows.READ_ERRORS as error:
        return damaged(run, error)


def damaged(run, error=None):
    st.warning(f"**{run.id}** — damaged: {run_rows.damage_of(run, error)}", icon=":material/broken_image:")
    return False


def run_panel(run):
    status = run.status
    events = run.metrics()
    state_name = status.get("state", "?")
    request = TrainingRequest.from_config(run.config)
    epochs = status.get("epochs") or request.recipe.epochs
    now = progress.run_progress(status, request.recipe, events, charts.steps_per_epoch(events, run.config),
                                backend=BACKENDS.get(run.config.backend, "its backend"),
                                processes=request.processes)
    st.markdown(f"{ui.STATE_ICONS.get(state_name, '')} **{run.id}** — {state_name}: {run_rows.run_line(run)}")
    st.progress(now.fraction, text=progress.bar_text(status, now, epochs))
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
        held_out = (f"a fixed {PROBE_IMAGES} images a few times a run, and all of them at each epoch's end"
                    if request.processes == 1 else "all of them at each epoch's end (several processes make "
                    "no probes between)")
        st.caption("Thin line: training, every few batches (running mean over the epoch so far). Bold "
                   f"points: held out, {held_out}; training, the whole epoch's mean. Drag to pan, scroll to zoom, "
                   "hover for values.")
    if run.model_path.exists():
        try_model(run, request.architecture)
        st.download_button("Download the trained model (.keras)", data=run.model_path.read_bytes,
                           file_name=f"{run.id}.keras", mime="application/zip", icon=":material/download:",
                           key=f"download_{run.id}", on_click="ignore")
    return state_name in runner.ACTIVE_STATES


def try_model(run, architecture):
    """Predictions of a trained MNIST-shaped model on a few embedded digits."""
    if not designs.takes_sample_digits(architecture):
        return
    if not st.toggle("Try the trained model on 16 digits of the embedded MNIST sample", key=f"try_{run.id}",
                     help="Loads model.keras (with safe_mode) in this app. Some of these digits may have been "
                          "among its training images."):
        return
    try:
        images, labels, predictions = models.predict_sample(run.model_path, architecture.data_format)
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
    names = (*launch.SETTINGS, launch.UPLOADED)
    return launch.request_of({name: st.session_state.get("train." + name) for name in names})


def current_data(request):
    """`launch.data_of` with the cached `reachable`."""
    return launch.data_of(request, reachable)


def start():
    architecture = ui.checked_architecture(show=False)
    if architecture is None:
        st.session_state["train.error"] = "The design is not valid: fix it on the Design page."
        return
    request = current_request()
    # The button was drawn before this interaction: a folder typed in it may not do.
    problem = launch.training_problem(architecture, request, current_data(request))
    if problem:
        st.session_state["train.error"] = f"Cannot start: {problem}"
        return
    try:
        run_id = runner_instance().launch(request.training_request(architecture), request.backend)
    except (OSError, ValueError) as error:
        st.session_state["train.error"] = f"Could not start the worker: {error}"
        return
    st.session_state["train.follow"] = run_id


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
    request, data, problem = settings(architecture)
    st.markdown(launch.plan_text(architecture, request, summary["counts"]["trainable"]))
    guess = launch.estimate(architecture, request, data, runner_instance().runs())
    if guess:
        st.caption(f"The last run of this design trained at {guess[1]:.0f} images/s: about {guess[0]:.0f} s of "
                   "training, plus the time to start the worker and compile the model.")
    if problem and (problem != data.problem or request.dataset in DATASETS):  # a folder's is shown by its fields
        st.warning(f"Cannot train yet: {problem}", icon=":material/warning:")
        if problem.startswith("the design takes") and len(architecture.input_shape) == 3:
            st.button(f"Fit the design to {launch.data_name(request)}", on_click=fit_design,
                      icon=":material/fit_screen:", key="fit_design")
    st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=problem is not None,
              on_click=start, key="start_training")


def pending_launches(store):
    """Workers still starting, and those that stopped before their run began (with their log)."""
    for pending in store.pending():
        if pending["state"] == "starting":
            phase = progress.PHASES["starting"].format(backend=BACKENDS.get(pending["backend"], "its backend"))
            st.info(f"**{pending['run_id']}** — {phase}…", icon=":material/hourglass_top:")
            st.progress(0.0, text=f"{phase} · 0%")
        else:
            st.error(f"The worker for {pending['run_id']} stopped before it started training:\n\n"
                     f"```\n{pending['log'] or '(no output)'}\n```")
            st.button("Dismiss", key=f"dismiss_{pending['run_id']}", on_click=store.dismiss, args=(pending["run_id"],))


def runs_section(store):
    """The run picker, the shown run (live while something trains or starts) and the table of all runs."""
    runs = store.runs()
    active = [r.id for r in runs if runner.is_active(r)]
    polling = bool(active) or any(p["state"] == "starting" for p in store.pending())
    if not runs:
        if polling:
            live(store, True, [])
        else:
            st.caption(f"No runs yet in `{ui.runs_root()}`. Runs keep training if you close or reload this page.")
        return
    ids = [r.id for r in runs]
    st.session_state["train.view"] = ui.shown_run("train.", ids, active)
    st.subheader("Runs")
    # The labels must not change while the page is open (the browser answers with the label):
    # no "running"/"finished" in them; the state is shown below.
    st.selectbox("Show run", ids, key="train.view")
    live(store, polling, ids)
    with st.expander(f"All runs ({len(runs)})", expanded=False):
        st.dataframe(run_rows.runs_table(runs), hide_index=True, width="stretch", placeholder="—",
                     column_config={"best val. accuracy": st.column_config.NumberColumn(
                         format="percent", help="The best epoch's, on all its held-out images")})


def live(store, polling, known_ids):
    """The shown run, redrawn every 1.5 s while something trains or starts (`ui.live`)."""

    def show():
        run_id = st.session_state.get("train.view")
        return show_run(run_id) if run_id else False

    def now():
        runs = store.runs()
        return [r.id for r in runs], any(runner.is_active(r) for r in runs) or any(
            p["state"] == "starting" for p in store.pending())

    ui.live(polling, known_ids, show, now, stamp_idle=True)


page()
