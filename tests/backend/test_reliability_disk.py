"""Issue 12, item 6: a full disk is one line naming the folder and the space needed (exit 2), nothing
half-written is left behind, and the same command succeeds once space is freed.

Uses a small tmpfs, so it needs root (mount); it skips itself otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmpfs(tmp_path):
    """A 1 MB tmpfs; yields (mount point, resize(size_str))."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)

    try:
        yield mnt, resize
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` until ``leave`` bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler.bin"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def _tmp_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if ".tmp" in p.name)


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(lines) == 1, err[-3000:]
    return lines[0]


def test_curate_run_on_a_full_disk_says_so_and_resumes_once_freed(image_folder, tmpfs):
    mnt, resize = tmpfs
    work = mnt / "work"
    cmd = [
        sys.executable,
        "-c",
        "import sys; from backend.cli import main; sys.exit(main(sys.argv[1:]))",
        "run",
        "--source",
        str(image_folder),
        "--workdir",
        str(work),
        "--map",
        "pca",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 2, res.stderr[-3000:]  # not 135 (SIGBUS) nor 1 (a traceback)
    line = _one_line_error(res.stderr)
    assert "no space left in" in line and str(work) in line and "MB" in line
    assert _tmp_leftovers(mnt) == []
    resize("64m")
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (work / "latest.json").exists() and _tmp_leftovers(mnt) == []


def test_select_on_a_full_disk_leaves_neither_file(base_run, tmpfs, capsys):
    mnt, _ = tmpfs
    out = mnt / "kept.csv"
    filler = _fill(mnt, 2048)
    code = main(["select", "--workdir", str(base_run.dir), "--keep", "0.9", "--out", str(out)])
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2 and "no space left in" in line and str(mnt) in line
    assert sorted(p.name for p in mnt.iterdir()) == ["filler.bin"]  # no list without its manifest, no temp file
    filler.unlink()
    assert main(["select", "--workdir", str(base_run.dir), "--keep", "0.9", "--out", str(out)]) == 0
    assert sorted(p.name for p in mnt.iterdir()) == ["kept.csv", "kept.csv.manifest.json"]


def test_export_tree_on_a_full_disk_leaves_nothing_and_force_works_after(base_run, tmpfs, capsys):
    mnt, _ = tmpfs
    tree = mnt / "tree"
    args = ["export-tree", "--workdir", str(base_run.dir), "--keep", "0.9", "--out", str(tree)]
    filler = _fill(mnt, 16 * 1024)
    code = main(args)
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2 and "no space left in" in line
    assert sorted(p.name for p in mnt.iterdir()) == ["filler.bin"]
    filler.unlink()
    assert main(args) == 0
    capsys.readouterr()
    assert sorted(p.name for p in mnt.iterdir()) == ["tree", "tree.manifest.json"]
    # full again while replacing: the earlier export stays whole, with its manifest
    before = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*"))
    filler = _fill(mnt, 4 * 1024)
    replace = ["export-tree", "--workdir", str(base_run.dir), "--keep", "0.5", "--out", str(tree), "--force"]
    assert main(replace) == 2
    assert "no space left in" in _one_line_error(capsys.readouterr().err)
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*")) == before
    assert (mnt / "tree.manifest.json").exists() and _tmp_leftovers(mnt) == []
    filler.unlink()
    assert main(replace) == 0
    assert sum(1 for p in tree.rglob("*") if p.is_symlink()) == round(0.5 * base_run.n_examples)
