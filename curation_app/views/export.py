"""Export: the kept list as a download or a file, byte-identical to `curate select`."""

from __future__ import annotations

import shlex

import streamlit as st

import backend
from curation_app import services, state
from curation_app.components import downloads, paths, summaries
from curation_app.components import settings as S

FORMATS = {
    "CSV": ".csv",
    "Parquet": ".parquet",
    "JSON": ".json",
    "TXT (one path or id per line)": ".txt",
    "ImageFolder tree of symlinks": "tree",
}
MIME = {".csv": "text/csv", ".parquet": "application/octet-stream", ".json": "application/json", ".txt": "text/plain"}
OVERWRITE = "Overwrite if it exists"


run = state.require_run()
rd = str(run.dir)
s = state.current()

st.title("Export")
st.markdown(state.describe(run) + ".")
st.caption(f"Embeddings by **{summaries.encoder_text(run.encoder)}** · run `{run.key}`.")
sel = services.selection(rd, s)
cli = ["curate", "select", "--workdir", str(run.dir)] + S.cli_selection_args(s, run.n_examples)

fmt_name = st.radio("Format", list(FORMATS), horizontal=True, key="export.format")
fmt = FORMATS[fmt_name]
if fmt == "tree" and not run.has_images:
    st.warning("This run has no images (precomputed embeddings without paths): choose a list format.")
    st.stop()

stem = f"kept_{s['strategy']}_{sel.n_kept}"
c1, c2 = st.columns(2)
with c1:
    st.markdown("#### Download")
    if fmt == "tree":
        st.caption("A symlink tree lives on disk: write it to a folder on the right.")
    else:
        st.download_button(
            f"Download {stem}{fmt}",
            data=lambda: backend.render_selection(sel, fmt),
            file_name=f"{stem}{fmt}",
            # the bytes are made on click: tag the type with what they are made from (components/downloads.py)
            mime=downloads.tagged_mime(MIME[fmt], downloads.frame_identity(sel.kept, run.key, fmt)),
            on_click="ignore",
            type="primary",
            icon=":material/download:",
            key="export.download",
        )
        st.caption(f"{sel.n_kept:,} rows: example_id, path, label, cluster, rank and every score. The same bytes as:")
        st.code(shlex.join(cli + ["--out", f"{stem}{fmt}"]), language="bash", wrap_lines=True)

with c2:
    st.markdown("#### Write to a folder")
    default = services.workdir() / "selections" / (stem + ("" if fmt == "tree" else fmt))
    out_text = st.text_input("Path" if fmt != "tree" else "Folder", value=str(default), key=f"export.path.{stem}{fmt}")
    out, err = paths.check_path(out_text, services.allowed_dirs(), what="output path", for_writing=True)
    if err is None and fmt == "tree" and out.suffix:
        err = f"{out.name} looks like a file: give a folder for the tree"
    elif err is None and fmt != "tree" and out.suffix.lower() != fmt:
        err = f"{out.name} does not end in {fmt}: end the path with {fmt} for {fmt_name}"
    if err:  # under the field, as soon as it is typed
        st.error(err, icon=":material/error:")
    overwrite = st.checkbox(OVERWRITE, key="export.force")
    if st.button("Write", icon=":material/save:", key="export.write") and err is None:  # else: said above
        try:
            if fmt == "tree":
                res = backend.export_tree(run, sel, out, force=overwrite)
                how = (
                    f"{res['symlinks']:,} symlinks"
                    if res["symlinks"]
                    else f"{res['png_written']:,} PNG files (array data set)"
                )
                st.success(f"Wrote {res['out']} ({how}) and {res['out']}.manifest.json")
            else:
                written = backend.write_selection(sel, out, force=overwrite)
                st.success(f"Wrote {written} and {written.name}.manifest.json beside it ({sel.n_kept:,} rows).")
        except backend.CurateError as exc:
            st.error(paths.in_page_words(str(exc), overwrite=OVERWRITE))

st.markdown("#### Manifest")
st.caption(
    "Written beside the list as `<file>.manifest.json`: what was kept and how to reproduce it. "
    "Writing adds an `output` block (path, format, rows, sha256 of the file)."
)
manifest = sel.manifest()
if "encoder" not in manifest.get("run", {}):
    st.caption(
        "It names the run (its key and stage keys) and the encoder by name and `--weights` option; the encoder's "
        f"identity (weights hash, training) is in the run's `run.json` ({summaries.encoder_text(run.encoder)})."
    )
st.json(manifest, expanded=2)
