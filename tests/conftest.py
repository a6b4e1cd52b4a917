"""Shared fixtures: real small image data, offline.

Images are a few hundred Fashion-MNIST images written as PNG/JPEG when
Debian's ``dataset-fashion-mnist`` files exist, otherwise generated PIL images
whose shape and colour depend on the class.  Nothing is ever downloaded:
``CURATE_OFFLINE`` is set for the whole session.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("CURATE_OFFLINE", "1")  # never probe the network from tests

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
N_CLASSES = 10
PER_CLASS = 20  # 200 images in the shared folder


def has_fashion_mnist() -> bool:
    if os.environ.get("CURATE_TEST_NO_FASHION"):  # exercise the generated-images fallback
        return False
    return (FASHION_DIR / "train-images-idx3-ubyte.gz").exists() and (
        FASHION_DIR / "train-labels-idx1-ubyte.gz"
    ).exists()


def _generated_images(per_class: int, n_classes: int, seed: int = 0):
    """RGB 28x28 images: class c is a shape (by c % 5) in a colour (by c) on a noisy background."""
    rng = np.random.default_rng(seed)
    imgs, labels = [], []
    for c in range(n_classes):
        hue = np.array([(97 * c) % 256, (53 * c + 80) % 256, (181 * c + 40) % 256])
        for _ in range(per_class):
            bg = rng.integers(0, 60, size=(28, 28, 3)).astype(np.uint8)
            im = Image.fromarray(bg, "RGB")
            d = ImageDraw.Draw(im)
            x0, y0 = rng.integers(2, 8, size=2)
            x1, y1 = x0 + rng.integers(14, 19), y0 + rng.integers(14, 19)
            col = tuple(int(v) for v in np.clip(hue + rng.integers(-20, 20, 3), 0, 255))
            kind = c % 5
            if kind == 0:
                d.ellipse([x0, y0, x1, y1], fill=col)
            elif kind == 1:
                d.rectangle([x0, y0, x1, y1], fill=col)
            elif kind == 2:
                d.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=col)
            elif kind == 3:
                d.line([x0, y0, x1, y1], fill=col, width=4)
                d.line([x0, y1, x1, y0], fill=col, width=4)
            else:
                d.rectangle([x0, (y0 + y1) // 2 - 2, x1, (y0 + y1) // 2 + 2], fill=col)
            imgs.append(np.asarray(im))
            labels.append(c)
    return np.stack(imgs), np.asarray(labels)


@pytest.fixture(scope="session")
def fashion_arrays():
    """(images uint8 (N, 28, 28[, 3]), labels int, class names): PER_CLASS per class."""
    if has_fashion_mnist():
        from backend.sources.arrays import FASHION_CLASSES, _read_idx

        x = _read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz")
        y = _read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz").astype(np.int64)
        pick = np.concatenate([np.flatnonzero(y == c)[:PER_CLASS] for c in range(N_CLASSES)])
        return np.ascontiguousarray(x[pick]), y[pick], list(FASHION_CLASSES)
    x, y = _generated_images(PER_CLASS, N_CLASSES)
    return x, y, [f"class{c}" for c in range(N_CLASSES)]


def _class_dir(name: str) -> str:
    return name.replace("/", "_").replace(" ", "_")


def write_image_folder(root: Path, images, labels, classes, *, layout: str = "class") -> list[Path]:
    """Write images as PNG (even index) and JPEG (odd index).

    layout: "class" (root/<class>/img), "flat" (root/a/b/img, no labels), "split" (root/{train,test}/<class>/img).
    """
    root = Path(root)
    paths = []
    for i, (arr, lab) in enumerate(zip(images, labels)):
        cls = _class_dir(classes[int(lab)])
        ext = ".png" if i % 2 == 0 else ".jpg"
        if layout == "class":
            p = root / cls / f"img{i:04d}{ext}"
        elif layout == "flat":
            p = root / f"part{i % 3}" / ("deep" if i % 2 else "") / f"img{i:04d}{ext}"
        elif layout == "split":
            p = root / ("test" if i % 5 == 0 else "train") / cls / f"img{i:04d}{ext}"
        else:  # pragma: no cover
            raise ValueError(layout)
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(p, quality=95) if ext == ".jpg" else Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def fashion_dir() -> Path | None:
    """Debian's Fashion-MNIST IDX folder, or None when the package is not installed."""
    return FASHION_DIR if has_fashion_mnist() else None


@pytest.fixture(scope="session")
def image_writer():
    """:func:`write_image_folder` for tests (import conftest would be ambiguous across test folders)."""
    return write_image_folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory, fashion_arrays) -> Path:
    """ImageFolder layout (one sub-folder per class), PNG and JPEG.  Read-only: copy before changing."""
    root = tmp_path_factory.mktemp("imagefolder")
    x, y, classes = fashion_arrays
    write_image_folder(root, x, y, classes)
    return root


@pytest.fixture
def image_folder_copy(image_folder, tmp_path) -> Path:
    """A private copy of :func:`image_folder` that a test may change."""
    dest = tmp_path / "images"
    shutil.copytree(image_folder, dest)
    return dest


@pytest.fixture
def small_image_folder(tmp_path, fashion_arrays) -> Path:
    """4 classes x 6 images, a private folder (cheap to embed with a CNN)."""
    x, y, classes = fashion_arrays
    pick = np.concatenate([np.flatnonzero(y == c)[:6] for c in range(4)])
    root = tmp_path / "small"
    write_image_folder(root, x[pick], y[pick], classes)
    return root


@pytest.fixture(scope="session")
def fast_kwargs() -> dict:
    """run_pipeline options that keep a test quick on 2 CPU cores."""
    return {"map_method": "pca", "num_workers": 0, "device": "cpu", "batch_size": 64}


@pytest.fixture(scope="session")
def base_run(tmp_path_factory, image_folder, fast_kwargs):
    """One finished run on :func:`image_folder` (pixels encoder, PCA map).  Read-only."""
    from backend import run_pipeline

    work = tmp_path_factory.mktemp("base_work")
    return run_pipeline(str(image_folder), work, **fast_kwargs)
