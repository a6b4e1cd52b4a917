"""What the Map page draws and reads back: colourings, hover payload, the selected region.  Pure: no Streamlit.

The page (``views/map.py``) stays thin: it asks this module what to colour by
(:func:`colour_options`), how (:func:`colouring`), what a point says on hover
(:func:`hover_text`, :func:`hover_scores`) and which examples a box or lasso
covers (:func:`region_positions`: the region is tested against *every*
example's map position, not only the drawn sample, so a selection on the
1,000,000-point map is a region resolved here, never a list of ids sent by
the browser).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CLUSTER = "cluster"
CLASS = "class"
KEPT = "kept / pruned"
GROUP_SIZE = "duplicate group size"
HOVER_SCORES = 1  # scores in the tooltip besides the colour's own (each costs 4 bytes a point on every re-colour)


@dataclass
class Colouring:
    """How to colour the drawn points.

    ``kind`` "category": ``codes`` (int per point) index ``names`` (one legend
    entry each, colour from ``colours`` when given). ``kind`` "value":
    ``values`` (float per point) on a colour bar titled ``bar_title``.
    ``overlay``: a boolean per point drawn again on top with a marker of its
    own (the examples removed as near-duplicates), named ``overlay_name``.
    """

    kind: str
    title: str
    legend_title: str
    codes: np.ndarray | None = None
    names: list[str] = field(default_factory=list)
    colours: list[str] | None = None
    values: np.ndarray | None = None
    bar_title: str = ""
    log_values: bool = False
    overlay: np.ndarray | None = None
    overlay_name: str = ""
    note: str = ""


def colour_options(score_columns: list[str], *, has_labels: bool) -> list[str]:
    """Every "Colour by" choice for a run: groups, each score, the current kept set, duplicate groups."""
    return [CLUSTER] + ([CLASS] if has_labels else []) + list(score_columns) + [GROUP_SIZE, KEPT]


def categorical(codes: np.ndarray, names: list[str], *, what: str, colours: list[str] | None = None) -> Colouring:
    return Colouring(
        kind="category",
        title=f"coloured by {what}",
        legend_title=what,
        codes=np.asarray(codes, np.int64),
        names=[str(n) for n in names],
        colours=colours,
    )


def score_colouring(values: np.ndarray, metric: str) -> Colouring:
    """A score on a colour bar (every score is higher = harder)."""
    return Colouring(
        kind="value",
        title=f"coloured by {metric}",
        legend_title=metric,
        values=np.asarray(values, np.float32),
        bar_title=f"{metric}<br>(higher = harder)",
    )


def kept_colouring(kept: np.ndarray, *, kept_colour: str, pruned_colour: str) -> Colouring:
    """Two groups, pruned drawn first (under) and kept on top."""
    kept = np.asarray(kept, bool)
    return Colouring(
        kind="category",
        title=f"coloured by {KEPT}",
        legend_title="at the current setting",
        codes=kept.astype(np.int64),
        names=[f"pruned ({int((~kept).sum()):,})", f"kept ({int(kept.sum()):,})"],
        colours=[pruned_colour, kept_colour],
    )


def group_focus_colouring(members: np.ndarray, n: int, *, group: int, threshold: float, colour: str) -> Colouring:
    """One duplicate group's members (``members``: positions among ``n``) on top, every other example grey."""
    codes = np.zeros(n, np.int64)
    codes[np.asarray(members, np.int64)] = 1
    return Colouring(
        kind="category",
        title=f"duplicate group {group} at similarity > {threshold:.3f}",
        legend_title="duplicate group",
        codes=codes,
        names=[f"other examples ({n - len(members):,})", f"group {group} ({len(members):,} members)"],
        colours=["#cfcfcf", colour],
    )


def group_sizes_per_example(group: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Members of each example's duplicate group (its kept representative included); 1 when it has none."""
    group = np.asarray(group, np.int64)
    out = np.ones(len(group), np.int64)
    inside = group >= 0
    out[inside] = np.asarray(sizes, np.int64)[group[inside]]
    return out


def group_size_colouring(per_example: np.ndarray, removed: np.ndarray, *, threshold: float) -> Colouring:
    """Duplicate-group size on a log colour bar; the examples the threshold removes marked on top."""
    per_example = np.asarray(per_example, np.int64)
    removed = np.asarray(removed, bool)
    n_dup = int((per_example > 1).sum())
    return Colouring(
        kind="value",
        title=f"coloured by {GROUP_SIZE} at similarity > {threshold:.3f}",
        legend_title=GROUP_SIZE,
        values=np.log2(per_example).astype(np.float32),
        bar_title="members of the<br>example's group",
        log_values=True,
        overlay=removed,
        overlay_name=f"removed as near-duplicates ({int(removed.sum()):,})",
        note=(
            f"{n_dup:,} examples are in a duplicate group at similarity > {threshold:.3f}; the "
            f"{int(removed.sum()):,} that deduplication removes are marked ×, every group keeps one member."
        ),
    )


def log2_ticks(max_size: int) -> tuple[list[float], list[str]]:
    """Colour-bar ticks for log2 group sizes: 1, 2, 4, 8, ... up to ``max_size``."""
    top = max(1, int(np.ceil(np.log2(max(int(max_size), 1)))))
    vals = list(range(0, top + 1))
    return [float(v) for v in vals], [f"{2**v:,}" for v in vals]


def dedup_cached(run) -> bool:
    """Whether the run's near-duplicate index is on disk (then any threshold is O(N) from it)."""
    from backend.dedup.core import STAGE, VERSION
    from backend.store import Stage

    return Stage(run.dir.parent.parent, STAGE, VERSION, {"run": run.key, "n": len(run.table)}).done


# ---------------------------------------------------------------------------
# hover

_HOVER_CACHE: dict[tuple, np.ndarray] = {}


def cached_hover_text(run_key: str, table: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
    """:func:`hover_text`, kept for the last few (run, drawn positions): the strings cost ~0.1 s per 100k points,
    and a re-colour must not pay that again."""
    pos = np.asarray(positions, np.int64)
    key = (run_key, len(pos), int(pos[:1].sum()), int(pos[-1:].sum()), int(pos.sum()))
    if key not in _HOVER_CACHE:
        while len(_HOVER_CACHE) >= 4:
            _HOVER_CACHE.pop(next(iter(_HOVER_CACHE)))
        _HOVER_CACHE[key] = hover_text(table, pos)
    return _HOVER_CACHE[key]


def hover_text(table: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
    """``id · class`` per drawn point (the id alone when the run has no labels).  Plain text: the
    template makes it bold, markup per point would travel with every re-colour."""
    pos = np.asarray(positions, np.int64)
    ids = table["example_id"].astype(str).to_numpy()[pos].astype(object)
    if "label" in table.columns and table["label"].notna().any():
        ids = ids + " · " + table["label"].astype(str).to_numpy()[pos].astype(object)
    # a numpy string array, not objects: plotly validates it in one step (object arrays: ~0.4 s per 60k points)
    return ids.astype(str)


def hover_columns(score_columns: list[str], *, metric: str, colour: str) -> list[str]:
    """The scores a tooltip shows: the colour's own first, then the current metric, then the first others."""
    out: list[str] = []
    for c in [colour, metric, *score_columns]:
        if c in score_columns and c not in out:
            out.append(c)
    return out[: HOVER_SCORES + 1]


def hover_scores(table: pd.DataFrame, positions: np.ndarray, columns: list[str]) -> np.ndarray:
    """(n points x 1 + len(columns)) float32: the cluster, then each score (the tooltip's ``customdata``)."""
    pos = np.asarray(positions, np.int64)
    cols = [table["cluster"].to_numpy()[pos].astype(np.float32)]
    cols += [table[c].to_numpy(np.float32)[pos] for c in columns]
    return np.stack(cols, axis=1)


def hover_template(columns: list[str], *, first_column: int = 2) -> str:
    """Tooltip: id · class, cluster, then one line per score.

    The figure's ``customdata`` is [position, cluster, scores...] (see ``figures.map_figure``): the
    cluster is column ``first_column - 1``, the scores follow."""
    lines = ["<b>%{text}</b>", f"cluster %{{customdata[{first_column - 1}]:.0f}}"]
    lines += [f"{c} %{{customdata[{first_column + i}]:.3f}}" for i, c in enumerate(columns)]
    return "<br>".join(lines) + "<extra></extra>"


def example_card(table: pd.DataFrame, position: int, score_columns: list[str]) -> dict:
    """What the page shows for one clicked example: id, class, cluster, path, every score."""
    r = table.iloc[int(position)]
    label = r["label"] if "label" in table.columns else None
    return {
        "position": int(position),
        "example_id": str(r["example_id"]),
        "class": None if label is None or (isinstance(label, float) and np.isnan(label)) else str(label),
        "cluster": int(r["cluster"]),
        "path": None if "path" not in table.columns or r["path"] is None else str(r["path"]),
        "scores": {c: float(r[c]) for c in score_columns if c in table.columns},
    }


# ---------------------------------------------------------------------------
# selection


def points_in_polygon(x: np.ndarray, y: np.ndarray, px, py) -> np.ndarray:
    """Boolean per point: inside the polygon (even-odd rule; the polygon closes itself).

    The classic crossing test, vectorised: an edge from (xi, yi) to (xj, yj) toggles exactly the points with
    ``min(yi, yj) <= y < max(yi, yj)`` left of it.  With the candidates sorted by y those are one contiguous
    slice (two binary searches), so each edge touches only the points in its own height band: a free-hand
    lasso of a few hundred short edges costs a few passes over the points inside its bounding box, not one
    pass per edge.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    px = np.asarray(px, np.float64)
    py = np.asarray(py, np.float64)
    inside = np.zeros(len(x), bool)
    if len(px) < 3 or len(px) != len(py) or not (np.all(np.isfinite(px)) and np.all(np.isfinite(py))):
        return inside
    # only points in the polygon's bounding box can be inside (NaN positions fail these comparisons)
    cand = np.flatnonzero((x >= px.min()) & (x <= px.max()) & (y >= py.min()) & (y <= py.max()))
    order = cand[np.argsort(y[cand], kind="stable")]
    cx, cy = x[order], y[order]
    hit = np.zeros(len(order), bool)
    for xi, yi, xj, yj in zip(px, py, np.roll(px, 1), np.roll(py, 1)):
        if yi == yj:  # horizontal: (yi > y) != (yj > y) never holds
            continue
        a = np.searchsorted(cy, min(yi, yj), "left")
        b = np.searchsorted(cy, max(yi, yj), "left")
        if a == b:
            continue
        band = slice(a, b)
        hit[band] ^= cx[band] < (xj - xi) * (cy[band] - yi) / (yj - yi) + xi
    inside[order] = hit
    return inside


def region_of(selection) -> dict | None:
    """The box or lasso of a Streamlit plotly selection state, as {"kind", "x", "y"} (None: no region)."""
    if not selection:
        return None
    for kind in ("lasso", "box"):
        for r in selection.get(kind) or []:
            xs, ys = list(r.get("x") or []), list(r.get("y") or [])
            if kind == "box" and len(xs) >= 2 and len(ys) >= 2:
                return {"kind": "box", "x": [float(min(xs)), float(max(xs))], "y": [float(min(ys)), float(max(ys))]}
            if kind == "lasso" and len(xs) >= 3 and len(xs) == len(ys):
                return {"kind": "lasso", "x": [float(v) for v in xs], "y": [float(v) for v in ys]}
    return None


def region_positions(x: np.ndarray, y: np.ndarray, region: dict) -> np.ndarray:
    """Positions (into ``x``/``y``, i.e. the whole table) inside a box or lasso ``region``."""
    if region["kind"] == "box":
        (x0, x1), (y0, y1) = region["x"], region["y"]
        return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
    return np.flatnonzero(points_in_polygon(x, y, region["x"], region["y"]))


def clicked_positions(x: np.ndarray, y: np.ndarray, points, drawn: np.ndarray, limit: int = 50) -> np.ndarray:
    """Positions of clicked points, found by their map coordinates among the ``drawn`` positions.

    Coordinates, not trace and index numbers: they stay right whatever the figure's traces were when
    the user clicked (the colour may have changed since)."""
    drawn = np.asarray(drawn, np.int64)
    dx = np.asarray(x, np.float32)[drawn]
    dy = np.asarray(y, np.float32)[drawn]
    out: list[int] = []
    for p in list(points or [])[:limit]:
        if p.get("x") is None or p.get("y") is None:
            continue
        hit = np.flatnonzero((dx == np.float32(p["x"])) & (dy == np.float32(p["y"])))
        out.extend(int(v) for v in drawn[hit[:1]])
    return np.unique(np.asarray(out, np.int64))
