"""User errors through the CLI: one line naming the problem and the fix, exit code 2, no
traceback, and nothing partially written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backend.cli import main


def _listing(folder: Path) -> list[str]:
    """Every path below ``folder`` (hidden temp files included)."""
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def cli_error(capsys, args: list[str], *match: str) -> str:
    """Run ``curate ARGS``; assert a one-line error containing every ``match``; return it."""
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for m in match:
        assert m in errors[0], (m, errors[0])
    return errors[0]


# ---- curate run ------------------------------------------------------------------------


def _single_image(tmp_path):
    d = tmp_path / "one" / "cls"
    d.mkdir(parents=True)
    Image.new("RGB", (28, 28), (5, 5, 5)).save(d / "only.png")
    return tmp_path / "one"


def _npy(tmp_path, array, name="emb.npy"):
    np.save(tmp_path / name, array)
    return tmp_path / name


def _nan_embeddings(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    x[7, 2] = np.nan
    return _npy(tmp_path, x)


def _inf_embeddings(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 4))
    x[3, 0] = np.inf
    return _npy(tmp_path, x)


def _manifest_without_path(tmp_path):
    pd.DataFrame({"file": ["a.png", "b.png"], "label": [0, 1]}).to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def _text_file(path):
    path.write_text("not numpy")
    return path


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _only_text(tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.txt").write_text("no images here")
    return tmp_path / "texts"


RUN_ERRORS = {
    "empty folder": (_empty, [], ["no images found"]),
    "no image files": (_only_text, [], ["no images found"]),
    "single image": (_single_image, [], ["single example", "at least 2"]),
    "nan embeddings": (_nan_embeddings, [], ["NaN or inf", "row 7"]),
    "inf embeddings": (_inf_embeddings, [], ["NaN or inf", "row 3"]),
    "1-D embeddings": (lambda t: _npy(t, np.arange(10, dtype=np.float32)), [], ["shape (10,)", "2-D"]),
    "N x 1 embeddings": (lambda t: _npy(t, np.ones((10, 1), np.float32)), [], ["D >= 2"]),
    "text in a .npy": (lambda t: _text_file(t / "x.npy"), [], ["cannot read x.npy"]),
    "manifest without path": (_manifest_without_path, [], ["no 'path' column", "file, label"]),
    "unknown torchvision": (lambda t: "torchvision:NotASet", [], ["unknown torchvision data set", "CIFAR10"]),
    "missing torchvision root": (
        lambda t: "torchvision:MNIST",
        ["--data-root", "{tmp}/nothing"],
        ["not found", "--download"],
    ),
    "missing source": (lambda t: t / "does-not-exist", [], ["does not exist"]),
    "unknown device": (lambda t: _npy(t, np.ones((10, 3), np.float32)), ["--device", "tpu"], ["unknown device"]),
    "unknown map": (lambda t: _npy(t, np.ones((10, 3), np.float32)), ["--map", "tsne"], None),
    "k = 0": (lambda t: _npy(t, np.ones((10, 3), np.float32)), ["--k", "0"], ["--k must be at least 1"]),
    "negative limit": (lambda t: _npy(t, np.ones((10, 3), np.float32)), ["--limit", "-3"], ["--limit"]),
}


@pytest.mark.parametrize("case", list(RUN_ERRORS))
def test_run_errors(case, tmp_path, capsys):
    make, extra, match = RUN_ERRORS[case]
    source = make(tmp_path)
    work = tmp_path / "work"
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    args = ["run", "--source", str(source), "--workdir", str(work), *extra]
    if "--map" not in extra:
        args += ["--map", "pca"]
    if match is None:  # rejected by argparse (a choices list): usage + exit 2
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2 and "Traceback" not in capsys.readouterr().err
    else:
        cli_error(capsys, args, *match)
    assert not work.exists()  # refused before anything was written


def test_cuda_without_a_gpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    np.save(tmp_path / "e.npy", np.ones((10, 3), np.float32))
    cli_error(
        capsys,
        ["run", "--source", str(tmp_path / "e.npy"), "--workdir", str(tmp_path / "w"), "--device", "cuda"],
        "no CUDA GPU",
        "--device cpu",
    )
    assert not (tmp_path / "w").exists()


def test_fewer_examples_than_k(small_image_folder, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("an existing workdir is left as it was")
    before = _listing(work)
    cli_error(
        capsys,
        ["run", "--source", str(small_image_folder), "--workdir", str(work), "--k", "30", "--map", "pca"],
        "24 examples is fewer than k=30",
        "--k 24",
    )
    assert _listing(work) == before


def test_unwritable_workdir(small_image_folder, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cli_error(
        capsys,
        [
            "run",
            "--source",
            str(small_image_folder),
            "--workdir",
            str(blocker / "work"),
            "--map",
            "pca",
            "--workers",
            "0",
        ],
        "cannot create workdir",
        "writable --workdir",
    )
    cli_error(
        capsys, ["run", "--source", str(small_image_folder), "--workdir", str(blocker), "--map", "pca"], "is a file"
    )
    assert blocker.read_text() == "x"


def test_every_image_unreadable(tmp_path, capsys):
    d = tmp_path / "bad" / "cls"
    d.mkdir(parents=True)
    for i in range(3):
        (d / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    msg = cli_error(
        capsys,
        ["run", "--source", str(tmp_path / "bad"), "--workdir", str(tmp_path / "w"), "--map", "pca", "--workers", "0"],
        "no image could be read",
    )
    assert "cls/0.png" in msg and "corrupt" in msg


# ---- curate select / export-tree ---------------------------------------------------------


@pytest.fixture
def workdir(base_run) -> str:
    return str(base_run.dir.parent.parent)


@pytest.mark.parametrize("keep", ["0", "1.5", "-1", "nan", "-0.0"])
def test_keep_fraction_outside_0_1(keep, workdir, tmp_path, capsys):
    out = tmp_path / "out"
    cli_error(
        capsys,
        ["select", "--workdir", workdir, "--keep", keep, "--out", str(out / "kept.csv")],
        "outside (0, 1]",
        "--keep 0.7",
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "args,match",
    [
        (["--keep-count", "0"], "outside 1.."),
        (["--keep-count", "100000"], "outside 1.."),
        ([], "pass --keep FRACTION"),
        (["--keep", "0.5", "--metric", "el2n"], "metric 'el2n' is not in this run"),
    ],
)
def test_bad_selection_arguments(args, match, workdir, tmp_path, capsys):
    cli_error(capsys, ["select", "--workdir", workdir, *args, "--out", str(tmp_path / "kept.csv")], match)
    assert _listing(tmp_path) == []


def test_no_run_in_workdir(tmp_path, capsys):
    cli_error(
        capsys,
        ["select", "--workdir", str(tmp_path), "--keep", "0.5", "--out", str(tmp_path / "k.csv")],
        "no finished run",
        "curate run",
    )
    assert _listing(tmp_path) == []


def test_existing_output_needs_force(workdir, tmp_path, capsys):
    out = tmp_path / "kept.csv"
    out.write_text("precious\n")
    cli_error(capsys, ["select", "--workdir", workdir, "--keep", "0.5", "--out", str(out)], "already exists", "--force")
    assert out.read_text() == "precious\n"
    assert _listing(tmp_path) == ["kept.csv"]  # no manifest, no temp file
    assert main(["select", "--workdir", workdir, "--keep", "0.5", "--out", str(out), "--force"]) == 0
    capsys.readouterr()
    assert out.read_text().startswith("example_id,path,label,cluster,rank")
    assert _listing(tmp_path) == ["kept.csv", "kept.csv.manifest.json"]


def test_unwritable_or_odd_output(workdir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cli_error(
        capsys,
        ["select", "--workdir", workdir, "--keep", "0.5", "--out", str(blocker / "kept.csv")],
        "cannot create",
        "writable --out",
    )
    cli_error(
        capsys,
        ["select", "--workdir", workdir, "--keep", "0.5", "--out", str(tmp_path / "kept.xlsx")],
        "cannot tell the format",
        ".csv",
    )
    (tmp_path / "adir.csv").mkdir()
    cli_error(
        capsys,
        ["select", "--workdir", workdir, "--keep", "0.5", "--out", str(tmp_path / "adir.csv"), "--force"],
        "is a folder",
    )
    cli_error(
        capsys,
        ["export-tree", "--workdir", workdir, "--keep", "0.5", "--out", str(blocker / "tree")],
        "cannot create",
        "writable --out",
    )
    cli_error(capsys, ["export-tree", "--workdir", workdir, "--keep", "0.5", "--out", str(blocker)], "is a file")
    assert _listing(tmp_path) == ["a-file", "adir.csv"] and blocker.read_text() == "x"


def test_export_tree_refuses_existing_folder(workdir, image_folder, tmp_path, capsys):
    out = tmp_path / "tree"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    cli_error(capsys, ["export-tree", "--workdir", workdir, "--keep", "0.5", "--out", str(out)], "not empty", "--force")
    # --force replaces an earlier export, never a folder of real files (it might be the source itself)
    victim = tmp_path / "victim"
    shutil.copytree(image_folder, victim)
    before = _listing(victim)
    cli_error(
        capsys,
        ["export-tree", "--workdir", workdir, "--keep", "0.5", "--out", str(victim), "--force"],
        "refusing to delete",
    )
    assert _listing(victim) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree", "victim"]


def test_argparse_errors_exit_2_without_traceback(capsys):
    for args in (
        ["select", "--workdir", "w", "--keep", "half", "--out", "k.csv"],
        ["select", "--workdir", "w", "--keep", "0.5", "--strategy", "hardest", "--out", "k.csv"],
        ["run", "--source", "demo"],
        ["select", "--workdir", "w", "--keep", "0.5", "--keep-count", "3", "--out", "k.csv"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "error:" in err
