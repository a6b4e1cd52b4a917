"""The Clusters page's member view: its URL parameter and the kept / pruned marks.  Pure: no Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd

QUERY_KEY = "cluster"  # ?cluster=7 opens cluster 7's members
SHOW = {"all": "All members", "kept": "Kept only", "pruned": "Pruned only"}
KEPT_MARK = "✔ kept"
PRUNED_MARK = "✖ pruned"


def parse_cluster(raw, n_clusters: int) -> tuple[int | None, str | None]:
    """(cluster, None) for a valid ``?cluster=`` value, (None, why) otherwise; (None, None) when absent."""
    if raw is None or raw == "":
        return None, None
    text = str(raw).strip()
    try:
        f = float(text)
        if not np.isfinite(f) or f != int(f):
            raise ValueError
        c = int(f)
    except ValueError:
        return None, f"ignored cluster={text!r}: a cluster is a whole number from 0 to {n_clusters - 1}"
    if not 0 <= c < n_clusters:
        return None, f"ignored cluster={text!r}: this run has clusters 0 to {n_clusters - 1}"
    return c, None


def marks(kept_mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """True (kept) / False (pruned) for each position under the current Prune settings."""
    return np.asarray(kept_mask, bool)[np.asarray(positions, np.int64)]


def filter_members(positions: np.ndarray, kept_mask: np.ndarray, show: str) -> np.ndarray:
    """The members to show: all, only the kept or only the pruned ones (order kept)."""
    if show not in SHOW:
        raise ValueError(f"show must be one of {', '.join(SHOW)}")
    positions = np.asarray(positions, np.int64)
    if show == "all":
        return positions
    m = marks(kept_mask, positions)
    return positions[m] if show == "kept" else positions[~m]


def captions(table: pd.DataFrame, positions: np.ndarray, kept_mask: np.ndarray, score: str | None) -> list[str]:
    """``✅ kept · id · class · score=0.123`` (or ``✖ pruned · ...``) for each position."""
    pos = np.asarray(positions, np.int64)
    ids = table["example_id"].astype(str).to_numpy()[pos]
    labels = table["label"].to_numpy()[pos] if "label" in table.columns else [None] * len(pos)
    vals = table[score].to_numpy(np.float64)[pos] if score and score in table.columns else None
    out = []
    for i, (p, e, lab) in enumerate(zip(pos, ids, labels)):
        parts = [KEPT_MARK if kept_mask[p] else PRUNED_MARK, str(e)]
        if isinstance(lab, str):
            parts.append(lab)
        if vals is not None:
            parts.append(f"{score.replace('_prototype', '')}={vals[i]:.3f}")
        out.append(" · ".join(parts))
    return out


def mark_thumbnail(png: bytes, kept: bool, *, kept_colour: str, pruned_colour: str, border: int = 4) -> bytes:
    """The thumbnail framed in the kept colour, or faded and framed grey when pruned (seen at a glance,
    not only in the caption)."""
    import io

    from PIL import Image, ImageOps

    img = Image.open(io.BytesIO(png)).convert("RGB")
    if not kept:
        img = Image.blend(img, Image.new("RGB", img.size, "white"), 0.55)
    img = ImageOps.expand(img, border=border, fill=kept_colour if kept else pruned_colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def kept_summary(positions: np.ndarray, kept_mask: np.ndarray) -> str:
    m = marks(kept_mask, positions)
    n = len(m)
    return f"{int(m.sum()):,} of {n:,} kept ({m.mean() if n else 0:.0%}), {int((~m).sum()):,} pruned"
