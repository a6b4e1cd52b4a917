"""Settings shared by all pages, kept in ``st.session_state`` and mirrored into the URL.

Canonical values live under ``"s.<name>"`` (never a widget key, so they
survive page switches: Streamlit forgets the state of widgets a page does not
draw).  A page's widget gets its own key from :func:`bind`, is filled from
the canonical value before it is drawn, and copies its value back on change.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from backend import BALANCES
from curation_app import services
from curation_app.components import settings as S

PREFIX = "s."


def get(name: str) -> Any:
    return st.session_state[PREFIX + name]


def put(name: str, value: Any) -> None:
    st.session_state[PREFIX + name] = value


def current() -> dict:
    return {k: get(k) for k in S.DEFAULTS}


def apply(values: dict) -> None:
    for k, v in values.items():
        if k in S.DEFAULTS:
            put(k, v)


def init() -> None:
    """Once per session: defaults, then whatever the URL carries."""
    if st.session_state.get("s._init"):
        return
    apply(dict(S.DEFAULTS))
    query = {k: st.query_params.get(k) for k in S.QUERY_KEYS if k in st.query_params}
    values, problems = S.parse_settings(query)
    apply(values)
    if st.query_params.get("viewer") in S.MAP_VIEWERS:  # the Map page's part of the address (it says if invalid)
        put("map_viewer", st.query_params["viewer"])
    st.session_state["s._url_problems"] = problems
    st.session_state["s._init"] = True


# a page's own part of the address (the Clusters member view: ?cluster=7), kept as it is
# ?viewer=: the Map page's viewer; ?group=G&group_at=T: the duplicate group the Map page shows (from Redundancy)
PAGE_QUERY_KEYS = ("cluster", "viewer", "group", "group_at")


def sync_url() -> None:
    """Write the settings into the URL (only when they changed) so a link brings the view back."""
    want = S.to_query(current())
    want.update({k: st.query_params[k] for k in PAGE_QUERY_KEYS if k in st.query_params})
    if want.get("viewer") in S.MAP_VIEWERS:  # the session's viewer (a loaded settings file may have changed it)
        want["viewer"] = get("map_viewer")
    have = {k: st.query_params.get(k) for k in st.query_params}
    if want != have:
        st.query_params.from_dict(want)


# ---------------------------------------------------------------------------
# widgets bound to a setting


def _copy_back(wkey: str, name: str, extra: dict | None) -> None:
    put(name, st.session_state[wkey])
    if extra:
        apply(extra)


def bind(name: str, page: str, *, value: Any = None, extra: dict | None = None) -> dict:
    """kwargs (key, on_change, args) for a widget showing setting ``name`` on ``page``.

    ``value`` overrides what the widget shows (e.g. a derived count); ``extra``
    settings are applied too when the widget changes.
    """
    wkey = f"w.{page}.{name}"
    fill(wkey, get(name) if value is None else value)
    return {"key": wkey, "on_change": _copy_back, "args": (wkey, name, extra)}


def fill(wkey: str, value: Any) -> None:
    """Show ``value`` in the widget ``wkey`` (drawn next), touching its state only when it differs.

    Writing a widget's state from Python makes the browser take that value; doing it on every
    run would fight a user who is still moving the widget (keys pressed during a rerun), so
    only a change made elsewhere (another widget, a button, a loaded file, the URL) is written.
    """
    if wkey not in st.session_state or st.session_state[wkey] != value:
        st.session_state[wkey] = value


# ---------------------------------------------------------------------------
# the current run


def current_run():
    """The selected run (cached), or None when the workdir has none.  Fixes a stale run key."""
    runs = services.list_runs()
    if not runs:
        return None
    keys = {r["key"]: r for r in runs}
    key = get("run")
    if key not in keys:
        if key is not None:
            st.session_state["s._url_problems"] = st.session_state.get("s._url_problems", []) + [
                f"run {key!r} is not in {services.workdir()}: showing the latest run"
            ]
        key = runs[0]["key"]
        put("run", key)
    run = services.load_run(keys[key]["dir"])
    _fix_for_run(run)
    return run


def _warn(message: str) -> None:
    """A setting that had to change, said in the sidebar (with the URL's problems)."""
    st.session_state["s._url_problems"] = st.session_state.get("s._url_problems", []) + [message]


def _fix_for_run(run) -> None:
    """Settings that do not fit this run fall back to ones that do, with a warning naming the value."""
    if get("metric") not in run.score_columns:
        fallback = run.score_columns[0] if run.score_columns else "ssl_prototype"
        if get("metric") != S.DEFAULTS["metric"]:  # a metric asked for (URL, settings file, another run)
            _warn(
                f"metric {get('metric')!r} is not a score of this run ({', '.join(run.score_columns) or 'none'}): "
                f"showing {fallback}"
            )
        put("metric", fallback)
    if get("keep_mode") == "count" and get("keep_count") is not None:
        why = S.count_problem(get("keep_count"), run.n_examples)
        if why:
            _warn(f"ignored count={get('keep_count')}: {why}; keeping {float(get('keep')):.0%} instead")
            apply({"keep_mode": "fraction", "keep_count": None})
    bal = get("balance")
    if not run.has_labels and bal in BALANCES and BALANCES.entry(bal).info.get("group") == "label":
        _warn(f"balance {get('balance')!r} needs labels and this run has none: showing no balance")
        put("balance", "none")


def require_run():
    """The current run, or stop the page with a pointer to the Data page."""
    run = current_run()
    if run is None:
        st.info(f"There is no finished run in {services.workdir()} yet: start one on the Data page.")
        st.page_link("views/data.py", label="Go to the Data page", icon=":material/database:")
        st.stop()
    return run


def n_keep(run) -> int:
    return S.n_keep(current(), run.n_examples)


def show_description(run) -> None:
    """Draw :func:`describe` in a slot that a fragment can redraw (the Prune page's slider reruns only its
    fragment, which then calls :func:`refresh_description`)."""
    slot = st.empty()
    slot.markdown(describe(run))
    st.session_state["s._describe_slot"] = slot


def refresh_description(run) -> None:
    """Redraw the description drawn by :func:`show_description` in this page run, if there is one."""
    slot = st.session_state.get("s._describe_slot")
    if slot is not None:
        slot.markdown(describe(run))


def describe(run) -> str:
    """One line: what the current settings keep."""
    s = current()
    k = n_keep(run)
    how = {"hard": "keep hard", "easy": "keep easy", "random": "random"}.get(s["strategy"], s["strategy"])
    metric = "" if s["strategy"] == "random" else f" by {s['metric']}"
    bal = "" if s["balance"] == "none" else f", balance {s['balance']}"
    return f"Keeping **{k:,} of {run.n_examples:,}** ({k / run.n_examples:.1%}): {how}{metric}{bal}"
