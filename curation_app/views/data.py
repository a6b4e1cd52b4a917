"""Data: pick the run the app shows, start a run or train an encoder (background jobs), what the run holds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import backend
from backend.jobs import current_run_key, set_current_run
from curation_app import services, state
from curation_app.components import downloads, figures, first_paint, paths, summaries
from curation_app.components import jobs as jobs_panel

# the choices come from the backend's registries, like the CLI's
ENCODERS = backend.ENCODERS.names()
MAP_METHODS = backend.MAP_METHODS.names()
TORCHVISION_SETS = list(backend.TORCHVISION_SETS)
SSL_METHODS = ("simclr", "byol", "dino")
SSL_BACKBONES = ("small-cnn", "resnet18", "resnet34", "resnet50")
RUN_JOB, TRAIN_JOB = "data.run", "data.train-encoder"

SOURCE_KINDS = {
    "demo": "Demo (Fashion-MNIST, offline)",
    "folder": "Folder of images (one sub-folder per class = labels)",
    "manifest": "Manifest (.csv / .parquet with a 'path' column)",
    "torchvision": "torchvision data set (already on disk)",
    "embeddings": "Precomputed embeddings (.npy / .parquet)",
}

st.title("Data")
st.caption(
    "Choose the run the app shows, or compute a new one: embeddings, k-means clusters, difficulty scores and the "
    "2-D map. Long work runs in the background: you can switch pages while it runs."
)

if "data.flash" in st.session_state:
    st.success(st.session_state.pop("data.flash"), icon=":material/check_circle:")

wd = services.workdir()
allowed = services.allowed_dirs()

# Streamlit forgets the state of widgets a page does not draw: keep the form's values across page switches
FORM_KEEP = "data._form"
for _k, _v in st.session_state.get(FORM_KEEP, {}).items():
    if _k not in st.session_state:
        st.session_state[_k] = _v


# ---------------------------------------------------------------------------
# jobs started here: drawn first, so a running job is always in view (and found again after a page switch)


def _run_key_from_log(job) -> str | None:
    for line in reversed(job.log_tail(200).splitlines()):
        if line.startswith("run directory: "):
            return Path(line.split(": ", 1)[1].strip()).name
    return None


def _run_finished(job) -> None:
    if job.state != "succeeded":
        return
    key = _run_key_from_log(job)
    if key is None:
        return
    state.put("run", key)
    current = current_run_key(wd)
    where = (
        "it is also the workdir's current run (what `curate ... --workdir` uses)"
        if current == key
        else "the workdir's current run (what `curate ... --workdir` uses) is unchanged"
    )
    st.session_state["data.flash"] = f"Run `{key}` is ready and selected in the app; {where}."


def _encoder_finished(job) -> None:
    if job.state != "succeeded":
        return
    found = paths.list_encoders(wd)
    if found:  # the newest: offer it in the run form
        st.session_state["new.encoder"] = "ssl"
        st.session_state["new.ssl_weights"] = found[0]["path"]
        st.session_state["data.flash"] = (
            f"Encoder trained: {paths.encoder_label(found[0])}. It is chosen in the run form below "
            "(encoder ssl): start a run to embed the images with it."
        )


# a failed job's message names these forms' fields, not the flags they set
RUN_FIELDS = {"--k": "k (clusters)", "--limit": "Limit per split", "--map": "2-D map", "--encoder": "Encoder"}
RUN_FIELDS["--weights"] = "Weights"
TRAIN_FIELDS = {"--method": "Method", "--backbone": "Backbone", "--epochs": "Epochs", "--device": "Device"}
TRAIN_FIELDS |= {"--image-size": "Image size", "--limit": "Train on at most N images"}
jobs_panel.show(RUN_JOB, on_finish=_run_finished, fields=RUN_FIELDS)
jobs_panel.show(TRAIN_JOB, on_finish=_encoder_finished, fields=TRAIN_FIELDS)
if "data.flash" in st.session_state:  # set by a job that just finished
    st.success(st.session_state.pop("data.flash"), icon=":material/check_circle:")

runs = services.list_runs()
current = current_run_key(wd)

# ---------------------------------------------------------------------------
# pick the run the app shows (latest.json changes only when asked)

if runs:
    keys = [r["key"] for r in runs]
    labels = {r["key"]: paths.run_label(r) for r in runs}
    state.current_run()  # makes sure the selected key exists
    st.selectbox(
        f"Run shown in the app ({len(runs):,} in `{wd}`; the workdir's current run first, then latest first)",
        keys,
        format_func=labels.get,
        **state.bind("run", "data"),
    )
    shown = state.get("run")
    if current == shown:
        st.caption(
            f"This is the workdir's **current run**: `curate select / scaling / info --workdir {wd}` use it too."
        )
    else:
        c1, c2 = st.columns([3, 1.3])
        c1.caption(
            f"The app shows `{shown}`; the workdir's current run (what `curate ... --workdir {wd}` uses) is "
            + (f"`{current}`." if current else "not set.")
            + f" From a terminal this run is `curate info --workdir {wd / 'runs' / shown}`."
        )
        if c2.button("Make it the workdir's current run", icon=":material/push_pin:", key="data.make_current"):
            try:
                set_current_run(wd, shown)
            except backend.CurateError as exc:
                st.error(str(exc))
            else:
                st.session_state["data.flash"] = f"`{shown}` is now the workdir's current run."
                st.rerun()
else:
    st.info(f"No finished run in `{wd}` yet: start one below.")


# ---------------------------------------------------------------------------
# start a run / train an encoder


def _checked_path(text: str, what: str, *, kind: str = "any") -> str | None:
    """The resolved path, or None after showing why not, right under the input."""
    if not (text or "").strip():
        return None
    p, err = paths.check_path(text, allowed, what=what)
    if err is None and not p.exists():
        err = f"there is no {what} at {p}: check the path"
    elif err is None and kind == "folder" and not p.is_dir():
        err = f"{p} is a file: give the folder that holds the images"
    elif err is None and kind == "file" and not p.is_file():
        err = f"{p} is a folder: give the file itself"
    if err:
        st.error(err, icon=":material/error:")
        return None
    return str(p)


def _source_inputs() -> dict:
    """The source widgets; returns {kind, spec, manifest, data_root, problem} (problem: why it cannot start)."""
    kind = st.radio("Source", list(SOURCE_KINDS), format_func=SOURCE_KINDS.get, key="new.kind")
    out: dict = {"kind": kind, "spec": None, "manifest": None, "data_root": None, "problem": None}
    if kind == "folder":
        text = st.text_input("Image folder", key="new.folder", placeholder="/data/pets")
        out["spec"] = _checked_path(text, "image folder", kind="folder")
        out["problem"] = None if out["spec"] else ("type the image folder" if not text.strip() else "see above")
    elif kind == "manifest":
        text = st.text_input("Manifest file", key="new.manifest", placeholder="/data/pets/manifest.csv")
        out["spec"] = _checked_path(text, "manifest", kind="file")
        out["problem"] = None if out["spec"] else ("type the manifest file" if not text.strip() else "see above")
    elif kind == "torchvision":
        name = st.selectbox("Data set", TORCHVISION_SETS, key="new.tv")
        root = st.text_input(
            "Data root (holds <NAME>/raw or the data set's files)", key="new.root", value=str(wd / "data")
        )
        out["data_root"] = _checked_path(root, "data root", kind="folder")
        out["spec"] = f"torchvision:{name}"
        out["problem"] = None if out["data_root"] else "give an existing data root"
    elif kind == "embeddings":
        text = st.text_input("Embeddings file (.npy N x D or .parquet)", key="new.emb")
        out["spec"] = _checked_path(text, "embeddings file", kind="file")
        man = st.text_input("Manifest for the embeddings (example_id, label, split; optional)", key="new.emb_manifest")
        out["manifest"] = _checked_path(man, "manifest", kind="file")
        if not out["spec"]:
            out["problem"] = "type the embeddings file" if not text.strip() else "see above"
        elif man.strip() and not out["manifest"]:
            out["problem"] = "see above"
    else:
        out["spec"] = "demo"
        st.caption("Fashion-MNIST from Debian's dataset-fashion-mnist, or scikit-learn's digits without it.")
    return out


def _whole_number(label: str, *, key: str, value: int, step: int, minimum: int, rule: str, help=None, where=st):
    """A number field without bounds in the browser (a bound there turns the field red and keeps the old
    value without a word); a value out of range is said under the field.  Returns (value, problem)."""
    n = int(where.number_input(label, value=value, step=step, key=key, help=help))
    if n < minimum:
        where.error(f"{label.split(' (')[0]}: {rule}", icon=":material/error:")
        return n, f"{label.split(' (')[0].lower()} {rule}"
    return n, None


def _limit_input(key: str) -> tuple[int | None, str | None]:
    n, problem = _whole_number(
        "Limit per split (0 = all examples)",
        key=key,
        value=0,
        step=1000,
        minimum=0,
        rule="0 (all examples) or more",
        help="a seeded sample, for a quick look",
    )
    return (n or None), problem


def _run_tab(src: dict, busy: bool) -> None:
    c1, c2 = st.columns(2)
    with c1:
        limit, limit_problem = _limit_input("new.limit")
        k, k_problem = _whole_number(
            "k (clusters; 0 = number of classes, or sqrt(N/2) without labels)",
            key="new.k",
            value=0,
            step=1,
            minimum=0,
            rule="0 (automatic) or a number of clusters",
        )
        map_method = st.selectbox(
            "2-D map", MAP_METHODS, key="new.map", help="umap is slower and shows clusters better; pca is instant"
        )
    weights, weights_problem = None, None
    with c2:
        encoder = st.selectbox(
            "Encoder",
            ENCODERS,
            key="new.encoder",
            disabled=src["kind"] == "embeddings",
            help="pixels needs no weights; ssl is an encoder trained on your images (the tab on the right); "
            "torchvision / timm / open_clip models need local weights",
        )
        if src["kind"] != "embeddings" and encoder == "ssl":
            trained = paths.list_encoders(wd)
            if trained:
                options = [e["path"] for e in trained]
                if st.session_state.get("new.ssl_weights") not in options:
                    st.session_state["new.ssl_weights"] = options[0]
                by_path = {e["path"]: e for e in trained}
                weights = st.selectbox(
                    "Trained encoder",
                    options,
                    format_func=lambda p: paths.encoder_label(by_path[p]),
                    key="new.ssl_weights",
                )
            else:
                weights_problem = "no encoder is trained in this workdir yet: train one in the next tab"
                st.error(weights_problem, icon=":material/error:")
        elif src["kind"] != "embeddings" and encoder != "pixels":
            text = st.text_input(
                "Weights (file or folder; empty = the model's weights in the local caches; random = untrained)",
                key="new.weights",
            )
            if text.strip() in ("random", "imagenet"):  # the CLI's words, not paths
                weights = text.strip()
            elif text.strip():
                weights = _checked_path(text, "weights file")
                weights_problem = None if weights else "see above"
    first = current is None
    make_current = st.checkbox(
        "Make it the workdir's current run (what `curate select / scaling / info --workdir` use)",
        value=first,
        disabled=first,
        key="new.make_current.first" if first else "new.make_current",  # its own widget once a current run exists
        help="Off: the app shows the new run, and the command line keeps the run it had. "
        "A workdir without a current run always gets this one.",
    )
    problem = src["problem"] or weights_problem or limit_problem or k_problem
    clicked = st.button("Start the run", type="primary", icon=":material/play_arrow:", key="new.start", disabled=busy)
    if busy:
        st.caption("A run started here is still going (above): wait for it or cancel it.")
    if not clicked:
        return
    if problem:
        st.error(f"Cannot start: {problem}.", icon=":material/error:")
        return
    argv = ["run", "--source", src["spec"], "--workdir", str(wd), "--map", map_method]
    if src["kind"] != "embeddings":
        argv += ["--encoder", encoder]
    for flag, value in (
        ("--weights", weights),
        ("--k", int(k) or None),
        ("--limit", limit),
        ("--manifest", src["manifest"]),
        ("--data-root", src["data_root"]),
    ):
        if value is not None:
            argv += [flag, str(value)]
    if not (make_current or first):
        argv.append("--keep-current")
    label = f"Run on {src['spec'] if src['kind'] != 'demo' else 'the demo'}"
    jobs_panel.start(argv, label=label, key=RUN_JOB)
    st.rerun()


def _train_tab(src: dict, busy: bool) -> None:
    st.caption(
        "Self-supervised (no labels needed), offline, on these images; a checkpoint every epoch, so a cancelled "
        "training resumes. On a CPU keep the small backbone at the data's own size. The trained encoder "
        "appears as encoder `ssl` in the run tab."
    )
    if src["kind"] == "embeddings":
        st.info("Training needs images: choose a folder, a manifest, torchvision or the demo.")
        return
    c1, c2, c3 = st.columns(3)
    method = c1.radio("Method", SSL_METHODS, horizontal=True, key="train.method")
    backbone = c2.selectbox("Backbone", SSL_BACKBONES, key="train.backbone")
    epochs, epochs_problem = _whole_number(
        "Epochs", key="train.epochs", value=10, step=1, minimum=1, rule="at least 1", where=c3
    )
    c1, c2, c3 = st.columns(3)
    size, size_problem = _whole_number(
        "Image size (px; 0 = the data's own, or 32 / 64)",
        key="train.size",
        value=0,
        step=4,
        minimum=0,
        rule="0 (the default) or at least 8 pixels",
        where=c1,
    )
    if 0 < size < 8:
        c1.error("Image size: 0 (the default) or at least 8 pixels", icon=":material/error:")
        size_problem = "image size 0 (the default) or at least 8 pixels"
    limit, limit_problem = _whole_number(
        "Train on at most N images (0 = all)",
        key="train.limit",
        value=0,
        step=1000,
        minimum=0,
        rule="0 (all) or more",
        where=c2,
    )
    device = c3.radio("Device", ("auto", "cpu", "cuda"), horizontal=True, key="train.device")
    clicked = st.button(
        "Train the encoder", type="primary", icon=":material/model_training:", key="train.start", disabled=busy
    )
    if busy:
        st.caption("A training started here is still going (above): wait for it or cancel it.")
    if not clicked:
        return
    problem = src["problem"] or epochs_problem or size_problem or limit_problem
    if problem:
        st.error(f"Cannot start: {problem}.", icon=":material/error:")
        return
    argv = ["train-encoder", "--source", src["spec"], "--workdir", str(wd)]
    argv += ["--method", method, "--backbone", backbone, "--epochs", str(int(epochs)), "--device", device]
    if int(size):
        argv += ["--image-size", str(int(size))]
    if int(limit):
        argv += ["--limit", str(int(limit))]
    if src["data_root"]:
        argv += ["--data-root", src["data_root"]]
    jobs_panel.start(argv, label=f"Training a {method} encoder ({backbone}, {int(epochs):,} epochs)", key=TRAIN_JOB)
    st.rerun()


with st.expander("Start a new run or train an encoder", expanded=not runs, icon=":material/add:"):
    st.caption(f"Typed paths must lie inside: {', '.join(f'`{d}`' for d in allowed)}.")
    source = _source_inputs()
    tab_run, tab_train = st.tabs(["Compute a run", "Train an encoder (self-supervised)"])
    with tab_run:
        _run_tab(source, busy=jobs_panel.active(RUN_JOB) is not None)
    with tab_train:
        _train_tab(source, busy=jobs_panel.active(TRAIN_JOB) is not None)

st.session_state[FORM_KEEP] = {
    k: v
    for k, v in st.session_state.items()
    if isinstance(k, str) and k.startswith(("new.", "train.")) and k not in ("new.start", "train.start")  # buttons
}

if not runs:
    st.stop()

# ---------------------------------------------------------------------------
# summary of the selected run

run = state.require_run()
s = run.summary()
st.subheader("Summary")
m = st.columns(5)
m[0].metric("Examples (pool)", f"{s['examples']:,}")
m[1].metric("Classes", f"{len(s.get('classes') or {}):,}" if run.has_labels else "unlabelled")
m[2].metric("Held out (never pruned)", f"{s['holdout']:,}")
m[3].metric("Skipped files", f"{s['skipped']:,}")
m[4].metric("Clusters (k)", f"{s['k']:,}")
st.markdown(
    f"**Source:** {s['source']}  \n**Image size:** {services.image_size(str(run.dir), run.key)} · "
    f"**Encoder:** `{summaries.encoder_text(run.encoder)}` ({s['embedding_dim']:,}-d embeddings) · "
    f"**map:** {run.config['params'].get('map_method')} · **scores:** "
    + ", ".join(f"`{c}`" for c in s["scores"])
    + f"  \n**Run folder:** `{s['run_dir']}`"
)

if run.has_labels:
    counts = pd.Series(s["classes"]).sort_index()
    c1, c2 = st.columns([2, 1])
    first_paint.plotly_chart(
        where=c1,
        fig=figures.class_counts_figure(list(counts.index), counts.to_numpy(), title="Examples per class in the pool"),
        key="data.classes",
    )
    c2.dataframe(
        counts.rename("examples").rename_axis("class").reset_index(),
        hide_index=True,
        width="stretch",
        height=min(420, 35 * (len(counts) + 1) + 3),
        column_config={"examples": st.column_config.NumberColumn(format="localized")},
    )
else:
    st.info("This run has no labels: class views and class balance are off; everything else works.")

st.subheader("Skipped files")
sk = run.skipped
if len(sk):
    st.dataframe(sk, hide_index=True, width="stretch", height=min(400, 36 * (len(sk) + 1)))
    skipped_csv = sk.to_csv(index=False)
    st.download_button(
        "Download skipped.csv",
        skipped_csv,
        file_name="skipped.csv",
        mime=downloads.exact_mime(skipped_csv, "text/csv"),
        on_click="ignore",
        icon=":material/download:",
        key="data.skipped",
    )
else:
    st.caption("No file was skipped: every image could be read.")
