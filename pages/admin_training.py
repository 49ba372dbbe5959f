"""Training: start a run on a dataset version with chosen hyperparameters, follow it (from any
replica, after a refresh), cancel it, and see past runs."""

import streamlit as st

from dashboard.admin_jobs import dataset_choices, duration, link_to, live_figure, runs_frame
from dashboard.auth import require_page
from dashboard.components import age, escape_markdown
from dashboard.deps import settings, show_error, workspace
from services.errors import JobNotRunning, PulseError
from services.lifecycle.jobs import start_training
from services.lifecycle.runs import TrainingJob, cancel, list_runs, load_run, running_job
from services.model.evaluation import rounded
from services.model.params import FAMILIES, PARAM_NAMES, PARAM_RANGES, TrainParams, validate_params

user = require_page("training")

WATCH = "training_watch"  # the run this session follows (shown with its result once it ends)
DEFAULTS = TrainParams()
FAMILY_HELP = {
    "auto": "auto — train fastText and the linear model, keep the better on validation",
    "fasttext": "fastText only (the format SageMaker BlazingText serves)",
    "linear": "linear SVM only (word and character n-grams; trains locally)",
}

st.title("Training")
ws = workspace()
store = ws.store
try:
    running = running_job(store)
    datasets = dataset_choices()
except PulseError as exc:
    show_error(exc, "check the workspace settings")
    st.stop()


def _label(name: str) -> str:
    text = PARAM_NAMES[name]
    lo, hi = PARAM_RANGES[name]
    fmt = (lambda x: f"{int(x):,}") if float(lo).is_integer() and float(hi).is_integer() else (lambda x: f"{x:g}")
    return escape_markdown(f"{text} ({fmt(lo)}–{fmt(hi)})")


# --- the current run, refreshed every 2 s from the store (so any replica, and a refresh, sees it)
def _show(job: TrainingJob) -> None:
    run = job.run
    cols = st.columns(3)
    cols[0].metric("Status", escape_markdown(job.status))
    cols[1].metric("Elapsed" if job.running else "Took", duration(job.elapsed_seconds()))
    macro_f1 = run.metrics.get("macro_f1")
    cols[2].metric("Gold macro-F1", f"{rounded(macro_f1):.3f}" if macro_f1 is not None else "—")
    ended = f"; ended {age(run.finished_at)}" if run.finished_at and not job.running else ""
    st.caption(
        escape_markdown(f"Run {run.job_name} on dataset {run.dataset} with {run.trainer}, started by {run.started_by} ")
        + f"{age(run.started_at)}{ended}"
    )
    if job.running:
        st.progress(job.progress, text=f"{job.progress:.0%} done")
    if run.log:
        st.code("\n".join(run.log[-10:]), language=None, wrap_lines=True)
    if job.status == "Completed" and run.model_version:
        live = live_figure()
        version = escape_markdown(run.model_version)
        change = rounded(rounded(macro_f1) - rounded(live[1])) if live and macro_f1 is not None else None
        if change is not None and live is not None and -change > settings().gate_margin:
            st.warning(
                f"Model version {version} is registered, but the gate would refuse it: gold macro-F1 "
                f"{rounded(macro_f1 or 0):.3f} is {-change:.3f} below the live {escape_markdown(live[0])} "
                f"({rounded(live[1]):.3f}), more than the {settings().gate_margin:.3f} it allows. Nothing was "
                "deployed; look at its dataset before training again.",
                icon=":material/warning:",
            )
        else:
            where = (
                ""
                if change is None
                else f" It is {abs(change):.3f} {'above' if change > 0 else 'below'} the live model on gold."
                if change
                else " It is level with the live model on gold."
            )
            st.success(
                f"Model version {version} is registered; nothing was deployed.{where} "
                "Compare it with the live model and deploy it on the Models & deploy page."
            )
        link_to("pages/admin_models.py", "Models & deploy", ":material/rocket_launch:")
    elif job.status == "Failed":
        st.error(f"The run failed: {escape_markdown(run.failure_reason or 'no reason recorded')}")
    elif job.status == "Stopped":
        st.info("The run was stopped on request; nothing was registered.")
    elif job.status == "Interrupted":
        st.warning("The process running this job stopped before it finished; nothing was registered.")


@st.fragment(run_every=2)
def current_run(running_at_render: str | None) -> None:
    try:
        job = running_job(store)
        if job is not None:
            st.session_state[WATCH] = job.job_name
        elif st.session_state.get(WATCH):
            job = load_run(store, st.session_state[WATCH])
    except PulseError as exc:
        show_error(exc, "the page tries again in 2 seconds")
        return
    now_running = job.job_name if job is not None and job.running else None
    if now_running != running_at_render:
        st.rerun()  # a run started or ended: refresh the Start button and the table of runs
    st.subheader("Current run" if job is not None and job.running else "Latest run")
    if job is None:
        st.caption("No training run yet.")
        return
    _show(job)
    if job.running and st.button(
        "Cancel run" if job.status == "Running" else "Stopping…",
        icon=":material/stop_circle:",
        disabled=job.status != "Running",
        key="cancel-run",
    ):
        try:
            cancel(store, job.job_name, user.name, role=user.role)
        except JobNotRunning as exc:
            st.info(escape_markdown(exc))
        except PulseError as exc:
            show_error(exc, "try again")
        else:
            st.rerun(scope="fragment")


try:
    runs = list_runs(store)
except PulseError as exc:
    show_error(exc, "check the workspace settings")
    st.stop()
if WATCH not in st.session_state and runs:
    st.session_state[WATCH] = runs[0].job_name  # after a refresh: the newest run, running or not
current_run(running.job_name if running else None)


# --- a new run
def _params() -> TrainParams | None:
    """The hyperparameters as entered, or None (with the error shown) if one is out of range."""
    family = st.selectbox(
        escape_markdown(PARAM_NAMES["family"]),
        FAMILIES,
        format_func=lambda f: FAMILY_HELP[f],
        index=FAMILIES.index(DEFAULTS.family),
    )
    if ws.settings.models_kind == "sagemaker" and ws.settings.sagemaker_model_image:
        st.caption("This workspace trains on SageMaker with the Pulse model image: the same pipeline as locally.")
    elif ws.settings.models_kind == "sagemaker":
        st.caption(
            'This workspace trains on SageMaker BlazingText, which trains fastText only ("auto" trains fastText). '
            "Set PULSE_SAGEMAKER_MODEL_IMAGE to train either family there."
        )
    st.markdown("**fastText**")
    cols = st.columns(6, vertical_alignment="bottom")
    epoch = cols[0].number_input(_label("epoch"), value=DEFAULTS.epoch, step=1)
    lr = cols[1].number_input(_label("lr"), value=DEFAULTS.lr, step=0.05, format="%.3f")
    dim = cols[2].number_input(_label("dim"), value=DEFAULTS.dim, step=10)
    word_ngrams = cols[3].number_input(_label("word_ngrams"), value=DEFAULTS.word_ngrams, step=1)
    minn = cols[4].number_input(
        _label("minn"), value=DEFAULTS.minn, step=1, help="0 and 0: no subwords (character n-grams)"
    )
    maxn = cols[5].number_input(_label("maxn"), value=DEFAULTS.maxn, step=1)
    st.markdown("**Linear model and data**")
    cols = st.columns([1, 2, 3], vertical_alignment="bottom")
    c = cols[0].number_input(
        _label("c"), value=DEFAULTS.c, step=0.05, format="%.4f", help="Regularisation: smaller is smoother"
    )
    balance_classes = cols[1].checkbox(
        escape_markdown(PARAM_NAMES["balance_classes"]),
        value=DEFAULTS.balance_classes,
        help="Repeat rows of the smaller classes up to the largest one's count",
    )
    params = TrainParams(
        epoch=int(epoch),
        lr=float(lr),
        dim=int(dim),
        word_ngrams=int(word_ngrams),
        minn=int(minn),
        maxn=int(maxn),
        c=float(c),
        balance_classes=balance_classes,
        family=family,
    )
    try:
        return validate_params(params)
    except ValueError as exc:
        st.error(f"Check the hyperparameters: {escape_markdown(exc)}.")
        return None


st.subheader("New run")
if not datasets:
    st.info(
        "No dataset version yet. Build one from the current labels with **Build dataset version** on the "
        "Labels & datasets page, then come back here to train on it."
    )
    link_to("pages/admin_data.py", "Labels & datasets", ":material/dataset:")
else:
    names = dict(datasets)
    dataset = st.selectbox("Dataset version (newest first)", list(names), format_func=lambda v: names[v])
    params = _params()
    start = st.button(
        "Start training",
        type="primary",
        icon=":material/play_arrow:",
        disabled=running is not None or params is None,
        help="One run at a time, for the whole workspace"
        if running is None
        else f"{escape_markdown(running.job_name)} is running",
    )
    if running is not None:
        st.caption(f"Run {escape_markdown(running.job_name)} is in progress: a new run can start when it has ended.")
    if start and params is not None:
        try:
            job = start_training(ws, dataset, params, user.name, role=user.role)
        except PulseError as exc:  # another run started meanwhile, bad parameters, a missing dataset
            show_error(exc)
        else:
            st.session_state[WATCH] = job
            st.rerun()


# --- past runs
st.subheader("Past runs")
if not runs:
    st.caption("No training run yet.")
else:
    st.dataframe(
        runs_frame(runs),
        hide_index=True,
        width="stretch",
        column_config={
            "macro-F1": st.column_config.NumberColumn(format="%.3f"),
            "seconds": st.column_config.NumberColumn(format="%.1f"),
        },
    )
