"""The image size of a data set of files, as a person reads it: "28x28 grey (all 200 checked)".

A folder or a manifest source does not know its images' sizes before they are
opened, so the run would record "varies"; this reads the files' *headers*
(no pixels are decoded): every file up to ``ALL_UP_TO`` images, a seeded
sample of ``SAMPLE`` above.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

MODE_WORDS = {"L": "grey", "LA": "grey", "1": "black and white", "P": "palette", "RGB": "RGB", "RGBA": "RGBA"}
ALL_UP_TO = 10_000
SAMPLE = 2_000


def image_size_text(sizes: list[tuple[int, int, str]], n_total: int) -> str:
    """What ``sizes`` ((width, height, PIL mode) per checked image) show, and how many were checked.

    "28x28 grey (all 200 checked)"; "varies: 24x24 to 640x480, most often 28x28 (80%), RGB (a sample of ...)".
    """
    if not sizes:
        return "unknown (no image could be read)"
    n = len(sizes)
    checked = f"all {n:,} checked" if n >= n_total else f"a sample of {n:,} of {n_total:,} checked"
    counts = Counter(f"{w}x{h}" for w, h, _ in sizes).most_common()
    mode = " and ".join(sorted({MODE_WORDS.get(m, m) for _, _, m in sizes}))
    if len(counts) == 1:
        return f"{counts[0][0]} {mode} ({checked})"
    areas = sorted((w * h, f"{w}x{h}") for w, h, _ in sizes)
    top, n_top = counts[0]
    return f"varies: {areas[0][1]} to {areas[-1][1]}, most often {top} ({n_top / n:.0%}), {mode} ({checked})"


def measure_image_size(paths: Sequence[str], n_total: int | None = None) -> str:
    """Read the headers of ``paths`` (all, or a seeded sample above ``ALL_UP_TO``) and describe their sizes.

    Files outside the allowed folders (``backend.sources.confine``) and unreadable ones are skipped.
    """
    from PIL import Image

    from .confine import is_allowed

    files = np.asarray([str(p) for p in paths], dtype=object)
    n_total = len(files) if n_total is None else int(n_total)
    if len(files) > ALL_UP_TO:
        files = files[np.sort(np.random.default_rng(0).choice(len(files), SAMPLE, replace=False))]
    sizes = []
    for f in files:
        if not is_allowed(f):
            continue
        try:
            with Image.open(f) as im:  # the header only
                sizes.append((int(im.size[0]), int(im.size[1]), str(im.mode)))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return image_size_text(sizes, n_total)
