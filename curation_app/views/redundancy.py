"""Redundancy: near-duplicate groups (SemDeDup inside the k-means clusters), how much is redundant at each
threshold, and the deduplicated list (byte-identical to ``curate dedup``)."""

from __future__ import annotations

import html
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import streamlit as st

from backend.dedup import pairwise_similarity
from backend.dedup.export import removed_path, render
from curation_app import services, state
from curation_app.components import curve_chart, downloads, gallery, html_table
from curation_app.components import jobs as jobs_panel

EXACT = 0.999  # similarity at or above which two examples count as near-exact copies
GROUPS_PER_PAGE = 6
SHOWN_MEMBERS = 8  # thumbnails and similarity matrix per group

run = state.require_run()
rd = str(run.dir)
t = run.table

st.title("Redundancy")
st.caption(
    "Near-duplicates inside each k-means cluster (SemDeDup): an example is redundant when its cosine "
    "similarity to an earlier member of its cluster exceeds the threshold; members are taken least "
    "similar to the centroid first, so every group keeps its least typical member. Pairs in different "
    "clusters are not compared."
)

idx = services.dedup_index(rd, run.key)


GROUP_STYLE = (
    "<style>.cs-group{border:1px solid rgba(128,128,128,.3);border-radius:.5rem;padding:.8rem 1rem;"
    "margin:0 0 1rem}.cs-group p{margin:0 0 .3rem}.cs-group code{font-size:.85em}</style>"
)


def map_link(group: int, threshold: float) -> str:
    """The Map page with this group drawn on top (``?group=G&group_at=T``), the rest of the address kept: a
    plain link, so a page of groups stays one HTML block (the Map page opens in this tab, settings kept)."""
    query = {k: v for k, v in st.query_params.to_dict().items() if k not in ("group", "group_at", "cluster")}
    query.update(group=str(int(group)), group_at=f"{threshold:.4f}")
    return "map?" + urlencode(query)


def group_card(g, members: np.ndarray, threshold: float, *, found_at: float, slot: int) -> str:
    """One duplicate group as HTML: what it is and which member it keeps (and a link that opens it on the map),
    its first members' thumbnails and their pairwise cosine similarity.  ``found_at``: the threshold of the
    deduplication the group belongs to (the slider's, or the near-exact one)."""
    shown = members[:SHOWN_MEMBERS]  # only these: a 1,500-member group's full matrix costs ~0.4 s per move
    sim = pairwise_similarity(run.embeddings, t["row"].iloc[shown].to_numpy())
    names = [("kept " if i == 0 else "") + str(e) for i, e in enumerate(t["example_id"].iloc[shown])]
    head = (
        f"<p><b>Group {int(g.group)}</b> · {int(g.size)} members · cluster {int(g.cluster)} · similarity "
        f"{g.min_similarity:.4f} to {g.max_similarity:.4f} · kept: <code>{html.escape(str(g.representative_id))}"
        "</code> (the member least similar to the centroid) · "
        f'<a href="{html.escape(map_link(int(g.group), found_at))}">show on the map</a></p>'
    )
    strip = gallery.strip_html(run, shown, key=f"redundancy.groups.{slot}")
    table = html_table.similarity_table(sim, names, low=min(0.8, threshold))
    return f'<div class="cs-group">{head}{strip}{table}</div>'


def page_of(groups: pd.DataFrame, what: str, *, key: str) -> pd.DataFrame:
    """The groups of the page the user picked (a page number input when there is more than one page)."""
    pages = max(1, int(np.ceil(len(groups) / GROUPS_PER_PAGE)))
    page = 1
    if pages > 1:
        label = f"Page (of {pages:,}; {len(groups):,} {what})"
        page = int(st.number_input(label, min_value=1, max_value=pages, step=1, key=key))
    return groups.iloc[(page - 1) * GROUPS_PER_PAGE : page * GROUPS_PER_PAGE]


def curve_lines(curve: pd.DataFrame, by: str) -> dict:
    """The curve's lines, made once per session and curve; a slider move only moves the threshold marker."""
    key = (run.key, by, tuple(dict.fromkeys(curve["group"])))
    held = st.session_state.get("redundancy._curve_lines")
    if held is None or held[0] != key:
        lines = curve_chart.curve_payload(
            curve,
            title="Share removed as near-duplicates vs the similarity threshold (1 - eps)",
            x_title="cosine similarity threshold 1 - eps (duplicates above it)",
            y_title="share of examples removed",
            hover_x="similarity >",
        )
        held = (key, lines)
        st.session_state["redundancy._curve_lines"] = held
    return held[1]


@st.fragment
def live() -> None:
    """Everything that depends on the threshold: a move of its slider reruns only this, not the page."""
    threshold = st.slider(
        "Similarity threshold (1 - eps)",
        min_value=0.80,
        max_value=1.0,
        value=0.95,
        step=0.001,
        format="%.3f",
        key="redundancy.threshold",
        help="examples more similar than this to an earlier member of their cluster are removed",
    )
    st.session_state["s.dedup_threshold"] = float(threshold)  # the Map page marks what this threshold removes
    res = services.dedup_at(rd, run.key, float(threshold))
    n = len(t)
    exact = services.dedup_at(rd, run.key, EXACT)

    m = st.columns([1.6, 1, 1, 1.2])  # "600,000 of 1,000,000" must fit
    m[0].metric(
        "Removed",
        f"{res.n_removed:,} of {n:,}",
        f"{res.n_removed / n:.1%} redundant",
        delta_color="off",
        delta_arrow="off",
    )
    m[1].metric("Kept", f"{res.n_kept:,}")
    m[2].metric("Duplicate groups", f"{res.n_groups:,}")
    m[3].metric(
        f"Near-exact copies (≥ {EXACT})",
        f"{exact.n_removed:,}",
        f"in {exact.n_groups:,} groups",
        delta_color="off",
        delta_arrow="off",
    )

    by = st.radio(
        "Curve per",
        ["all examples"] + (["class"] if run.has_labels else []) + ["cluster"],
        horizontal=True,
        key="redundancy.by",
    )
    curve = services.redundancy_curve(rd, run.key, by)
    if by == "cluster":  # the ten clusters with the most redundancy at the threshold
        grid = np.unique(curve["threshold"].to_numpy())
        at_t = curve[np.isclose(curve["threshold"], grid[np.argmin(np.abs(grid - threshold))])]
        top = at_t[at_t["group"] != "all"].nlargest(10, "share_removed")["group"].tolist()
        curve = curve[curve["group"].isin(["all", *top])]
        curve["group"] = curve["group"].map(lambda g: g if g == "all" else f"cluster {g}")
    marked = curve_chart.with_marker(curve_lines(curve, by), threshold, f"threshold {float(threshold):.3f}")
    curve_chart.curve_chart(marked, key="redundancy.curve")

    st.subheader("What removing them costs")
    cost = st.session_state.get("redundancy.cost")
    if cost is None or cost[0] != (run.key, float(threshold)):
        if not run.has_labels:
            st.caption("The estimate measures held-out error and needs labels; this run has none.")
        elif res.n_removed and st.button(
            f"Estimate the held-out error without these {res.n_removed:,} examples",
            icon=":material/query_stats:",
            key="redundancy.cost_go",
        ):
            from backend.dedup.cost import dedup_cost

            with st.spinner("Training the probes on the deduplicated set and on random subsets of the same size..."):
                st.session_state["redundancy.cost"] = cost = (
                    (run.key, float(threshold)),
                    dedup_cost(run, eps=1.0 - float(threshold)),
                )
    if cost is not None and cost[0] == (run.key, float(threshold)):
        c = cost[1]
        if "error_dedup" in c:
            k = st.columns(3)
            k[0].metric(
                "Without the duplicates",
                f"{100 * c['error_dedup']:.2f}%",
                f"{c['n_kept']:,} kept",
                delta_color="off",
                delta_arrow="off",
            )
            k[1].metric(
                "Random subset, same size",
                f"{100 * c['error_random']:.2f}%",
                f"{100 * c['diff']:+.2f} ± {100 * c['se']:.2f} pp: {c['verdict']}",
                delta_color="off",
                delta_arrow="off",
            )
            if c.get("error_full") is not None:
                k[2].metric(
                    "All the data",
                    f"{100 * c['error_full']:.2f}%",
                    f"{c['n']:,} examples",
                    delta_color="off",
                    delta_arrow="off",
                )
            st.caption(
                f"Held-out error of linear probes on the frozen embeddings, mean over {c['n_seeds']} seeds "
                "(a proxy for your final network). Better or worse than random means by more than two standard "
                "errors." + (f" Note: {c['note']}." if c.get("note") else "")
            )
        else:
            st.caption(c.get("note", ""))

    st.subheader("Duplicate groups")
    groups = services.dedup_groups(rd, run.key, float(threshold))
    c1, c2 = st.columns([1.2, 2])
    order = c1.radio("Sort by", ["size", "similarity"], horizontal=True, key="redundancy.sort")
    only_exact = c2.toggle(f"Near-exact neighbours only (similarity ≥ {EXACT})", key="redundancy.exact")
    if only_exact:
        groups, res_shown, shown_at = services.dedup_groups(rd, run.key, EXACT), exact, EXACT
    else:
        res_shown, shown_at = res, float(threshold)
    if order == "similarity":
        groups = groups.sort_values(["max_similarity", "size"], ascending=[False, False], ignore_index=True)
    if groups.empty:
        st.caption("No duplicates at this threshold.")
    else:
        cards = [
            group_card(g, res_shown.members(int(g.group)), float(threshold), found_at=shown_at, slot=i)
            for i, g in enumerate(page_of(groups, "groups", key="redundancy.page").itertuples())
        ]
        # one HTML block for the page of groups: as Streamlit elements (a bordered container, a line, an image
        # list and a table each) they cost the browser more than the rest of a threshold move together
        st.html(GROUP_STYLE + gallery.STRIP_STYLE + "".join(cards))

    st.subheader("Export the deduplicated list")
    st.caption(
        f"The same files as `curate dedup --eps {res.eps:.4f} --out FILE` (the kept list and the removed "
        "examples with their group and kept representative)."
    )
    # rendering 60k rows at every slider move would cost more than the rest of the page: make the files on request
    ready = st.session_state.get("redundancy.files")
    if ready is None or ready[0] != (run.key, float(threshold)):
        if st.button("Prepare the files for this threshold", icon=":material/description:", key="redundancy.prepare"):
            ready = (
                (run.key, float(threshold)),
                render(res.kept_frame(t), ".csv"),
                render(res.removed_frame(t), ".csv"),
            )
            st.session_state["redundancy.files"] = ready
    if ready is not None and ready[0] == (run.key, float(threshold)):
        c1, c2 = st.columns(2)
        c1.download_button(
            f"Kept list ({res.n_kept:,} rows, CSV)",
            ready[1],
            file_name="dedup.csv",
            mime=downloads.exact_mime(ready[1], "text/csv"),
            on_click="ignore",
            icon=":material/download:",
            key="redundancy.dl_kept",
        )
        c2.download_button(
            f"Removed, with groups ({res.n_removed:,} rows, CSV)",
            ready[2],
            file_name=removed_path("dedup.csv").name,
            mime=downloads.exact_mime(ready[2], "text/csv"),
            on_click="ignore",
            icon=":material/download:",
            key="redundancy.dl_removed",
        )


live()


def copies_section() -> None:
    """The same picture re-saved, resized or re-encoded, by perceptual hash: independent of the threshold."""
    st.subheader("Exact copies (perceptual hash)")
    if not run.has_images:
        st.caption("This run was made from precomputed embeddings: exact copies need the image files.")
        return
    job_key = f"redundancy.copies.{run.key}"
    jobs_panel.show(job_key, on_finish=lambda job: services.near_copies.clear(), final=False)
    copies = services.near_copies(rd, run.key)
    if copies is None:
        st.caption(
            "The same image saved twice, resized or re-encoded, found from a 256-bit perceptual hash (pHash) "
            "of every image, apart from the semantic neighbours above; hashing takes about a minute per 60,000 "
            "images on a CPU and is cached."
        )
        if st.button(
            "Find exact copies",
            icon=":material/fingerprint:",
            key="redundancy.copies_go",
            disabled=jobs_panel.active(job_key) is not None,
        ):
            out = run.dir.parent.parent / "dedup" / "app" / f"{run.key}.csv"
            out.parent.mkdir(parents=True, exist_ok=True)
            # the semantic list at the default threshold comes with it (the same command as in a terminal)
            argv = ["dedup", "--workdir", str(run.dir), "--eps", "0.05", "--out", str(out), "--copies", "--force"]
            jobs_panel.start(argv, label="Hashing every image (exact copies)", key=job_key)
            st.rerun()
        return
    s = copies.summary()
    c = st.columns(3)
    c[0].metric(
        "Exact copies",
        f"{s['copies']:,}",
        f"{s['copies'] / max(len(t), 1):.2%} of the data",
        delta_color="off",
        delta_arrow="off",
    )
    c[1].metric("Copy groups", f"{s['groups']:,}")
    c[2].metric("Images in groups", f"{s['in_groups']:,}")
    st.caption(
        f"Hashes differ in at most {s['max_distance']} of {s['hash_bits']} bits; each group "
        "keeps its largest image. pHash does not survive crops of small images: the semantic groups above "
        "cover those."
    )
    groups = copies.groups_frame()
    if groups.empty:
        st.caption("No exact copies.")
        return
    for g in page_of(groups, "copy groups", key="redundancy.copies_page").itertuples():
        mem = copies.members(int(g.group))  # table positions, kept first
        with st.container(border=True):
            st.markdown(
                f"**Copy group {g.group}** · {g.size} images · kept `{g.representative_id}` (the largest) · "
                f"hashes differ in ≤ {g.max_hamming} of {s['hash_bits']} bits"
            )
            gallery.strip(run, mem[:SHOWN_MEMBERS])


copies_section()
