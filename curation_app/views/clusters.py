"""Clusters: one card per k-means cluster; click through to all members."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from curation_app import services, state
from curation_app.components import cluster_members, figures, first_paint, gallery, summaries

CARDS_PER_PAGE = 12
SORTS = {
    "size": ("size", "Size"),
    "tightness": ("tightness", "Tightness (mean similarity to the centroid = redundancy)"),
    "purity": ("purity", "Class purity"),
    "difficulty": ("mean_difficulty", "Mean difficulty"),
    "kept": ("kept_share", "Share kept"),
}

MEMBERS_PER_PAGE = 36


@st.fragment
def member_grid(run, positions: np.ndarray, kept_mask: np.ndarray, *, key: str, score: str) -> None:
    """Paged thumbnails of ``positions``, each caption marked kept or pruned (a fragment: paging reruns only it)."""
    n = len(positions)
    if n == 0:
        st.caption("No member of this cluster is in this group at the current setting.")
        return
    pages = max(1, math.ceil(n / MEMBERS_PER_PAGE))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=f"members.{key}"))
    chunk = positions[(page - 1) * MEMBERS_PER_PAGE : page * MEMBERS_PER_PAGE]
    caps = cluster_members.captions(run.table, chunk, kept_mask, score)
    st.caption(f"{n:,} shown · {(page - 1) * MEMBERS_PER_PAGE + 1:,}-{(page - 1) * MEMBERS_PER_PAGE + len(chunk):,}")
    if not run.has_images:  # precomputed embeddings: the rows, with the mark
        rows = run.table.iloc[chunk][["example_id", "cluster", "centroid_sim", score]].copy()
        rows.insert(0, "at the current setting", np.where(kept_mask[chunk], "kept", "pruned"))
        st.dataframe(rows, hide_index=True, width="stretch")
        return
    imgs, shown = [], []
    for p, c, data in zip(chunk, caps, services.thumbnails(str(run.dir), run.key, tuple(int(p) for p in chunk))):
        if data is not None:
            imgs.append(
                cluster_members.mark_thumbnail(
                    data, bool(kept_mask[p]), kept_colour=figures.KEPT_COLOUR, pruned_colour=figures.PRUNED_COLOUR
                )
            )
            shown.append(c)
    if imgs:
        st.image(imgs, caption=shown, width=services.THUMB_PX, output_format="PNG")  # as they are (gallery.strip)
    if len(imgs) < len(chunk):
        st.caption(f"{len(chunk) - len(imgs)} image(s) could not be read")


run = state.require_run()
rd = str(run.dir)
s = state.current()
metric = s["metric"]

st.title("Clusters")
summary = services.cluster_summary(rd, run.key, metric).copy()
k = state.n_keep(run)
mask = services.ranking(rd, s["strategy"], metric, s["balance"], s["seed"]).mask(k)
cl_codes, cl_names, cl_total = services.group_codes(rd, "cluster")
kept = summaries.group_counts(cl_codes, len(cl_names), mask)
summary["kept"] = kept[summary["cluster"].to_numpy()]
summary["kept_share"] = summary["kept"] / summary["size"]

n_clusters = len(cl_names)
url_focus, url_problem = cluster_members.parse_cluster(st.query_params.get(cluster_members.QUERY_KEY), n_clusters)
if url_problem:  # said here, where the address is read, and the bad value dropped from the address
    st.warning(url_problem, icon=":material/link_off:")
    del st.query_params[cluster_members.QUERY_KEY]
if url_focus is not None:
    st.session_state["clusters.focus"] = url_focus


def _back() -> None:
    st.session_state.pop("clusters.focus", None)
    if cluster_members.QUERY_KEY in st.query_params:
        del st.query_params[cluster_members.QUERY_KEY]


focus = st.session_state.get("clusters.focus")
if focus is not None and focus in set(summary["cluster"]):
    st.query_params[cluster_members.QUERY_KEY] = str(int(focus))  # the member view's own address
    row = summary.set_index("cluster").loc[focus]
    st.subheader(f"Cluster {focus}: all {int(row['size']):,} members, most prototypical first")
    st.button("Back to all clusters", icon=":material/arrow_back:", key="clusters.back", on_click=_back)
    members = summaries.members_by_centrality(run.table, int(focus))
    st.markdown(
        f"{state.describe(run)}. In this cluster: **{cluster_members.kept_summary(members, mask)}** "
        "(change the setting on the Prune page)."
    )
    show = st.radio(
        "Show",
        list(cluster_members.SHOW),
        format_func=cluster_members.SHOW.get,
        horizontal=True,
        key="clusters.members.show",
    )
    member_grid(run, cluster_members.filter_members(members, mask, show), mask, key=f"{focus}.{show}", score=metric)
    st.stop()

st.caption(
    f"{len(summary):,} clusters of spherical k-means on the embeddings. Prototypes are the members closest "
    f"to the centroid, outliers the farthest. {state.describe(run)}."
)

c1, c2 = st.columns([2, 1])
sort_key = c1.radio("Sort by", list(SORTS), format_func=lambda v: SORTS[v][1], horizontal=True, key="clusters.sort")
desc = c2.toggle("Largest first", value=True, key="clusters.desc")
col = SORTS[sort_key][0]
if col == "purity" and not run.has_labels:
    st.caption("No labels: purity is undefined, sorted by size instead.")
    col = "size"
summary = summary.sort_values([col, "cluster"], ascending=[not desc, True], na_position="last")

with st.expander("Cluster sizes and what the current setting keeps", icon=":material/bar_chart:"):
    first_paint.plotly_chart(
        figures.cluster_sizes_figure(
            services.cluster_summary(rd, run.key, metric), kept, title="Cluster sizes: full data and kept"
        ),
        key="clusters.sizes",
    )

pages = max(1, math.ceil(len(summary) / CARDS_PER_PAGE))
page = 1
if pages > 1:
    page = int(
        st.number_input(f"Page of clusters (of {pages})", min_value=1, max_value=pages, step=1, key="clusters.page")
    )
extremes = services.cluster_extremes(rd, 4)


def _open(c: int) -> None:
    st.session_state["clusters.focus"] = c
    st.query_params[cluster_members.QUERY_KEY] = str(c)


rows = summary.iloc[(page - 1) * CARDS_PER_PAGE : page * CARDS_PER_PAGE]
for start in range(0, len(rows), 3):
    cols = st.columns(3)
    for col_, (_, r) in zip(cols, rows.iloc[start : start + 3].iterrows()):
        c = int(r["cluster"])
        with col_.container(border=True):
            st.markdown(f"#### Cluster {c}")
            purity = f"{r['purity']:.0%} {r['top_class']}" if run.has_labels else "n/a"
            st.markdown(
                f"**{int(r['size']):,}** examples · purity **{purity}**  \n"
                f"tightness **{r['tightness']:.3f}** · mean {metric} **{r['mean_difficulty']:.3f}**  \n"
                f"kept now **{int(r['kept']):,}** ({r['kept_share']:.0%})"
            )
            st.progress(float(r["kept_share"]), text=f"kept {r['kept_share']:.0%}")
            proto, outl = extremes.get(c, ([], []))
            st.caption("Prototypes (nearest the centroid)")
            gallery.strip(run, proto, width=64, with_captions=False)
            st.caption("Outliers (farthest)")
            gallery.strip(run, outl, width=64, with_captions=False)
            st.button(
                f"All {int(r['size']):,} members",
                key=f"clusters.open.{c}",
                on_click=_open,
                args=(c,),
                icon=":material/arrow_forward:",
            )
