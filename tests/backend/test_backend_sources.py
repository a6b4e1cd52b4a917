"""Every source kind: folders, manifests, torchvision roots, precomputed embeddings, the demo."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backend import CurateError, run_pipeline
from backend.sources import resolve_source
from backend.sources.folder import load_folder


def _rel_ids(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# ---- image folders ----------------------------------------------------------------------


def test_imagefolder_labels_come_from_folders(image_folder, fashion_arrays):
    src = resolve_source(str(image_folder))
    _, y, _ = fashion_arrays
    assert src.kind == "folder"
    assert len(src) == len(y)
    assert sorted(src.index["example_id"]) == _rel_ids(image_folder)
    for eid, path, label in src.index[["example_id", "path", "label"]].itertuples(index=False):
        assert Path(path).is_absolute() and Path(path).exists()
        assert label == eid.split("/")[0] == Path(path).parent.name
    assert src.classes == sorted({p.name for p in image_folder.iterdir()})
    assert src.has_labels and set(src.index["split"]) == {"train"}
    assert "labels from sub-folders" in src.description


def test_unlabelled_folder_is_read_recursively(tmp_path, fashion_arrays, image_writer):
    x, y, classes = fashion_arrays
    root = tmp_path / "flat"
    image_writer(root, x[:30], y[:30], classes, layout="flat")
    Image.fromarray(x[30]).save(root / "at_root.png")  # an image at the top: no class layout
    src = resolve_source(str(root))
    assert len(src) == 31
    assert not src.has_labels and src.classes is None
    assert "at_root.png" in set(src.index["example_id"])
    assert any(eid.count("/") == 2 for eid in src.index["example_id"])  # part*/deep/img*
    assert sorted(src.index["example_id"]) == _rel_ids(root)
    # labels="none" forces unlabelled even for an ImageFolder layout
    forced = load_folder(root / "part1", labels="none")
    assert not forced.has_labels


def test_split_class_layout_holds_out_the_test_split(tmp_path, fashion_arrays, fast_kwargs, image_writer):
    x, y, classes = fashion_arrays
    root = tmp_path / "split"
    image_writer(root, x[:60], y[:60], classes, layout="split")
    src = resolve_source(str(root))
    n_test = sum(1 for i in range(60) if i % 5 == 0)
    assert (src.index["split"] == "test").sum() == n_test
    assert all(eid.split("/")[1] == lab for eid, lab in zip(src.index["example_id"], src.index["label"]))
    run = run_pipeline(str(root), tmp_path / "work", **fast_kwargs)
    assert run.n_examples == 60 - n_test and len(run.holdout) == n_test
    assert set(run.table["split"]) == {"train"}
    assert all(eid.startswith("test/") for eid in run.holdout["example_id"])


# ---- manifests --------------------------------------------------------------------------


def _manifest_frame(image_folder: Path, prefix: str) -> pd.DataFrame:
    files = sorted(p for p in image_folder.rglob("*") if p.is_file())[:40]
    return pd.DataFrame(
        {
            "path": [prefix + p.relative_to(image_folder).as_posix() for p in files],
            "label": [p.parent.name for p in files],
            "split": ["test" if i % 4 == 0 else "train" for i in range(len(files))],
        }
    )


@pytest.mark.parametrize("ext", [".csv", ".parquet"])
def test_manifest_relative_paths_resolve_against_its_folder(tmp_path, image_folder, monkeypatch, ext):
    images = tmp_path / "images"
    shutil.copytree(image_folder, images)
    meta = tmp_path / "meta"
    meta.mkdir()
    df = _manifest_frame(images, "../images/")
    df.loc[len(df)] = ["../images/missing.png", "Bag", "train"]  # listed but absent: skipped
    man = meta / f"list{ext}"
    df.to_csv(man, index=False) if ext == ".csv" else df.to_parquet(man, index=False)
    monkeypatch.chdir("/")  # the current folder must not matter
    src = resolve_source(str(man))
    assert src.kind == "manifest" and len(src) == 40
    for path in src.index["path"]:
        assert Path(path).is_absolute() and Path(path).exists()
        assert Path(path).is_relative_to(images)
    assert list(src.index["example_id"]) == list(df["path"][:40])  # ids: the paths as listed
    assert (src.index["split"] == "test").sum() == 10
    assert list(src.index["label"]) == list(df["label"][:40])
    assert [r for _, r in src.skipped] == ["file not found"]


def test_manifest_prefix_and_example_id_column(tmp_path, image_folder):
    df = _manifest_frame(image_folder, str(image_folder) + "/")  # absolute paths
    df.insert(0, "example_id", [f"ex{i:03d}" for i in range(len(df))])
    man = tmp_path / "list.txt"  # an unusual ending: the manifest: prefix forces the kind
    df.to_csv(man, index=False)
    src = resolve_source(f"manifest:{man}")
    assert list(src.index["example_id"]) == list(df["example_id"])
    with pytest.raises(CurateError, match="cannot tell what"):
        resolve_source(str(man))


# ---- torchvision data sets ---------------------------------------------------------------


@pytest.fixture
def fashion_root(tmp_path, fashion_dir) -> Path:
    if fashion_dir is None:
        pytest.skip("Debian's dataset-fashion-mnist files are not installed")
    raw = tmp_path / "tvroot" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in fashion_dir.glob("*.gz"):
        os.symlink(f, raw / f.name)
    return tmp_path / "tvroot"


def test_torchvision_fashionmnist_from_a_local_root(fashion_root, tmp_path, fast_kwargs):
    src = resolve_source("torchvision:FashionMNIST", data_root=str(fashion_root))
    assert src.kind == "torchvision" and len(src) == 70000
    assert (src.index["split"] == "train").sum() == 60000
    assert src.index["example_id"].iat[0] == "train/0" and src.index["example_id"].iat[-1] == "test/9999"
    assert len(src.classes) == 10 and "Trouser" in src.classes
    img = src.load_image(0)
    assert img.mode == "RGB" and img.size == (28, 28)
    run = run_pipeline(
        "torchvision:FashionMNIST", tmp_path / "work", data_root=str(fashion_root), limit=60, **fast_kwargs
    )
    assert run.n_examples == 60 and len(run.holdout) == 60
    assert all(eid.startswith("train/") for eid in run.table["example_id"])


def test_torchvision_unknown_name_and_missing_root(tmp_path):
    with pytest.raises(CurateError, match="unknown torchvision data set 'ImageNet22k'") as exc:
        resolve_source("torchvision:ImageNet22k", data_root=str(tmp_path))
    assert "CIFAR10" in str(exc.value)
    with pytest.raises(CurateError, match="--download"):
        resolve_source("torchvision:CIFAR10", data_root=str(tmp_path / "nothing-here"))


# ---- precomputed embeddings --------------------------------------------------------------


def _blobs(n_per=30, k=3, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 5
    x = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


def test_npy_embeddings_without_manifest(tmp_path, fast_kwargs):
    x, _ = _blobs()
    np.save(tmp_path / "emb.npy", x)
    src = resolve_source(str(tmp_path / "emb.npy"))
    assert src.kind == "embeddings" and src.embeddings.shape == x.shape
    assert list(src.index["example_id"][:3]) == ["0", "1", "2"] and not src.has_labels
    run = run_pipeline(str(tmp_path / "emb.npy"), tmp_path / "work", k=3, **fast_kwargs)
    assert run.n_examples == 90 and not run.has_labels
    np.testing.assert_array_equal(np.asarray(run.embeddings)[run.table["row"]], x)
    assert run.config["params"]["encoder"] == "precomputed"


def test_npy_embeddings_with_manifest(tmp_path, fast_kwargs):
    x, y = _blobs()
    np.save(tmp_path / "emb.npy", x)
    (tmp_path / "m").mkdir()
    man = tmp_path / "m" / "ids.csv"
    pd.DataFrame(
        {
            "example_id": [f"e{i}" for i in range(len(x))],
            "path": [f"img/{i}.png" for i in range(len(x))],
            "label": [f"c{c}" for c in y],
        }
    ).to_csv(man, index=False)
    src = resolve_source(str(tmp_path / "emb.npy"), manifest=str(man))
    assert list(src.index["example_id"][:2]) == ["e0", "e1"]
    assert src.index["path"].iat[1] == str(tmp_path / "m" / "img" / "1.png")
    assert src.classes == ["c0", "c1", "c2"]
    run = run_pipeline(str(tmp_path / "emb.npy"), tmp_path / "work", manifest=str(man), **fast_kwargs)
    assert run.k == 3 and run.has_labels  # k = number of classes
    # well separated blobs: every cluster is one class
    assert run.table.groupby("cluster")["label"].nunique().max() == 1
    # a manifest with the wrong number of rows is refused
    pd.DataFrame({"example_id": ["a", "b"]}).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(CurateError, match="row for row"):
        resolve_source(str(tmp_path / "emb.npy"), manifest=str(tmp_path / "short.csv"))


def test_parquet_embeddings_list_and_wide(tmp_path, fast_kwargs):
    x, y = _blobs()
    ids = [f"id{i:03d}" for i in range(len(x))]
    pd.DataFrame(
        {
            "example_id": ids,
            "embedding": list(x),
            "label": y.astype(str),
            "path": [f"imgs/{i}.png" for i in range(len(x))],
        }
    ).to_parquet(tmp_path / "list.parquet")
    src = resolve_source(str(tmp_path / "list.parquet"))
    assert src.kind == "embeddings"
    np.testing.assert_array_equal(src.embeddings, x)
    assert list(src.index["example_id"]) == ids
    assert src.index["path"].iat[0] == str(tmp_path / "imgs" / "0.png")  # relative to the Parquet's folder

    wide = pd.DataFrame(x, columns=[f"d{i}" for i in range(x.shape[1])])
    wide.insert(0, "example_id", np.arange(1000, 1000 + len(x)))  # numeric ids are ids, not a dimension
    wide["label"] = y
    wide.to_parquet(tmp_path / "wide.parquet")
    src = resolve_source(str(tmp_path / "wide.parquet"))
    np.testing.assert_array_equal(src.embeddings, x)
    assert src.index["example_id"].iat[0] == "1000" and src.index["label"].iat[-1] == "2"
    run = run_pipeline(str(tmp_path / "wide.parquet"), tmp_path / "work", **fast_kwargs)
    assert run.n_examples == len(x)
    np.testing.assert_allclose(np.asarray(run.embeddings)[run.table["row"]], x)


# ---- the demo ----------------------------------------------------------------------------


def test_demo_says_which_source_it_used(tmp_path, monkeypatch, fashion_dir):
    monkeypatch.chdir(tmp_path)  # no ./data here
    monkeypatch.delenv("CURATE_DATA_ROOT", raising=False)
    src = resolve_source("demo")
    assert src.kind == "demo" and "test" in set(src.index["split"])
    if fashion_dir is not None:
        assert "Fashion-MNIST" in src.description and str(fashion_dir) in src.description
        assert len(src) == 70000
    import backend.sources.arrays as arrays

    monkeypatch.setattr(arrays, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    monkeypatch.setattr(arrays, "_online", lambda *a, **k: False)
    digits = resolve_source("demo")
    assert "8x8 digits" in digits.description and "apt-get install dataset-fashion-mnist" in digits.description
    assert len(digits) == 1797 and digits.load_image(0).size == (8, 8)


def test_demo_run_reports_its_source(tmp_path, monkeypatch, fast_kwargs):
    import backend.sources.arrays as arrays
    from backend import Reporter

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(arrays, "DEBIAN_FASHION_MNIST", tmp_path / "absent")  # small and quick: the digits
    monkeypatch.setattr(arrays, "_online", lambda *a, **k: False)

    class Infos(Reporter):
        lines: list = []

        def info(self, message):
            self.lines.append(message)

    run = run_pipeline("demo", tmp_path / "work", limit=100, reporter=Infos(), **fast_kwargs)
    assert any("8x8 digits" in line for line in Infos.lines)
    assert "8x8 digits" in run.summary()["source"]
    assert run.n_examples == 100 and len(run.holdout) == 100


# ---- stable ids --------------------------------------------------------------------------


def test_example_ids_are_stable_across_reruns(image_folder_copy, tmp_path, fast_kwargs):
    first = run_pipeline(str(image_folder_copy), tmp_path / "w1", **fast_kwargs)
    again = run_pipeline(str(image_folder_copy), tmp_path / "w2", **fast_kwargs)
    pd.testing.assert_frame_equal(
        first.table[["example_id", "path", "label", "random"]], again.table[["example_id", "path", "label", "random"]]
    )
    # a new file changes nothing for the others: same ids, same per-example random score
    extra = next(image_folder_copy.iterdir()) / "zz_new.png"
    Image.new("RGB", (28, 28), (200, 10, 10)).save(extra)
    grown = run_pipeline(str(image_folder_copy), tmp_path / "w1", **fast_kwargs)
    assert grown.n_examples == first.n_examples + 1
    merged = first.table.merge(grown.table, on="example_id", suffixes=("", "_new"))
    assert len(merged) == first.n_examples
    assert (merged["path"] == merged["path_new"]).all()
    np.testing.assert_array_equal(merged["random"], merged["random_new"])


def test_symlink_loop_and_numeric_labels(tmp_path, image_folder):
    root = tmp_path / "loop"
    (root / "a").mkdir(parents=True)
    for p in sorted(image_folder.rglob("*.png"))[:5]:
        shutil.copy(p, root / "a" / p.name)
    os.symlink("..", root / "a" / "back")  # a link back up must not loop
    src = resolve_source(str(root))
    assert len(src) == 5 and all(eid.count("/") == 1 for eid in src.index["example_id"])

    files = sorted(p.relative_to(image_folder).as_posix() for p in image_folder.rglob("*.png"))[:3]
    pd.DataFrame({"path": files, "label": [1, None, 0]}).to_csv(tmp_path / "m.csv", index=False)
    shutil.copytree(image_folder, tmp_path / "imgs")
    (tmp_path / "imgs" / "m.csv").write_bytes((tmp_path / "m.csv").read_bytes())
    src = resolve_source(str(tmp_path / "imgs" / "m.csv"))
    assert src.index["label"].iat[0] == "1" and src.index["label"].iat[2] == "0"  # not "1.0"
    assert pd.isna(src.index["label"].iat[1]) and src.classes == ["0", "1"]


def test_a_run_reopens_its_array_source_from_anywhere(fashion_root, tmp_path, monkeypatch, fast_kwargs):
    monkeypatch.chdir(fashion_root.parent)
    run = run_pipeline("torchvision:FashionMNIST", tmp_path / "work", data_root="tvroot", limit=20, **fast_kwargs)
    assert run.config["params"]["data_root"] == str(fashion_root)
    monkeypatch.chdir("/")
    from backend import load_run

    again = load_run(tmp_path / "work")
    img = again.load_image(0)
    row = int(again.table["source_row"].iat[0])
    np.testing.assert_array_equal(np.asarray(img), np.asarray(again.source.load_image(row)))
    # a different data set behind the same spec is refused, not shown
    again.config["source"]["fingerprint"] = "0" * 16
    with pytest.raises(CurateError, match="not the one this run was computed on"):
        _fresh_source(again)


def _fresh_source(run):
    run.__dict__.pop("source", None)
    return run.source


def _write_idx(path: Path, array: np.ndarray) -> None:
    import gzip
    import struct

    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def test_torchvision_mnist_idx_files_from_a_local_root(tmp_path, fashion_arrays):
    """MNIST as torchvision leaves it (gzipped IDX under <root>/MNIST/raw), generated here."""
    x, y, _ = fashion_arrays
    grey = x if x.ndim == 3 else x.mean(axis=3).astype(np.uint8)
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw / "train-images-idx3-ubyte.gz", grey[:150])
    _write_idx(raw / "train-labels-idx1-ubyte.gz", y[:150].astype(np.uint8))
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", grey[150:])
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", y[150:].astype(np.uint8))
    src = resolve_source("torchvision:mnist", data_root=str(tmp_path / "root"))
    assert src.spec == "torchvision:MNIST" and len(src) == len(grey)
    assert (src.index["split"] == "train").sum() == 150
    assert src.classes[0] == "0 - zero" and src.index["label"].iat[0] == src.classes[int(y[0])]
    np.testing.assert_array_equal(np.asarray(src.load_image(3))[..., 0], grey[3])
    assert src.index["example_id"].iat[150] == "test/0"
