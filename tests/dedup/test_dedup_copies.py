"""Exact near-copies by perceptual hash: the hash is imagehash's pHash bit for bit; planted copies of real images
(saved twice, resized, JPEG re-encoded, slightly cropped) are grouped, distinct images are not; the bucketed search
equals all pairs; the same groups from Python and from ``curate dedup --copies``."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backend import CurateError
from backend.dedup import copy_groups, near_copies
from backend.dedup import phash as ph
from backend.dedup.copies import DEFAULT_MAX_DISTANCE


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def _planted(fashion_arrays):
    """The 200 fixture images, then copies of 10 of them; (images, origin index per image, kind per image)."""
    x, _, _ = fashion_arrays
    originals = [Image.fromarray(a) for a in x]
    images, origin, kind = list(originals), list(range(len(x))), ["original"] * len(x)
    for i in range(0, 200, 20):  # one image of every class
        im = originals[i]
        big = im.resize((112, 112), Image.Resampling.BICUBIC)
        for name, copy in (
            ("saved twice", Image.open(io.BytesIO(_png(im)))),
            ("resized x2", im.resize((56, 56), Image.Resampling.BICUBIC)),
            ("resized x0.75", im.resize((21, 21), Image.Resampling.LANCZOS)),
            ("jpeg q90", _jpeg(im, 90)),
            ("upscaled", big),
            ("upscaled, cropped 1 px", big.crop((1, 0, 112, 112))),
        ):
            images.append(copy)
            origin.append(i)
            kind.append(name)
    return images, np.asarray(origin), np.asarray(kind)


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_hash_is_imagehashs_phash(fashion_arrays):
    imagehash = pytest.importorskip("imagehash")
    x, _, _ = fashion_arrays
    ims = [Image.fromarray(a) for a in x[:60]] + [_jpeg(Image.fromarray(x[0]), 50).resize((40, 33))]
    for size in (8, 16):
        mine, ok, pixels = ph.hash_images(ims, len(ims), hash_size=size, batch=16)
        ref = np.stack([ph.pack(imagehash.phash(im, hash_size=size).hash.reshape(1, -1))[0] for im in ims])
        assert ok.all() and pixels[-1] == 40 * 33
        assert np.array_equal(mine, ref)
        assert str(imagehash.phash(ims[3], hash_size=size)) == "".join(f"{w:016x}" for w in mine[3])


def test_planted_copies_are_grouped_and_distinct_images_are_not(fashion_arrays):
    images, origin, kind = _planted(fashion_arrays)
    hashes, ok, pixels = ph.hash_images(images, len(images))
    cp = copy_groups(hashes, ok, pixels, [f"e{i}" for i in range(len(images))])
    planted = np.unique(origin[kind != "original"])
    for name in ("saved twice", "resized x2", "resized x0.75", "jpeg q90", "upscaled"):
        rows = np.flatnonzero(kind == name)
        assert (cp.group[rows] >= 0).all() and np.array_equal(cp.group[rows], cp.group[origin[rows]]), name
    cropped = np.flatnonzero(kind == "upscaled, cropped 1 px")
    # pHash is not crop-invariant: a 0.9% crop stays within 20 bits for most images, not all (88% of 200)
    assert (cp.group[cropped] == cp.group[origin[cropped]]).sum() >= 7
    # no group mixes two different originals: distinct Fashion-MNIST images are >= 50 bits apart here
    grouped = np.flatnonzero(cp.group >= 0)
    mixed = pd.Series(origin[grouped]).groupby(cp.group[grouped]).nunique()
    assert (mixed == 1).all()
    assert set(origin[grouped]) == set(planted)
    assert cp.n_groups == len(planted)
    # each group keeps its largest image (the 112 px upscale), and every other member points to it
    for g in range(cp.n_groups):
        mem = cp.members(g)
        assert cp.kept[mem].sum() == 1 and cp.kept[mem[0]]
        assert pixels[mem[0]] == pixels[mem].max() == 112 * 112
        assert (cp.representative[mem] == mem[0]).all() and cp.distance[mem[0]] == 0
    frame = cp.groups_frame()
    assert list(frame.columns) == ["group", "size", "representative", "representative_id", "max_hamming"]
    assert frame["size"].is_monotonic_decreasing and frame["max_hamming"].max() <= DEFAULT_MAX_DISTANCE
    assert cp.n_copies == int((cp.group >= 0).sum()) - cp.n_groups


def test_unreadable_images_are_never_grouped():
    blank = Image.new("L", (28, 28))
    hashes, ok, pixels = ph.hash_images([None, blank, None, blank.copy()], 4)
    assert ok.tolist() == [False, True, False, True] and (hashes[~ok] == 0).all()
    cp = copy_groups(hashes, ok, pixels, list("abcd"))
    assert cp.group.tolist() == [-1, 0, -1, 0]
    with pytest.raises(CurateError, match="outside"):
        copy_groups(hashes, ok, pixels, list("abcd"), max_distance=200)


def test_bucketed_search_equals_all_pairs():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, size=(300, 256), dtype=np.uint8).astype(bool)
    near = []
    for i in range(0, 300, 7):  # near-copies at 1..24 flipped bits, some chained through another copy
        for flips in (1, 5, 12, 24):
            b = base[i].copy()
            b[rng.choice(256, flips, replace=False)] ^= True
            near.append(b)
    bits = np.concatenate([base, np.stack(near), base[:5]])  # and 5 exact duplicates
    hashes = ph.pack(bits)
    for d in (0, 4, 13, 20):
        full = ph.hamming(hashes[:, None, :], hashes[None, :, :])
        iu, ju = np.triu_indices(len(hashes), 1)
        want = {(a, b) for a, b in zip(iu, ju) if full[a, b] <= d and not np.array_equal(hashes[a], hashes[b])}
        uniq, inv = np.unique(hashes, axis=0, return_inverse=True)
        i, j, dist = ph.close_pairs(uniq, d)
        assert (dist <= d).all() and (i < j).all()
        got_unique = set(zip(i.tolist(), j.tolist()))
        # every close pair of rows maps to a close pair of distinct hashes, and back
        want_unique = {(min(inv[a], inv[b]), max(inv[a], inv[b])) for a, b in want}
        assert got_unique == want_unique, d
        group = ph.group_hashes(hashes, np.ones(len(hashes), bool), d)
        for a, b in list(want)[:200]:
            assert group[a] == group[b] >= 0


@pytest.mark.slow
def test_near_copies_of_a_run_and_the_cli(tmp_path, fashion_arrays, fast_kwargs, capsys):
    from backend import run_pipeline
    from backend.cli import main

    x, y, classes = fashion_arrays
    root = tmp_path / "imgs"
    for i in range(60):
        d = root / classes[int(y[i * 3])].replace("/", "_").replace(" ", "_")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i * 3]).save(d / f"img{i:03d}.png")
    copy_of = {"img000.png": 0, "img010.png": 10}
    for name, i in copy_of.items():  # a resized copy and a JPEG re-encode of two images
        d = next(root.rglob(name)).parent
        Image.fromarray(x[i * 3]).resize((56, 56), Image.Resampling.BICUBIC).save(d / f"big_{name}")
        _jpeg(Image.fromarray(x[i * 3]), 90).save(d / f"jpeg_{name[:-4]}.jpg", quality=90)
    run = run_pipeline(str(root), tmp_path / "w", **fast_kwargs, metrics=("random",), k=4)
    from backend.dedup import hashes_cached

    assert not hashes_cached(run)
    cp = near_copies(run)
    assert hashes_cached(run)
    ids = run.table["example_id"].astype(str).to_numpy()
    assert cp.n_groups == 2 and cp.n_copies == 4
    for name in copy_of:
        members = {ids[p].rsplit("/", 1)[-1] for p in np.flatnonzero(cp.group == cp.group[_pos(ids, name)])}
        assert members == {name, f"big_{name}", f"jpeg_{name[:-4]}.jpg"}
        assert ids[cp.representative[_pos(ids, name)]].endswith(f"big_{name}")  # the largest image is kept
    assert (cp.group >= 0).sum() == 6
    again = near_copies(run, max_distance=0)  # the hashes are cached; another distance only regroups
    assert again.info["elapsed_s"] == cp.info["elapsed_s"] and again.n_groups <= cp.n_groups

    out = tmp_path / "kept.csv"
    assert main(["dedup", "--workdir", str(tmp_path / "w"), "--eps", "0.001", "--out", str(out), "--copies"]) == 0
    printed = capsys.readouterr().out
    assert "exact near-copies" in printed and "4 copies of 2 kept images" in printed
    frame = pd.read_csv(tmp_path / "kept.copies.csv")
    assert len(frame) == 6 and frame["kept"].sum() == 2
    assert set(frame["copy_group"]) == {0, 1}


def _pos(ids: np.ndarray, name: str) -> int:
    return int(np.flatnonzero([i.rsplit("/", 1)[-1] == name for i in ids])[0])
