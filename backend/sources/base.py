"""The :class:`Source` interface: where examples come from.

A source is an index table plus a way to load the image of each row.  The
index has one row per example with columns

``example_id``  stable id: relative path, or ``split/index`` for array sets
``path``        absolute path of the image file, or None (array sources)
``label``       class name as a string, or None (unlabelled)
``split``       ``"train"`` (the pool that is scored and pruned) or
                ``"test"`` (held out: never pruned, used for scaling estimates)
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image

from .images import open_rgb


class CurateWarning(UserWarning):
    """Input that works but probably not as the user meant (every score 0, labels dropped...)."""


HOLDOUT_SPLITS = frozenset({"test", "val", "valid", "validation", "holdout"})
INDEX_COLUMNS = ["example_id", "path", "label", "split"]


@dataclass
class Source:
    """Examples from one place.  Build with :func:`backend.sources.resolve_source`."""

    spec: str
    kind: str  # demo | folder | manifest | torchvision | embeddings
    index: pd.DataFrame
    fingerprint: str
    description: str
    classes: list[str] | None = None
    images: np.ndarray | None = None  # uint8 (N, H, W[, 3]) for array sources
    embeddings: np.ndarray | None = None  # (N, D) for precomputed embeddings
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id or path, reason)
    image_size: str = "varies"
    warnings: list[str] = field(default_factory=list)  # one line each: accepted, but probably not meant

    def __post_init__(self):
        for message in self.warnings:
            _warnings.warn(message, CurateWarning, stacklevel=3)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def has_images(self) -> bool:
        return self.images is not None or self.index["path"].notna().any()

    @property
    def has_files(self) -> bool:
        return self.images is None and self.index["path"].notna().any()

    @property
    def has_labels(self) -> bool:
        return self.index["label"].notna().any()

    def load_image(self, i: int) -> Image.Image:
        """RGB image of row ``i``; raises BadImage for an unreadable file."""
        if self.images is not None:
            arr = self.images[i]
            img = Image.fromarray(arr)
            return img.convert("RGB") if img.mode != "RGB" else img
        path = self.index["path"].iat[i]
        if path is None or (isinstance(path, float) and np.isnan(path)):
            raise ValueError("this source has no images (precomputed embeddings)")
        return open_rgb(path)

    def image_loader(self) -> Callable[[int], Image.Image]:
        return self.load_image


def make_index(example_id, path=None, label=None, split=None) -> pd.DataFrame:
    """The index table; ``df.attrs["warnings"]`` lists what was accepted but looks unintended."""
    n = len(example_id)
    df = pd.DataFrame(
        {
            "example_id": pd.Series(list(example_id), dtype="string"),
            "path": pd.Series(list(path) if path is not None else [None] * n, dtype="object"),
            "label": pd.Series(list(label) if label is not None else [None] * n, dtype="object"),
            "split": pd.Series(list(split) if split is not None else ["train"] * n, dtype="object"),
        }
    )
    df["label"] = _map_distinct(df["label"], _label_name)
    notes = []
    blank = _map_distinct(df["label"], lambda v: isinstance(v, str) and not v.strip()).to_numpy(bool)
    if blank.any():  # " " is not a class name anyone means: say so instead of a folder called "unlabelled"
        at = int(np.flatnonzero(blank)[0])
        first, value = df["example_id"].iat[at], df["label"].iat[at]
        notes.append(
            f"{int(blank.sum())} example(s) have a blank label ({value!r}, "
            f"e.g. {first}): they count as unlabelled (a run is labelled only when every pool "
            "example has a label); fill in the label or leave the cell empty"
        )
        df.loc[blank, "label"] = None
    df["split"] = _map_distinct(df["split"], lambda s: "test" if str(s).lower() in HOLDOUT_SPLITS else "train")
    df.attrs["warnings"] = notes
    return df


def _map_distinct(col: pd.Series, fn) -> pd.Series:
    """``col.map(fn)`` calling ``fn`` once per distinct value (a column of 1M labels has a few hundred)."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    mapped = np.array([fn(v) for v in uniques] + [fn(None)], dtype=object)
    return pd.Series(mapped[codes], index=col.index, dtype=object)  # code -1 (missing) takes the last entry


def _label_name(v) -> str | None:
    """A class name: None when missing; integer-valued floats (a numeric column with gaps) without ".0"."""
    if v is None or (pd.api.types.is_scalar(v) and pd.isna(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)
