"""A finished run, loaded from its folder: tables, arrays and images on demand."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import CurateError
from .io import read_json

NON_SCORE_COLUMNS = {
    "example_id",
    "path",
    "label",
    "split",
    "row",
    "source_row",
    "cluster",
    "centroid_sim",
    "map_x",
    "map_y",
}
LATEST = "latest.json"  # <workdir>/latest.json names the run that --workdir resolves to


def find_run_dir(path: str | Path) -> Path:
    """A run folder from a run folder itself or a workdir (its latest run)."""
    p = Path(path).expanduser().resolve()
    if (p / "run.json").exists():
        return p
    if (p / LATEST).exists():
        run = p / read_json(p / LATEST)["run"]
        if (run / "run.json").exists():
            return run
    raise CurateError(f"no finished run in {p}: run `curate run --source ... --workdir {path}` first")


class Run:
    """Read-only view of ``<workdir>/runs/<key>/`` (see :mod:`backend.pipeline`)."""

    def __init__(self, run_dir: str | Path):
        from .store import stage_dir_problem

        self.dir = Path(run_dir)
        problem = stage_dir_problem(self.dir)
        if problem:  # a file changed since the run finished: say which, instead of a reader's traceback
            raise CurateError(f"the run in {self.dir} is damaged ({problem}): run `curate run` again to rebuild it")
        self.config = read_json(self.dir / "run.json")

    def __repr__(self):
        return f"Run({str(self.dir)!r}, examples={self.n_examples})"

    @property
    def key(self) -> str:
        return self.config["stages"]["run"]

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per pool example (see :mod:`backend.pipeline`)."""
        return pd.read_parquet(self.dir / "examples.parquet")

    @cached_property
    def holdout(self) -> pd.DataFrame:
        return pd.read_parquet(self.dir / "holdout.parquet")

    @cached_property
    def skipped(self) -> pd.DataFrame:
        return pd.read_csv(self.dir / "skipped.csv", dtype=str, keep_default_na=False)

    @property
    def n_examples(self) -> int:
        return int(self.config["counts"]["examples"])

    @property
    def has_labels(self) -> bool:
        """Whether every pool example has a label (recorded by the run; guessed for runs before 0.2)."""
        if "has_labels" in self.config:
            return bool(self.config["has_labels"])
        return "supervised_prototype" in self.table.columns

    @property
    def classes(self) -> list[str]:
        return sorted(self.table["label"].dropna().unique().tolist()) if self.has_labels else []

    @property
    def k(self) -> int:
        return int(self.config["params"]["k"])

    @property
    def score_columns(self) -> list[str]:
        """Difficulty columns (higher = harder), in the metric registry's order (the paper's metric first).

        The run records its columns in ``run.json`` (``score_columns``, updated when scores are added
        later); registered metrics found in the table count too.  Runs before 0.2 recorded nothing:
        every column that is not bookkeeping counts.
        """
        from .scores import METRICS

        cols = list(self.table.columns)
        if "score_columns" in self.config:
            known = set(self.config["score_columns"])
            cols = [c for c in cols if c in known or (c in METRICS and c not in NON_SCORE_COLUMNS)]
        else:
            cols = [c for c in cols if c not in NON_SCORE_COLUMNS]
        order = list(METRICS)
        return sorted(cols, key=lambda c: (order.index(c) if c in order else len(order), c))

    @property
    def encoder(self) -> dict:
        """The encoder that made the embeddings: its name and identity (weights hash, preprocessing)."""
        if "encoder" in self.config:
            return dict(self.config["encoder"])
        return {"name": self.config["params"]["encoder"], "identity": self.config.get("embedding", {})}

    @cached_property
    def embeddings(self) -> np.ndarray:
        """All embedded rows (pool and held-out), memory-mapped; index with ``table.row``."""
        return np.load(self.config["embeddings_path"], mmap_mode="r")

    @cached_property
    def centroids(self) -> np.ndarray:
        return np.load(self.dir / "centroids.npy")

    @cached_property
    def source(self):
        """The source re-opened (for images of array data sets)."""
        from .sources import resolve_source

        p = self.config["params"]
        src = resolve_source(p["source"], data_root=p.get("data_root"), manifest=p.get("manifest"))
        if src.fingerprint != self.config["source"]["fingerprint"]:
            # e.g. the demo found another copy of its data from another folder: its images would not match
            raise CurateError(
                f"the source {p['source']!r} is not the one this run was computed on "
                f"({src.description}): run `curate run` again"
            )
        return src

    def load_image(self, position: int):
        """RGB PIL image of the example at ``position`` in :attr:`table` (or None)."""
        from .sources import BadImage, open_rgb

        row = self.table.iloc[int(position)]
        try:
            if isinstance(row["path"], str) and row["path"]:
                return open_rgb(row["path"])
            if not self.config["source"].get("has_files") and self.config["params"]["encoder"] != "precomputed":
                return self.source.load_image(int(row["source_row"]))
        except BadImage:
            return None
        return None

    @property
    def has_images(self) -> bool:
        return self.config["params"]["encoder"] != "precomputed" or self.table["path"].notna().any()

    def summary(self) -> dict:
        t = self.table
        out = {
            "run_dir": str(self.dir),
            "source": self.config["source"]["description"],
            "examples": self.n_examples,
            "holdout": int(self.config["counts"]["holdout"]),
            "skipped": int(self.config["counts"]["skipped"]),
            "image_size": self.config["source"]["image_size"],
            "encoder": self.config["params"]["encoder"],
            "embedding_dim": int(self.config["embedding"].get("dim", 0)),
            "k": self.k,
            "scores": self.score_columns,
        }
        if self.has_labels:
            out["classes"] = t["label"].value_counts().sort_index().to_dict()
        return out
