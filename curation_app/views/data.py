"""Data: pick a finished run or start one; what the run holds."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import backend
from curation_app import services, state
from curation_app.components import figures, paths
from curation_app.components.progress import StreamlitReporter

# the choices come from the backend's registries, like the CLI's
ENCODERS = backend.ENCODERS.names()
MAP_METHODS = backend.MAP_METHODS.names()
TORCHVISION_SETS = list(backend.TORCHVISION_SETS)

SOURCE_KINDS = {
    "demo": "Demo (Fashion-MNIST, offline)",
    "folder": "Folder of images (one sub-folder per class = labels)",
    "manifest": "Manifest (.csv / .parquet with a 'path' column)",
    "torchvision": "torchvision data set (already on disk)",
    "embeddings": "Precomputed embeddings (.npy / .parquet)",
}

st.title("Data")
st.caption(
    "Choose a finished run, or compute a new one: embeddings, k-means clusters, difficulty scores and the 2-D map."
)

if "data.flash" in st.session_state:
    st.success(st.session_state.pop("data.flash"), icon=":material/check_circle:")

runs = services.list_runs()
allowed = services.allowed_dirs()

# ---------------------------------------------------------------------------
# pick a run

if runs:
    keys = [r["key"] for r in runs]
    labels = {r["key"]: paths.run_label(r) for r in runs}
    state.current_run()  # makes sure the selected key exists
    st.selectbox(
        f"Run ({len(runs)} in `{services.workdir()}`, latest first)",
        keys,
        format_func=labels.get,
        **state.bind("run", "data"),
    )
else:
    st.info(f"No finished run in `{services.workdir()}` yet: start one below.")

# ---------------------------------------------------------------------------
# start a run


def _start_form() -> None:
    kind = st.radio("Source", list(SOURCE_KINDS), format_func=SOURCE_KINDS.get, horizontal=False, key="new.kind")
    c1, c2 = st.columns(2)
    spec, manifest, data_root = None, None, None
    with c1:
        if kind == "folder":
            spec = st.text_input("Image folder", key="new.folder", placeholder="/data/pets")
        elif kind == "manifest":
            spec = st.text_input("Manifest file", key="new.manifest", placeholder="/data/pets/manifest.csv")
        elif kind == "torchvision":
            name = st.selectbox("Data set", TORCHVISION_SETS, key="new.tv")
            data_root = st.text_input(
                "Data root (holds <NAME>/raw or the data set's files)",
                key="new.root",
                value=str(services.workdir() / "data"),
            )
            spec = f"torchvision:{name}"
        elif kind == "embeddings":
            spec = st.text_input("Embeddings file (.npy N x D or .parquet)", key="new.emb")
            manifest = (
                st.text_input(
                    "Manifest for the embeddings (example_id, label, split; optional)", key="new.emb_manifest"
                )
                or None
            )
        else:
            spec = "demo"
            st.caption("Fashion-MNIST from Debian's dataset-fashion-mnist, or scikit-learn's digits without it.")
        limit = st.number_input(
            "Limit per split (0 = all examples)",
            min_value=0,
            value=0,
            step=1000,
            key="new.limit",
            help="a seeded sample, for a quick look",
        )
    with c2:
        encoder = st.selectbox(
            "Encoder",
            ENCODERS,
            key="new.encoder",
            disabled=kind == "embeddings",
            help="pixels needs no weights; torchvision models need cached or local weights",
        )
        k = st.number_input(
            "k (clusters; 0 = number of classes, or sqrt(N/2) without labels)",
            min_value=0,
            value=0,
            step=1,
            key="new.k",
        )
        map_method = st.selectbox(
            "2-D map", MAP_METHODS, key="new.map", help="umap is slower and shows clusters better; pca is instant"
        )
    if st.button("Start the run", type="primary", icon=":material/play_arrow:", key="new.start"):
        _start(kind, spec, manifest, data_root, encoder, int(k) or None, map_method, int(limit) or None)


def _start(kind, spec, manifest, data_root, encoder, k, map_method, limit) -> None:
    # typed paths must stay inside the allowed folders
    to_check = []
    if kind in ("folder", "manifest", "embeddings"):
        to_check.append(("source", spec))
    if manifest:
        to_check.append(("manifest", manifest))
    if data_root:
        to_check.append(("data root", data_root))
    for what, text in to_check:
        p, err = paths.check_path(text, allowed, what=what)
        if err:
            st.error(err)
            return
        if what == "source":
            spec = str(p)
        elif what == "manifest":
            manifest = str(p)
        else:
            data_root = str(p)
    box = st.status(f"Computing {spec}...", expanded=True)
    rep = StreamlitReporter(box)
    try:
        run = backend.run_pipeline(
            spec,
            services.workdir(),
            encoder=encoder,
            k=k,
            map_method=map_method,
            manifest=manifest,
            data_root=data_root,
            limit=limit,
            reporter=rep,
        )
    except backend.CurateError as exc:
        box.update(label="The run stopped", state="error")
        st.error(str(exc))
        return
    rep.end_stage()
    cached = sum(1 for _, c in rep.stages if c)
    box.update(
        label=f"Run ready: {run.n_examples:,} examples ({cached} cached stage(s) reused)",
        state="complete",
        expanded=False,
    )
    state.put("run", run.dir.name)
    reused = [name for name, c in rep.stages if c]
    st.session_state["data.flash"] = f"Run `{run.dir.name}` is ready and selected" + (
        f" (cached stages reused: {', '.join(reused)})." if reused else "."
    )
    st.rerun()


with st.expander("Start a new run", expanded=not runs, icon=":material/add:"):
    st.caption(f"Typed paths must lie inside: {', '.join(f'`{d}`' for d in allowed)}.")
    _start_form()

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
    f"**Source:** {s['source']}  \n**Image size:** {s['image_size']} · "
    f"**Encoder:** `{s['encoder']}` ({s['embedding_dim']}-d embeddings) · "
    f"**map:** {run.config['params'].get('map_method')} · **scores:** "
    + ", ".join(f"`{c}`" for c in s["scores"])
    + f"  \n**Run folder:** `{s['run_dir']}`"
)

if run.has_labels:
    counts = pd.Series(s["classes"]).sort_index()
    c1, c2 = st.columns([2, 1])
    c1.plotly_chart(
        figures.class_counts_figure(list(counts.index), counts.to_numpy(), title="Examples per class in the pool"),
        key="data.classes",
    )
    c2.dataframe(
        counts.rename("examples").rename_axis("class").reset_index(),
        hide_index=True,
        width="stretch",
        height=min(420, 36 * (len(counts) + 1)),
    )
else:
    st.info("This run has no labels: class views and class balance are off; everything else works.")

st.subheader("Skipped files")
sk = run.skipped
if len(sk):
    st.dataframe(sk, hide_index=True, width="stretch", height=min(400, 36 * (len(sk) + 1)))
    st.download_button(
        "Download skipped.csv",
        sk.to_csv(index=False),
        file_name="skipped.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="data.skipped",
    )
else:
    st.caption("No file was skipped: every image could be read.")
