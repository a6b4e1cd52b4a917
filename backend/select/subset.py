"""Choosing the kept subset, and writing it out.

Strategies (scores are "higher = harder"):

``hard``    keep the highest scores
``easy``    keep the lowest scores
``random``  keep a seeded uniform sample (ranked by the ``random`` hash score)

``balance="class"`` (or ``"cluster"``) keeps the same fraction inside every
class (cluster): quotas by largest remainder, so the total is exact.  Ties are
broken by ``example_id``; the same inputs and seed always give the same list.

A :class:`Ranking` is computed once per (strategy, metric, balance, seed);
``mask(n_keep)`` is then O(N) numpy, which keeps the app's slider fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import atomic_path, write_json
from ..scores import random_score

STRATEGIES = ("hard", "easy", "random")
BALANCES = ("none", "class", "cluster")
FORMATS = (".csv", ".parquet", ".json", ".txt")
EXPORT_COLUMNS = ["example_id", "path", "label", "cluster"]


def keep_count_for(n: int, keep: float | None = None, keep_count: int | None = None) -> int:
    """Number of examples to keep, validated."""
    if keep_count is not None:
        if keep is not None:
            raise CurateError("pass either --keep or --keep-count, not both")
        if not 1 <= int(keep_count) <= n:
            raise CurateError(f"--keep-count {keep_count} is outside 1..{n} (the run has {n} examples)")
        return int(keep_count)
    if keep is None:
        raise CurateError("pass --keep FRACTION (0 < f <= 1) or --keep-count N")
    keep = float(keep)
    if not (0.0 < keep <= 1.0) or np.isnan(keep):
        raise CurateError(f"keep fraction {keep} is outside (0, 1]: pass e.g. --keep 0.7 to keep 70%")
    return max(1, min(n, int(round(keep * n))))


def _quotas(sizes: np.ndarray, n_keep: int) -> np.ndarray:
    """Largest-remainder apportionment of n_keep over groups proportional to sizes."""
    total = sizes.sum()
    exact = sizes * (n_keep / total)
    q = np.minimum(np.floor(exact).astype(np.int64), sizes)
    short = n_keep - q.sum()
    if short > 0:
        rem = exact - q
        rem[q >= sizes] = -1
        order = np.lexsort((np.arange(len(sizes)), -rem))
        q[order[:short]] += 1
    return q


class Ranking:
    """The order in which a strategy keeps examples, precomputed."""

    def __init__(self, table: pd.DataFrame, *, strategy: str = "hard", metric: str = "ssl_prototype",
                 balance: str = "none", seed: int = 0):
        if strategy not in STRATEGIES:
            raise CurateError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        if balance not in BALANCES:
            raise CurateError(f"unknown balance {balance!r}: use one of {', '.join(BALANCES)}")
        if strategy != "random" and metric not in table.columns:
            raise CurateError(f"metric {metric!r} is not in this run (available: "
                              f"{', '.join(c for c in table.columns if c in _score_cols(table))}): pass --metric")
        if balance == "class" and (table["label"].isna().any()):
            raise CurateError("--balance class needs labels and this run has none: use --balance none or cluster")
        self.strategy, self.metric, self.balance, self.seed = strategy, metric, balance, seed
        self.n = len(table)
        ids = table["example_id"].astype(str).to_numpy()
        if strategy == "random":
            key = random_score(ids, seed)
        else:
            key = table[metric].to_numpy(np.float64)
            key = -key if strategy == "hard" else key
        # position in keep order: by key, ties by example_id
        order = np.lexsort((ids, key))
        self.order = order
        if balance == "none":
            self.group = np.zeros(self.n, np.int64)
        else:
            col = "label" if balance == "class" else "cluster"
            self.group = pd.factorize(table[col].astype(str), sort=True)[0].astype(np.int64)
        self.sizes = np.bincount(self.group)
        # rank of each example inside its group, following the global order
        # positions along the order, grouped by group (stable keeps the order inside a group)
        by_group = np.argsort(self.group[order], kind="stable")
        starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        pos_in_group = np.empty(self.n, np.int64)
        pos_in_group[by_group] = np.arange(self.n) - np.repeat(starts, self.sizes)
        self.group_rank = np.empty(self.n, np.int64)
        self.group_rank[order] = pos_in_group
        self.global_rank = np.empty(self.n, np.int64)
        self.global_rank[order] = np.arange(self.n)

    def mask(self, n_keep: int) -> np.ndarray:
        """Boolean mask of kept examples when keeping ``n_keep``."""
        quotas = _quotas(self.sizes, n_keep)
        return self.group_rank < quotas[self.group]

    def params(self) -> dict:
        return {"strategy": self.strategy, "metric": None if self.strategy == "random" else self.metric,
                "balance": self.balance, "seed": self.seed}


def _score_cols(table):
    from ..run import NON_SCORE_COLUMNS

    return [c for c in table.columns if c not in NON_SCORE_COLUMNS]


@dataclass
class Selection:
    """The kept subset of a run, with everything needed to reproduce it."""

    kept: pd.DataFrame
    n_total: int
    params: dict
    run_info: dict
    per_class: dict = field(default_factory=dict)

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    def manifest(self) -> dict:
        return {
            "tool": "curation-studio",
            "selection": self.params,
            "counts": {"total": self.n_total, "kept": self.n_kept, "per_class": self.per_class},
            "run": self.run_info,
            "versions": _versions(),
            "reproduce": _reproduce_cmd(self),
        }


def select_subset(run, *, keep: float | None = None, keep_count: int | None = None, strategy: str = "hard",
                  metric: str = "ssl_prototype", balance: str = "none", seed: int = 0,
                  ranking: Ranking | None = None) -> Selection:
    """Keep ``keep`` (fraction) or ``keep_count`` examples of ``run`` by ``strategy``.

    ``run`` is a :class:`backend.Run` (or a run/work directory).  The kept rows
    come back in the run's table order with a ``rank`` column (1 = first kept).
    """
    from ..pipeline import find_run_dir
    from ..run import Run

    if not isinstance(run, Run):
        run = Run(find_run_dir(run))
    table = run.table
    n_keep = keep_count_for(len(table), keep, keep_count)
    rk = ranking or Ranking(table, strategy=strategy, metric=metric, balance=balance, seed=seed)
    mask = rk.mask(n_keep)
    cols = EXPORT_COLUMNS + run.score_columns
    kept = table.loc[mask, cols].copy()
    kept.insert(len(EXPORT_COLUMNS), "rank", rk.global_rank[mask] + 1)
    per_class = {}
    if run.has_labels:
        tot = table["label"].value_counts()
        kc = kept["label"].value_counts()
        per_class = {str(c): {"total": int(tot[c]), "kept": int(kc.get(c, 0))} for c in sorted(tot.index)}
    params = {"keep_fraction": keep, "keep_count": n_keep, **rk.params()}
    run_info = {"dir": str(run.dir), "key": run.key, "source": run.config["source"]["spec"],
                "source_fingerprint": run.config["source"]["fingerprint"],
                "params": run.config["params"], "stages": run.config["stages"]}
    return Selection(kept=kept.reset_index(drop=True), n_total=len(table), params=params, run_info=run_info,
                     per_class=per_class)


def _check_out(out: Path, force: bool) -> None:
    if out.is_dir():
        raise CurateError(f"{out} is a folder: pass a file name ending in {', '.join(FORMATS)} as --out")
    if out.exists() and not force:
        raise CurateError(f"{out} already exists: pass --force to overwrite it or choose another --out")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CurateError(f"cannot create {parent} ({exc.strerror}): choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise CurateError(f"{parent} is not writable: choose another --out")


def render_selection(sel: Selection, fmt: str) -> bytes:
    """The file contents for ``fmt`` (".csv", ".parquet", ".json", ".txt")."""
    df = sel.kept
    if fmt == ".csv":
        return df.to_csv(index=False).encode()
    if fmt == ".json":
        return (df.to_json(orient="records", indent=1, force_ascii=False) + "\n").encode()
    if fmt == ".txt":
        lines = [p if isinstance(p, str) and p else i for p, i in zip(df["path"], df["example_id"])]
        return ("\n".join(lines) + "\n").encode()
    if fmt == ".parquet":
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    raise CurateError(f"unknown output format {fmt!r}: end --out with {', '.join(FORMATS)}")


def write_selection(sel: Selection, out: str | Path, *, force: bool = False) -> Path:
    """Write the kept list (format from the file ending) and ``OUT.manifest.json`` beside it."""
    out = Path(out).expanduser().resolve()
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise CurateError(f"cannot tell the format of {out.name}: end --out with {', '.join(FORMATS)}")
    _check_out(out, force)
    manifest_path = out.with_name(out.name + ".manifest.json")
    data = render_selection(sel, fmt)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    man = sel.manifest()
    man["output"] = {"path": str(out), "format": fmt.lstrip("."), "rows": sel.n_kept,
                     "sha256": hashlib.sha256(data).hexdigest()}
    write_json(manifest_path, man)
    return out


def export_tree(run, sel: Selection, out_dir: str | Path, *, force: bool = False) -> dict:
    """ImageFolder tree ``out_dir/<label>/<file>`` of symlinks to the kept images.

    Sources are never copied, moved or modified.  For array data sets (no image
    files, e.g. torchvision MNIST) the images are written as PNG instead.
    """
    from ..run import Run

    if not isinstance(run, Run):
        from ..pipeline import find_run_dir

        run = Run(find_run_dir(run))
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise CurateError(f"{out_dir} is a file: export-tree writes a folder, choose another --out")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise CurateError(f"{out_dir} exists and is not empty: pass --force to replace it or choose another --out")
        if not _is_export_tree(out_dir):
            # --force replaces an earlier export, never a folder of real files (it could be the source)
            raise CurateError(f"{out_dir} holds files that export-tree did not write: refusing to delete it "
                              "even with --force; choose an empty or new --out")
    if not run.has_images:
        raise CurateError("this run has no images (precomputed embeddings without paths): "
                          "use `curate select --out kept.csv` instead")
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise CurateError(f"cannot create {out_dir} ({exc.strerror}): choose a writable --out") from None
    pos_of = pd.Series(np.arange(run.n_examples), index=run.table["example_id"].astype(str))
    n_links = n_written = 0
    used: set[str] = set()
    try:
        for _, r in sel.kept.iterrows():
            label = str(r["label"]) if isinstance(r["label"], str) else "unlabelled"
            label_dir = label.replace("/", "_").replace(os.sep, "_").strip() or "unlabelled"
            if label_dir.startswith("."):  # never ".." (outside the tree) nor a hidden folder
                label_dir = "_" + label_dir
            path = r["path"] if isinstance(r["path"], str) and r["path"] else None
            base = os.path.basename(path) if path else str(r["example_id"]).replace("/", "_") + ".png"
            name = base
            if f"{label_dir}/{name}" in used:  # same file name from different folders
                name = hashlib.sha1(str(r["example_id"]).encode()).hexdigest()[:8] + "_" + base
            used.add(f"{label_dir}/{name}")
            (tmp / label_dir).mkdir(exist_ok=True)
            dest = tmp / label_dir / name
            if path:
                os.symlink(path, dest)
                n_links += 1
            else:
                img = run.load_image(int(pos_of[str(r["example_id"])]))
                if img is None:
                    raise CurateError(f"cannot load the image of {r['example_id']}: is the source still there?")
                img.save(dest)
                n_written += 1
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    man = sel.manifest()
    man["output"] = {"path": str(out_dir), "format": "imagefolder", "symlinks": n_links, "png_written": n_written}
    write_json(out_dir.with_name(out_dir.name + ".manifest.json"), man)
    return {"symlinks": n_links, "png_written": n_written, "out": str(out_dir)}


def _is_export_tree(folder: Path) -> bool:
    """True when ``folder`` is export-tree output: its manifest beside it, label folders of symlinks/PNGs."""
    try:
        out = json.loads(folder.with_name(folder.name + ".manifest.json").read_text()).get("output", {})
    except (OSError, ValueError, AttributeError):
        return False
    if out.get("format") != "imagefolder" or out.get("path") != str(folder):
        return False
    for entry in folder.iterdir():
        if entry.is_symlink() or not entry.is_dir():
            return False
        for item in entry.iterdir():
            if not (item.is_symlink() or (item.is_file() and item.suffix == ".png")):
                return False
    return True


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("curation-studio", "numpy", "pandas", "faiss-cpu", "torch", "torchvision", "umap-learn", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _reproduce_cmd(sel: Selection) -> str:
    p = sel.params
    parts = ["curate", "select", "--workdir", json.dumps(sel.run_info["dir"])]
    parts += ["--keep-count", str(p["keep_count"])] if p.get("keep_fraction") is None else ["--keep", str(p["keep_fraction"])]
    parts += ["--strategy", p["strategy"], "--balance", p["balance"], "--seed", str(p["seed"])]
    if p.get("metric"):
        parts += ["--metric", p["metric"]]
    return " ".join(parts) + " --out FILE"

