"""curation-studio app: the router.

``curate app --workdir DIR`` runs ``streamlit run curation_app/app.py`` with
``CURATE_WORKDIR`` (and ``CURATE_ALLOWED_DIRS``) set.  Pages live in
``views/``; the settings they share live in ``st.session_state`` (see
``state.py``) and are mirrored into the URL.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from curation_app import prewarm, services, state
from curation_app.components import first_paint, paths, summaries
from curation_app.components import settings as S

HERE = Path(__file__).resolve().parent
ASSETS = HERE.parent / "assets"  # the repository's assets/ (logo, screenshots); absent in a wheel install

# confine the backend's reads to the folders the pages may use, also under a bare `streamlit run`
# (`curate app` sets this itself from --workdir and --allow-dir)
if not os.environ.get("CURATE_ALLOWED_DIRS"):
    os.environ["CURATE_ALLOWED_DIRS"] = os.pathsep.join(str(d) for d in paths.allowed_dirs())

_ICON = ASSETS / "icon.svg"
st.set_page_config(
    page_title="curation-studio",
    page_icon=str(_ICON) if _ICON.exists() else ":material/content_cut:",
    layout="wide",
)
if (ASSETS / "logo.svg").exists():
    st.logo(str(ASSETS / "logo.svg"), size="large", icon_image=str(_ICON))

PAGES = [
    # the default page is served at /; its own url_path is reserved but never served, so /data is an alias below
    st.Page(HERE / "views/data.py", title="Data", icon=":material/database:", url_path="home", default=True),
    st.Page(HERE / "views/map.py", title="Map", icon=":material/scatter_plot:", url_path="map"),
    st.Page(HERE / "views/clusters.py", title="Clusters", icon=":material/workspaces:", url_path="clusters"),
    st.Page(
        HERE / "views/difficulty.py", title="Difficulty", icon=":material/signal_cellular_alt:", url_path="difficulty"
    ),
    st.Page(HERE / "views/prune.py", title="Prune", icon=":material/content_cut:", url_path="prune"),
    st.Page(HERE / "views/metrics.py", title="Metrics", icon=":material/leaderboard:", url_path="metrics"),
    st.Page(HERE / "views/redundancy.py", title="Redundancy", icon=":material/content_copy:", url_path="redundancy"),
    st.Page(HERE / "views/export.py", title="Export", icon=":material/download:", url_path="export"),
]


def _data_alias() -> None:
    """/data (a typed or bookmarked address) opens the Data page, which Streamlit serves at / as the default page."""
    st.switch_page(PAGES[0])


# hidden: not in the menu, only there so a typed or bookmarked /data opens the Data page
ALIASES = [st.Page(_data_alias, title="Data", url_path="data", visibility="hidden")]


def sidebar() -> None:
    with st.sidebar:
        st.caption(f"workdir: `{services.workdir()}`")
        try:
            run = state.current_run()
        except Exception as exc:  # a damaged run folder: say so, let the Data page offer another
            from backend import CurateError

            if not isinstance(exc, (CurateError, OSError, ValueError, KeyError)):
                raise
            st.error(f"cannot open the selected run: {exc}")
            return
        if run is not None:
            from backend.jobs import current_run_key

            prewarm.prewarm(str(run.dir), run.key)  # once per process and run: the other pages' caches

            state.show_description(run)  # a slot the Prune page's slider fragment redraws
            current = " (the workdir's current run)" if current_run_key(services.workdir()) == run.key else ""
            st.caption(f"run `{run.key}`{current} · {run.n_examples:,} examples · k={run.k:,}")
            st.caption(f"encoder: {summaries.encoder_text(run.encoder)}")
        for msg in st.session_state.get("s._url_problems", []):
            st.warning(msg, icon=":material/link_off:")
        with st.expander("Save or load settings"):
            st.caption("The address bar also holds these settings: bookmark it to come back to this view.")
            st.download_button(
                "Save settings (JSON)",
                S.to_json(state.current()),
                file_name="curation-settings.json",
                mime="application/json",
                on_click="ignore",
                icon=":material/save:",
                key="settings.save",
            )
            up = st.file_uploader("Load settings", type=["json"], key="settings.load")
            if up is not None and st.session_state.get("s._loaded_file") != up.file_id:
                values, problems = S.from_json(up.getvalue())
                st.session_state["s._loaded_file"] = up.file_id
                state.apply(values)
                for p in problems:
                    st.warning(p)
                if values:
                    st.rerun()


def main() -> None:
    state.init()
    page = st.navigation(PAGES + ALIASES, position="sidebar")
    sidebar()
    state.sync_url()  # widget callbacks ran before this script, so the settings are current
    first_paint.start_run()
    try:
        page.run()
    finally:  # also after a page's st.stop(): its held-back charts still need their rerun
        first_paint.finish_run()


main()
