"""The settings shared by every page, and their text forms (URL query, JSON file).

Pure: no Streamlit.  ``parse_settings`` accepts the strings of a URL query or
the values of a saved JSON file and keeps only what is valid, with a message
for each value it drops.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from backend import BALANCES, STRATEGIES

DEFAULTS: dict[str, Any] = {
    "run": None,  # run key (folder name under <workdir>/runs); None = the latest
    "keep": 0.7,  # keep fraction in (0, 1]
    "keep_count": None,  # number to keep, when keep_mode == "count"
    "keep_mode": "fraction",  # which of the two the user set last: "fraction" or "count"
    "strategy": "hard",
    "metric": "ssl_prototype",
    "balance": "none",
    "seed": 0,
    "floor": 10,  # warn when a class or cluster keeps fewer than this many
    "map_viewer": "canvas",  # the Map page's viewer; in the address as the Map page's own ?viewer=
}
MAP_VIEWERS = ("canvas", "plotly")
QUERY_KEYS = ("run", "keep", "count", "keep_count", "strategy", "metric", "balance", "seed", "floor")
METRIC_NAME_MAX = 100
SETTINGS_FILE_KIND = "curation-studio app settings"


def _as_int(v) -> int:
    if isinstance(v, bool):
        raise ValueError("not a number")
    f = float(v)
    if not math.isfinite(f) or f != int(f):
        raise ValueError("not a whole number")
    return int(f)


def parse_settings(raw: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Valid settings found in ``raw`` (URL query strings or JSON values) and one line per bad value."""
    out: dict[str, Any] = {}
    problems: list[str] = []

    def bad(name, value, why):
        problems.append(f"ignored {name}={value!r}: {why}")

    if raw.get("run") not in (None, ""):
        out["run"] = str(raw["run"])
    count = raw.get("count", raw.get("keep_count"))
    if raw.get("keep") not in (None, ""):
        try:
            k = float(raw["keep"])
            if not (0.0 < k <= 1.0):
                raise ValueError("outside (0, 1]")
            out["keep"] = round(k, 4)
        except (TypeError, ValueError) as exc:
            bad("keep", raw["keep"], f"a keep fraction must be a number in (0, 1] ({exc})")
    if count not in (None, ""):
        try:
            c = _as_int(count)
            if c < 1:
                raise ValueError("below 1")
            out["keep_count"] = c
        except (TypeError, ValueError) as exc:
            bad("count", count, f"a keep count must be a whole number >= 1 ({exc})")
    mode = raw.get("keep_mode")
    if mode == "fraction" and "keep" in out or mode == "count" and "keep_count" in out:
        out["keep_mode"] = mode
    elif "keep_count" in out:
        out["keep_mode"] = "count"
    elif "keep" in out:
        out["keep_mode"] = "fraction"
    for name, choices in (("strategy", STRATEGIES), ("balance", BALANCES)):
        if raw.get(name) not in (None, ""):
            if raw[name] in choices:
                out[name] = raw[name]
            else:
                bad(name, raw[name], f"use one of {', '.join(choices)}")
    if raw.get("metric") not in (None, ""):
        m = str(raw["metric"])
        if len(m) > METRIC_NAME_MAX or not m.replace("_", "").replace("-", "").replace(".", "").isalnum():
            bad("metric", raw["metric"], "a metric is a score column name such as ssl_prototype")
        else:
            out["metric"] = m  # checked against the run's score columns by the caller (state.current_run)
    for name, lo in (("seed", None), ("floor", 0)):
        if raw.get(name) not in (None, ""):
            try:
                v = _as_int(raw[name])
                if lo is not None and v < lo:
                    raise ValueError(f"below {lo}")
                out[name] = v
            except (TypeError, ValueError) as exc:
                bad(name, raw[name], f"must be a whole number ({exc})")
    viewer = raw.get("map_viewer")
    if viewer not in (None, ""):
        if viewer in MAP_VIEWERS:
            out["map_viewer"] = viewer
        else:
            bad("map_viewer", viewer, f"the map viewer is one of {', '.join(MAP_VIEWERS)}")
    return out, problems


def to_query(s: Mapping[str, Any]) -> dict[str, str]:
    """The URL query form of the settings (only what differs from the defaults, plus the run)."""
    q: dict[str, str] = {}
    if s.get("run"):
        q["run"] = str(s["run"])
    if s.get("keep_mode") == "count" and s.get("keep_count"):
        q["count"] = str(int(s["keep_count"]))
    else:
        q["keep"] = f"{float(s['keep']):g}"
    for name in ("strategy", "metric", "balance", "seed", "floor"):
        if s.get(name) != DEFAULTS[name]:
            q[name] = str(s[name])
    return q


def to_json(s: Mapping[str, Any]) -> str:
    """A settings file the sidebar can load again."""
    body = {"kind": SETTINGS_FILE_KIND, **{k: s.get(k, DEFAULTS[k]) for k in DEFAULTS}}
    return json.dumps(body, indent=2) + "\n"


def from_json(text: str | bytes) -> tuple[dict, list[str]]:
    """Parse a settings file written by :func:`to_json`."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        return {}, [f"not a settings file: invalid JSON ({exc.args[0]})"]
    if not isinstance(body, dict):
        return {}, ["not a settings file: expected a JSON object"]
    return parse_settings(body)


def count_problem(value: Any, n: int) -> str | None:
    """What is wrong with ``value`` as a keep count for a pool of ``n`` (None when it is fine), in the
    Prune page's words: the range is part of the message."""
    span = f"keep between 1 and {n:,} examples"
    try:
        c = _as_int(value)
    except (TypeError, ValueError):
        return f"{value!r} is not a whole number: {span}"
    if c < 1:
        return f"{c:,} keeps nothing: {span}"
    if c > n:
        return f"{c:,} is more than the {n:,} examples of this run: {span}"
    return None


def n_keep(s: Mapping[str, Any], n: int) -> int:
    """How many of ``n`` examples the settings keep (what ``curate select`` would keep)."""
    from backend import keep_count_for

    if s.get("keep_mode") == "count" and s.get("keep_count"):
        return keep_count_for(n, keep_count=min(max(int(s["keep_count"]), 1), n))
    return keep_count_for(n, keep=float(s["keep"]))


def cli_selection_args(s: Mapping[str, Any], n: int) -> list[str]:
    """``curate select`` arguments giving the same list as these settings."""
    if s.get("keep_mode") == "count" and s.get("keep_count"):
        args = ["--keep-count", str(n_keep(s, n))]
    else:
        args = ["--keep", f"{float(s['keep']):g}"]
    args += ["--strategy", s["strategy"], "--balance", s["balance"], "--seed", str(s["seed"])]
    if s["strategy"] != "random":
        args += ["--metric", s["metric"]]
    return args
