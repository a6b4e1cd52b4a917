"""Bad files are skipped per file with a reason; odd image modes are converted, not rejected."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import backend.sources.images as images
from backend import run_pipeline
from backend.sources import BadImage, open_rgb

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _huge_header_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    data = bytearray(_png_bytes(Image.new("L", (1, 1))))
    ihdr = 8 + 8  # signature, then length + type of IHDR
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def _truncated_jpeg() -> bytes:
    """A 32x32 JPEG cut in half."""
    data = _jpeg_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)))
    return data[: len(data) // 2]


def _corrupt_png() -> bytes:
    """A real PNG whose compressed pixel data is damaged (the header is fine)."""
    arr = np.random.default_rng(5).integers(0, 255, (28, 28, 3), dtype=np.uint8)
    data = bytearray(_png_bytes(Image.fromarray(arr)))
    i = data.index(b"IDAT") + 4
    for j in range(i + 2, i + 40):
        data[j] ^= 0xA5
    return bytes(data)


def _modes(rng) -> dict[str, Image.Image]:
    rgb = Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8), "RGB")
    grey16 = Image.fromarray((rng.integers(0, 65535, (28, 28))).astype(np.uint16))
    pal_t = rgb.convert("P", palette=Image.ADAPTIVE, colors=16)
    pal_t.info["transparency"] = 0
    return {
        "grey.png": rgb.convert("L"),
        "bilevel.png": rgb.convert("1"),
        "grey_alpha.png": rgb.convert("LA"),
        "rgba.png": rgb.convert("RGBA"),
        "palette.png": rgb.convert("P", palette=Image.ADAPTIVE, colors=16),
        "palette_transparent.png": pal_t,
        "grey16.png": grey16,
        "cmyk.jpg": rgb.convert("CMYK"),
        "cmyk.tif": rgb.convert("CMYK"),
    }


def test_every_mode_is_converted_to_rgb(tmp_path):
    rng = np.random.default_rng(0)
    for name, img in _modes(rng).items():
        path = tmp_path / name
        img.save(path)
        out = open_rgb(path)
        assert out.mode == "RGB" and out.size == (28, 28), name
        arr = np.asarray(out)
        assert arr.dtype == np.uint8 and arr.std() > 0, name
    with Image.open(tmp_path / "grey16.png") as im:
        assert im.mode.startswith("I")  # really 16-bit on disk
    # 16-bit values are scaled to 8 bits, not clipped at 255: the image keeps its contrast
    g16 = np.asarray(Image.open(tmp_path / "grey16.png"), dtype=np.float64)
    conv = np.asarray(open_rgb(tmp_path / "grey16.png"), dtype=np.float64)[..., 0]
    assert np.corrcoef(g16.ravel(), conv.ravel())[0, 1] > 0.999
    np.testing.assert_allclose(conv, g16 / 257.0, atol=1.0)
    # transparent pixels become white, not black
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    clear.save(tmp_path / "clear.png")
    assert np.asarray(open_rgb(tmp_path / "clear.png")).min() == 255


def test_bad_files_raise_badimage_with_a_reason(tmp_path, monkeypatch):
    rgb = Image.new("RGB", (28, 28), (10, 200, 30))
    cases = {
        "truncated.jpg": (_truncated_jpeg(), "truncated or corrupt"),
        "corrupt.png": (_corrupt_png(), "truncated or corrupt"),
        # a PNG signature then noise: PIL may reject it at open or while reading (seeded: no flakiness)
        "garbage.png": (
            b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(200),
            "not an image|truncated or corrupt",
        ),
        "text.png": (b"this is not an image at all\n" * 10, "not an image"),
        "empty.png": (b"", "empty file"),
        "bomb.png": (_huge_header_png(100_000, 100_000), "decompression bomb"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(BadImage, match=reason):
            open_rgb(tmp_path / name)
    with pytest.raises(BadImage, match="not found"):
        open_rgb(tmp_path / "absent.png")
    # the per-file pixel limit is the module's MAX_PIXELS
    (tmp_path / "big.png").write_bytes(_png_bytes(rgb.resize((64, 64))))
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(BadImage, match="decompression bomb refused: 64x64"):
        open_rgb(tmp_path / "big.png")
    assert open_rgb(_write(tmp_path / "small.png", _png_bytes(rgb))).size == (28, 28)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def messy_folder(image_folder_copy) -> tuple[Path, dict[str, str], list[str]]:
    """The shared folder plus bad files (id -> reason keyword) and convertible odd modes (ids)."""
    root = image_folder_copy
    cls = sorted(p.name for p in root.iterdir())[0]
    d = root / cls
    big = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    bad = {
        f"{cls}/truncated.jpg": ("truncated or corrupt", _truncated_jpeg()),
        f"{cls}/corrupt.png": ("truncated or corrupt", _corrupt_png()),
        f"{cls}/zero.png": ("empty file", b""),
        f"{cls}/notes.txt": ("not an image file", b"labels are folder names\n"),
        f"{cls}/bomb.png": ("decompression bomb", _png_bytes(Image.fromarray(big))),
        f"{cls}/header_bomb.png": ("decompression bomb", _huge_header_png(100_000, 100_000)),
    }
    for rel, (_, data) in bad.items():
        (root / rel).write_bytes(data)
    os.symlink(root / "no-such-file.png", d / "dangling.png")  # unreadable even for root
    reasons = {rel: r for rel, (r, _) in bad.items()}
    reasons[f"{cls}/dangling.png"] = "unreadable"
    converted = []
    for name, img in _modes(np.random.default_rng(3)).items():
        img.save(d / f"mode_{name}")
        converted.append(f"{cls}/mode_{name}")
    return root, reasons, converted


def test_a_run_skips_bad_files_and_goes_on(messy_folder, tmp_path, monkeypatch, fast_kwargs, capsys):
    root, reasons, converted = messy_folder
    monkeypatch.setattr(images, "MAX_PIXELS", 40 * 40)  # 28x28 images pass, the 64x64 one is a "bomb"
    n_files = sum(1 for p in root.rglob("*") if p.is_file())  # the dangling link is not a file
    run = run_pipeline(str(root), tmp_path / "work", **fast_kwargs)
    skipped = pd.read_csv(run.dir / "skipped.csv", keep_default_na=False)
    assert list(skipped.columns) == ["example_id", "reason"]
    got = dict(zip(skipped["example_id"], skipped["reason"]))
    assert set(got) == set(reasons)
    for rel, keyword in reasons.items():
        assert keyword in got[rel], (rel, got[rel])
    assert run.summary()["skipped"] == len(reasons) == run.config["counts"]["skipped"]
    assert run.n_examples == n_files - (len(reasons) - 1)
    ids = set(run.table["example_id"])
    assert set(converted) <= ids  # odd modes are used, not rejected
    assert not ids & set(reasons)
    # bad rows never get a score
    assert np.isfinite(run.table["ssl_prototype"]).all()
    # the CLI summary counts them and says where the list is (same inputs: a cache hit)
    from backend.cli import main

    assert (
        main(
            [
                "run",
                "--source",
                str(root),
                "--workdir",
                str(tmp_path / "work"),
                "--map",
                "pca",
                "--workers",
                "0",
                "--batch-size",
                "64",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"  skipped        {len(reasons)}" in out
    assert f"skipped files are listed in {run.dir / 'skipped.csv'}" in out


@pytest.mark.skipif(ROOT, reason="root can read a chmod 000 file")
def test_unreadable_file_is_skipped(image_folder_copy, tmp_path, fast_kwargs):
    cls = sorted(p.name for p in image_folder_copy.iterdir())[0]
    locked = image_folder_copy / cls / "locked.png"
    Image.new("RGB", (28, 28), (1, 2, 3)).save(locked)
    locked.chmod(0)
    try:
        run = run_pipeline(str(image_folder_copy), tmp_path / "work", **fast_kwargs)
        skipped = dict(pd.read_csv(run.dir / "skipped.csv").itertuples(index=False))
        assert "unreadable" in skipped[f"{cls}/locked.png"] or "permission" in skipped[f"{cls}/locked.png"]
        assert run.summary()["skipped"] == 1
    finally:
        locked.chmod(0o644)


def test_a_bad_file_in_a_manifest_is_skipped(image_folder, tmp_path, fast_kwargs):
    files = sorted(p for p in image_folder.rglob("*.png"))[:30]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    rows = [str(p) for p in files] + ["broken.jpg", "absent.png"]
    pd.DataFrame({"path": rows}).to_csv(tmp_path / "list.csv", index=False)
    run = run_pipeline(str(tmp_path / "list.csv"), tmp_path / "work", **fast_kwargs)
    skipped = dict(pd.read_csv(run.dir / "skipped.csv").itertuples(index=False))
    assert set(skipped) == {"broken.jpg", "absent.png"}
    assert skipped["absent.png"] == "file not found"
    assert run.n_examples == 30 and run.summary()["skipped"] == 2


def test_permission_denied_is_a_reason_not_a_crash(tmp_path, monkeypatch):
    """The chmod-000 case, reproducible as root too: opening raises PermissionError."""
    path = _write(tmp_path / "locked.png", _png_bytes(Image.new("RGB", (8, 8))))

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(images.Image, "open", deny)
    with pytest.raises(BadImage, match="unreadable: permission denied"):
        open_rgb(path)


def test_failed_image_gets_a_zero_row_with_a_cnn(small_image_folder, tmp_path, fast_kwargs):
    cls = sorted(p.name for p in small_image_folder.iterdir())[0]
    (small_image_folder / cls / "broken.png").write_bytes(_corrupt_png())
    run = run_pipeline(
        str(small_image_folder), tmp_path / "w", encoder="resnet18", weights="random", image_size=32, **fast_kwargs
    )
    emb = np.asarray(run.embeddings)
    assert emb.shape[0] == 25 and run.n_examples == 24
    (failed_row,) = set(range(25)) - set(run.table["row"])
    assert not emb[failed_row].any()
    assert emb[run.table["row"]].any(axis=1).all()
    assert list(pd.read_csv(run.dir / "skipped.csv")["example_id"]) == [f"{cls}/broken.png"]
