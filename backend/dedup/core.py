"""SemDeDup on a run: the per-example index (cached), any threshold from it in O(N), the redundancy curve."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import write_npy
from ..progress import Reporter
from ..store import Stage
from .search import within_cluster_neighbours

VERSION = 1
STAGE = "dedup"


@dataclass
class DedupIndex:
    """What one within-cluster search found, per example (positions = the run's table order).

    ``max_sim``: largest cosine similarity to another member of the cluster
    (-1 when alone).  ``earlier_sim`` / ``parent``: largest similarity to a
    member earlier in SemDeDup's order (least similar to the centroid first)
    and that member's position (-inf / -1 for the first member of a cluster).
    """

    max_sim: np.ndarray
    earlier_sim: np.ndarray
    parent: np.ndarray
    cluster: np.ndarray
    example_ids: np.ndarray
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.max_sim)

    @property
    def n_removable(self) -> int:
        """Examples that some threshold removes (all but the first member of every cluster)."""
        return int(np.isfinite(self.earlier_sim).sum())

    def threshold_for(self, *, eps: float | None = None, target_fraction: float | None = None) -> float:
        """The similarity threshold t = 1 - eps; with ``target_fraction``, the t that keeps about that share."""
        if (eps is None) == (target_fraction is None):
            raise CurateError(
                "pass exactly one of --eps (duplicates: cosine similarity > 1 - eps) or "
                "--target-fraction (the share of examples to keep)"
            )
        if eps is not None:
            eps = float(eps)
            if not 0.0 <= eps <= 2.0 or np.isnan(eps):
                raise CurateError(
                    f"eps {eps} is outside [0, 2]: duplicates have cosine similarity > 1 - eps, so pass e.g. --eps 0.05"
                )
            return 1.0 - eps
        assert target_fraction is not None
        f = float(target_fraction)
        n = len(self)
        if not 0.0 < f <= 1.0 or np.isnan(f):
            raise CurateError(
                f"target fraction {f} is outside (0, 1]: pass the share of examples to keep, e.g. --target-fraction 0.8"
            )
        n_remove = n - max(1, round(f * n))
        if n_remove > self.n_removable:
            raise CurateError(
                f"keeping {f:.1%} would remove {n_remove} examples, but SemDeDup keeps at least one "
                f"per cluster (at most {self.n_removable} of {n} can go): pass a larger "
                "--target-fraction"
            )
        if n_remove <= 0:
            return 1.0
        # remove the n_remove largest earlier_sim (strictly above t); ties may remove a few less
        s = np.sort(self.earlier_sim[np.isfinite(self.earlier_sim)])[::-1]
        return float(s[n_remove]) if n_remove < len(s) else float(np.nextafter(np.float32(s[-1]), -np.inf))

    def at(self, *, eps: float | None = None, target_fraction: float | None = None) -> DedupResult:
        """The deduplication at one threshold (``eps`` or ``target_fraction``, see :meth:`threshold_for`)."""
        t = self.threshold_for(eps=eps, target_fraction=target_fraction)
        removed = self.earlier_sim > np.float32(t)
        root = representatives(self.parent, removed)
        n = len(self)
        in_group = removed.copy()
        in_group[root[removed]] = True
        roots = np.unique(root[removed])
        group = np.full(n, -1, np.int64)
        group[in_group] = np.searchsorted(roots, root[in_group])
        return DedupResult(
            index=self,
            eps=1.0 - t,
            threshold=t,
            removed=removed,
            representative=root,
            group=group,
            n_groups=len(roots),
            target_fraction=target_fraction,
            eps_requested=eps,
        )

    def redundancy_curve(self, thresholds=None, *, by: np.ndarray | None = None) -> pd.DataFrame:
        """Share of examples removed at each similarity threshold (monotone: higher threshold, fewer removed).

        ``by`` (codes per example, e.g. class or cluster) adds one curve per
        group.  O(N log N) once, then O(log N) per threshold.
        """
        if thresholds is None:
            thresholds = np.round(np.linspace(0.80, 1.0, 41), 4)
        thresholds = np.asarray(thresholds, np.float64)
        out = [_curve(self.earlier_sim, thresholds, "all")]
        if by is not None:
            by = np.asarray(by)
            for g in pd.unique(by):
                out.append(_curve(self.earlier_sim[by == g], thresholds, g))
        return pd.concat(out, ignore_index=True)


def _curve(earlier_sim: np.ndarray, thresholds: np.ndarray, group) -> pd.DataFrame:
    s = np.sort(earlier_sim.astype(np.float64))
    n = len(s)
    # removed at t: earlier_sim > float32(t), the rule of DedupIndex.at
    t32 = thresholds.astype(np.float32).astype(np.float64)
    n_removed = n - np.searchsorted(s, t32, side="right")
    return pd.DataFrame(
        {
            "group": group,
            "threshold": thresholds,
            "eps": 1.0 - thresholds,
            "n": n,
            "n_removed": n_removed.astype(np.int64),
            "share_removed": n_removed / max(n, 1),
        }
    )


def pairwise_similarity(embeddings, rows) -> np.ndarray:
    """Cosine similarity matrix of a few embedding ``rows`` (e.g. one duplicate group's members)."""
    x = np.asarray(embeddings[np.asarray(rows, np.int64)], np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.clip(x @ x.T, -1.0, 1.0)


def representatives(parent: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """For every example, the kept example its chain of "duplicate of" ends at (itself when kept).

    A removed example points at an *earlier* member, so chains end; pointer
    jumping takes O(log depth) vectorised passes.
    """
    n = len(parent)
    p = np.where(removed, parent, np.arange(n))
    while True:
        q = p[p]
        if np.array_equal(q, p):
            return p
        p = q


@dataclass
class DedupResult:
    """The kept set at one threshold; ``group``/``representative`` say who stands for each removed example.

    ``removed``: boolean per example (table order).  ``representative``: the
    position of the kept example each one's group keeps (itself when kept).
    ``group``: 0..n_groups-1 for members of a duplicate group (its kept
    representative included), -1 for examples with no duplicate.  Exactly
    one member of every group is kept.
    """

    index: DedupIndex
    eps: float
    threshold: float
    removed: np.ndarray
    representative: np.ndarray
    group: np.ndarray
    n_groups: int
    target_fraction: float | None = None
    eps_requested: float | None = None
    _by_group: tuple | None = field(default=None, repr=False)

    @property
    def kept(self) -> np.ndarray:
        """Boolean mask of kept examples (table order)."""
        return ~self.removed

    @property
    def kept_ids(self) -> np.ndarray:
        return self.index.example_ids[~self.removed]

    @property
    def n_kept(self) -> int:
        return int((~self.removed).sum())

    @property
    def n_removed(self) -> int:
        return int(self.removed.sum())

    def group_sizes(self) -> np.ndarray:
        """Members (kept one included) of every group, indexed by group id."""
        return np.bincount(self.group[self.group >= 0], minlength=self.n_groups)

    def removed_frame(self, table: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per removed example: its group, the kept representative and whom it duplicates."""
        ids = self.index.example_ids
        pos = np.flatnonzero(self.removed)
        par = self.index.parent[pos]
        df = pd.DataFrame(
            {
                "example_id": ids[pos],
                "group": self.group[pos],
                "representative": ids[self.representative[pos]],
                "duplicate_of": ids[par],
                "similarity": self.index.earlier_sim[pos].astype(np.float64),
                "cluster": self.index.cluster[pos],
            }
        )
        if table is not None:  # example_id, path, label first, as in the kept list
            for col in ("label", "path"):
                if col in table.columns:
                    df.insert(1, col, table[col].to_numpy()[pos])
        return df

    def kept_frame(self, table: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per kept example, with its group (-1 = no duplicate) and the group's size."""
        pos = np.flatnonzero(~self.removed)
        sizes = self.group_sizes()
        g = self.group[pos]
        df = pd.DataFrame(
            {
                "example_id": self.index.example_ids[pos],
                "cluster": self.index.cluster[pos],
                "group": g,
                "group_size": np.where(g >= 0, sizes[np.maximum(g, 0)], 1),
            }
        )
        if table is not None:
            for col in ("label", "path"):
                if col in table.columns:
                    df.insert(1, col, table[col].to_numpy()[pos])
        return df

    def groups_frame(self) -> pd.DataFrame:
        """One row per duplicate group: size, kept representative, the highest and lowest similarity of a
        removed member to the member it duplicates, cluster.  Largest first (ties: most similar first)."""
        pos = np.flatnonzero(self.group >= 0)
        g = self.group[pos]
        sizes = np.bincount(g, minlength=self.n_groups)
        rem = self.removed[pos]
        sim = self.index.earlier_sim[pos].astype(np.float64)
        hi = np.full(self.n_groups, -np.inf)
        lo = np.full(self.n_groups, np.inf)
        np.maximum.at(hi, g[rem], sim[rem])
        np.minimum.at(lo, g[rem], sim[rem])
        reps = np.zeros(self.n_groups, np.int64)
        reps[g] = self.representative[pos]
        df = pd.DataFrame(
            {
                "group": np.arange(self.n_groups),
                "size": sizes,
                "representative": reps,
                "representative_id": self.index.example_ids[reps],
                "max_similarity": hi,
                "min_similarity": lo,
                "cluster": self.index.cluster[reps],
            }
        )
        return df.sort_values(["size", "max_similarity", "group"], ascending=[False, False, True], ignore_index=True)

    def members(self, group: int) -> np.ndarray:
        """Positions of one group's members: the kept one first, then the removed ones, most similar first."""
        if self._by_group is None:
            order = np.argsort(self.group, kind="stable")
            self._by_group = (order, self.group[order])
        order, sorted_g = self._by_group
        a, b = np.searchsorted(sorted_g, [group, group + 1])
        pos = order[a:b]
        key = np.where(self.removed[pos], -self.index.earlier_sim[pos].astype(np.float64), -np.inf)
        return pos[np.argsort(key, kind="stable")]

    def summary(self) -> dict:
        n = len(self.removed)
        return {
            "examples": n,
            "kept": self.n_kept,
            "removed": self.n_removed,
            "removed_share": self.n_removed / max(n, 1),
            "groups": self.n_groups,
            "eps": self.eps,
            "threshold": self.threshold,
        }


def dedup_index(
    embeddings, rows, cluster, centroid_sim, example_ids, *, device: str = "cpu", reporter: Reporter | None = None
) -> DedupIndex:
    """Search every cluster (exact, bounded memory; see :mod:`backend.dedup.search`) and index the result."""
    rep = reporter or Reporter()
    ids = np.asarray(example_ids).astype(str).astype(object)
    if not (len(rows) == len(cluster) == len(centroid_sim) == len(ids)):
        raise ValueError("rows, cluster, centroid_sim and example_ids must have one entry per example")
    t0 = time.perf_counter()
    nb = within_cluster_neighbours(embeddings, rows, cluster, centroid_sim, ids, device=device, progress=rep.update)
    info = {
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "n": len(rows),
        "clusters": len(np.unique(cluster)) if len(rows) else 0,
    }
    return DedupIndex(
        max_sim=nb.max_sim,
        earlier_sim=nb.earlier_sim,
        parent=nb.parent,
        cluster=np.asarray(cluster, np.int64),
        example_ids=ids,
        info=info,
    )


def _index_stage(run) -> Stage:
    return Stage(run.dir.parent.parent, STAGE, VERSION, {"run": run.key, "n": len(run.table)})


def index_cached(run) -> bool:
    """Whether :func:`run_index` of this run would only read its cache (no search)."""
    return _index_stage(run).done


def run_index(run, *, device: str = "cpu", reporter: Reporter | None = None) -> DedupIndex:
    """The :class:`DedupIndex` of a run's pool, cached under ``<workdir>/dedup/<key>/``."""
    from .. import load_run
    from ..run import Run

    run = run if isinstance(run, Run) else load_run(run)
    rep = reporter or Reporter()
    t = run.table
    st = _index_stage(run)
    ids = t["example_id"].astype(str).to_numpy(object)
    cluster = t["cluster"].to_numpy(np.int64)
    if st.done:
        rep.stage("dedup", cached=True, detail=str(st.dir))
        d = st.dir
        return DedupIndex(
            max_sim=np.load(d / "max_sim.npy"),
            earlier_sim=np.load(d / "earlier_sim.npy"),
            parent=np.load(d / "parent.npy"),
            cluster=cluster,
            example_ids=ids,
            info=st.meta(),
        )
    rep.stage("dedup", detail=f"exact within-cluster search, {len(t):,} examples in {run.k} clusters")
    idx = dedup_index(
        run.embeddings,
        t["row"].to_numpy(np.int64),
        cluster,
        t["centroid_sim"].to_numpy(np.float64),
        ids,
        device=device,
        reporter=rep,
    )
    d = st.prepare()
    write_npy(d / "max_sim.npy", idx.max_sim)
    write_npy(d / "earlier_sim.npy", idx.earlier_sim)
    write_npy(d / "parent.npy", idx.parent)
    st.finish(**idx.info)
    idx.info = st.meta()
    rep.end_stage()
    return idx


def semdedup(
    run,
    *,
    eps: float | None = None,
    target_fraction: float | None = None,
    device: str = "cpu",
    reporter: Reporter | None = None,
) -> DedupResult:
    """SemDeDup on a run: see :mod:`backend.dedup` for the contract."""
    return run_index(run, device=device, reporter=reporter).at(eps=eps, target_fraction=target_fraction)
