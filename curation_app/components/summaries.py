"""Display summaries of a run's table (pure pandas/numpy, no Streamlit).

Nothing here scores or selects examples: that is the backend's job
(:class:`backend.Ranking`).  These functions only count, group and sample what
the backend produced so the pages can draw it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAP_MAX_POINTS = 100_000  # above this the map draws a sample stratified by cluster


def codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (sorted names) of a categorical column; missing values become "(none)"."""
    c, names = pd.factorize(values.astype("string").fillna("(none)"), sort=True)
    return c.astype(np.int64), [str(n) for n in names]


def group_counts(group_codes: np.ndarray, n_groups: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Examples per group, all (mask None) or where ``mask`` is true."""
    g = group_codes if mask is None else group_codes[mask]
    return np.bincount(g, minlength=n_groups)


def stratified_sample(clusters: np.ndarray, max_points: int = MAP_MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most ``max_points`` examples, each cluster in proportion to its size.

    Quotas by largest remainder (every non-empty cluster keeps at least one
    point), members drawn uniformly at random inside each cluster, so the
    sample is a faithful picture of the map's density.  All positions when
    there are no more than ``max_points``.
    """
    n = len(clusters)
    if n <= max_points:
        return np.arange(n)
    codes_, _ = pd.factorize(clusters, sort=True)
    sizes = np.bincount(codes_)
    exact = sizes * (max_points / n)
    quota = np.maximum(np.floor(exact).astype(np.int64), (sizes > 0).astype(np.int64))
    extra = max_points - int(quota.sum())
    if extra > 0:
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        quota[order[:extra]] += 1
    rng = np.random.default_rng(seed)
    key = rng.random(n)
    order = np.lexsort((key, codes_))  # by cluster, random inside
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, sizes)
    return np.flatnonzero(rank < quota[codes_])


def cluster_summary(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per cluster: size, top class and purity (share of it), mean difficulty, tightness.

    ``tightness`` is the mean cosine similarity to the centroid (higher = more
    redundant); ``mean_difficulty`` the mean of ``metric`` (higher = harder).
    Purity and top class are NaN / "" without labels.
    """
    g = table.groupby("cluster", sort=True)
    out = pd.DataFrame(
        {
            "size": g.size(),
            "tightness": g["centroid_sim"].mean(),
            "mean_difficulty": g[metric].mean() if metric in table.columns else np.nan,
        }
    )
    if table["label"].notna().all():
        counts = table.groupby(["cluster", "label"], sort=True).size()
        top = counts.groupby(level=0).idxmax().map(lambda t: t[1])
        out["top_class"] = top.astype(str)
        out["purity"] = counts.groupby(level=0).max() / out["size"]
    else:
        out["top_class"] = ""
        out["purity"] = np.nan
    out.index.name = "cluster"
    return out.reset_index()


def cluster_extremes(table: pd.DataFrame, n: int = 4) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per cluster: positions of its ``n`` prototypes (highest centroid_sim first) and
    ``n`` outliers (lowest first)."""
    sim = table["centroid_sim"].to_numpy(np.float64)
    cl = table["cluster"].to_numpy()
    order = np.lexsort((-sim, cl))  # by cluster, most central first
    cl_sorted = cl[order]
    bounds = np.flatnonzero(np.diff(cl_sorted)) + 1
    out = {}
    for chunk in np.split(order, bounds):
        if len(chunk):
            out[int(cl[chunk[0]])] = (chunk[:n], chunk[::-1][:n])
    return out


def members_by_centrality(table: pd.DataFrame, cluster: int) -> np.ndarray:
    """Positions of a cluster's members, most central (prototype) first."""
    idx = np.flatnonzero(table["cluster"].to_numpy() == cluster)
    sim = table["centroid_sim"].to_numpy()[idx]
    return idx[np.argsort(-sim, kind="stable")]


def extremes_in(order: np.ndarray, within: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(easiest, hardest) positions: the first and last ``n`` of ``order`` (positions sorted by score,
    easiest first) where the boolean ``within`` holds (everywhere when None); hardest come hardest first."""
    idx = order if within is None else order[within[order]]
    return idx[:n], idx[::-1][:n]


def histogram(scores: np.ndarray, edges: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Counts of ``scores`` (where ``mask``) in the bins ``edges``."""
    s = scores if mask is None else scores[mask]
    return np.histogram(s, bins=edges)[0]


def score_edges(scores: np.ndarray, bins: int = 60) -> np.ndarray:
    """Bin edges covering the finite scores."""
    s = scores[np.isfinite(scores)]
    lo, hi = (float(s.min()), float(s.max())) if len(s) else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1e-6
    return np.linspace(lo, hi, bins + 1)


def cut_value(scores: np.ndarray, mask: np.ndarray, strategy: str, balance: str) -> float | None:
    """The score where keep-hard / keep-easy cuts (None for random or a balanced selection,
    which have no single threshold)."""
    if strategy == "random" or balance != "none" or mask.all() or not mask.any():
        return None
    kept = scores[mask]
    return float(kept.min() if strategy == "hard" else kept.max())


def margin_positions(ranking, n_keep: int, n: int, mask: np.ndarray, count: int = 12) -> np.ndarray:
    """The first ``count`` examples the strategy would add if it kept a few more: those removed
    at the margin, in keep order."""
    if n_keep >= n:
        return np.empty(0, np.int64)
    more = ranking.mask(min(n, n_keep + count))
    idx = np.flatnonzero(more & ~mask)
    return idx[np.argsort(ranking.global_rank[idx], kind="stable")][:count]


def floor_violations(names: list[str], total: np.ndarray, kept: np.ndarray, floor: int) -> list[tuple[str, int, int]]:
    """(name, kept, total) of the groups that keep fewer than ``floor`` (and had more)."""
    bad = np.flatnonzero((kept < floor) & (total > kept))
    return [(names[i], int(kept[i]), int(total[i])) for i in bad]


def theory_reading(alphas: np.ndarray, curves: dict, fs: tuple, theta_deg: float) -> str:
    """A few plain sentences on what the theory curves say."""
    f = fs[len(fs) // 2]
    hard, easy = np.asarray(curves[("hard", f)]), np.asarray(curves[("easy", f)])
    ok = np.isfinite(hard) & np.isfinite(easy)
    cross = None
    if ok.any():
        wins = ok & (hard < easy)
        if wins.any() and not wins[ok][0]:
            cross = float(alphas[np.flatnonzero(wins)[0]])
    parts = [
        "Each curve is the error of a model trained on a fraction f of the data (keep hard: solid, "
        "keep easy: dashed), against α_prune, the number of examples kept per input dimension."
    ]
    if cross is not None:
        parts.append(
            f"At f = {f:g}, keeping the easy examples is better while data is scarce; above "
            f"α_prune ≈ {cross:.2g} keeping the hard ones wins."
        )
    elif ok.any() and (hard[ok] < easy[ok]).all():
        parts.append(f"At f = {f:g}, keeping the hard examples wins over the whole range shown.")
    elif ok.any():
        parts.append(
            f"At f = {f:g}, keeping the easy examples wins over the whole range shown: "
            "with this little data, or this poor a metric, pruning hard does not pay."
        )
    parts.append(
        "The dotted black line is random pruning (the same as training on fewer examples); the thick "
        "orange line is the Pareto frontier, the lowest error any f and direction reaches at each α_prune "
        "when the pool holds at most the α_tot you chose."
    )
    if theta_deg > 0:
        parts.append(
            f"θ = {theta_deg:g}° means the difficulty metric is imperfect; the larger θ, the sooner the "
            "gain of keep hard stops and the more data you must keep."
        )
    else:
        parts.append(
            "θ = 0 is a perfect difficulty metric: with enough data, pruning hard can beat the "
            "power law of random pruning (the frontier bends below the random curve)."
        )
    return " ".join(parts)


# ---------------------------------------------------------------------------
# what made the run: image sizes, the encoder


def encoder_text(encoder: dict) -> str:
    """One line naming the encoder that made a run's embeddings and its identity (weights hash, training)."""
    name = str(encoder.get("name", "?"))
    ident = dict(encoder.get("identity") or {})
    parts = []
    if ident.get("method"):  # a self-supervised encoder trained by train-encoder
        how = f"{ident['method']}, {ident.get('backbone', '?')}"
        if ident.get("epochs") is not None:
            how += f", {int(ident['epochs']):,} epoch{'s' if int(ident['epochs']) != 1 else ''}"
        parts.append(how)
    elif ident.get("model") and ident["model"] != name:
        parts.append(str(ident["model"]))
    size = ident.get("image_size") or ident.get("size")
    if size:
        parts.append(f"resized to {size}x{size}" if name == "pixels" else f"{size} px")
    if ident.get("pca_dim"):
        parts.append(f"PCA to {ident['pca_dim']}")
    weights = ident.get("weights")
    if isinstance(weights, str) and weights:
        if weights.startswith("file-sha256:"):
            parts.append(f"weights sha256 {weights.split(':', 1)[1][:12]}")
        else:
            parts.append(f"weights {weights}")
    elif name == "pixels":
        parts.append("no weights")
    return f"{name} ({', '.join(parts)})" if parts else name


def integer_columns(df: pd.DataFrame) -> list[str]:
    """The integer-valued columns of ``df`` (counts): the pages show them with a thousands separator."""
    return [
        str(c) for c in df.columns if pd.api.types.is_integer_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
    ]
