"""Opening user images safely.

Every supported mode is converted to 8-bit RGB (grey, palette, RGBA, CMYK and
16-bit included).  Anything that cannot be read raises :class:`BadImage` with a
short reason; callers skip that file and record the reason in ``skipped.csv``.
Files are only ever opened for reading.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageFile

from .confine import OUTSIDE, is_allowed

IMAGE_EXTENSIONS = frozenset(
    [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".jfif"]
)

# Images above this many pixels are refused (per file) as decompression bombs.
MAX_PIXELS = 89_478_485  # PIL's own default limit
ImageFile.LOAD_TRUNCATED_IMAGES = False


class BadImage(Exception):
    """An image that cannot be used; ``str(exc)`` is the reason."""


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` read-only and return an 8-bit RGB image, or raise BadImage.

    Under confinement (see :mod:`backend.sources.confine`) a path outside the
    allowed folders is refused before anything about it is looked at.
    """
    if not is_allowed(path):
        raise BadImage(OUTSIDE)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise BadImage("file not found") from None
    except OSError as exc:
        raise BadImage(f"unreadable: {exc.strerror or exc}") from None
    if size == 0:
        raise BadImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise BadImage(f"decompression bomb refused: {w}x{h} pixels is over the {MAX_PIXELS:,}-pixel limit")
                im.load()
                return to_rgb(im)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"decompression bomb refused: {exc}") from None
    except Image.UnidentifiedImageError:
        raise BadImage("not an image (PIL cannot identify the format)") from None
    except PermissionError:
        raise BadImage("unreadable: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImage(f"truncated or corrupt image: {exc}") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without rejecting it."""
    mode = im.mode
    if mode == "RGB":
        return im.copy() if im.readonly else im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if mode.startswith("I;16") and hi > 255:
            arr = arr / 257.0
        elif hi > 255 or lo < 0 or mode == "F":
            arr = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")
