"""Issue 12, items 1-4: exports never lose the user's files, never land on the cache, never write through links,
and a list always sits beside its own manifest."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend import CurateError, export_tree, load_run, run_pipeline, select_subset, write_selection
from backend.cli import main
from backend.store import Stage, stage_dir_problem, store_owner


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = ("link:" + os.readlink(p)) if p.is_symlink() else ("dir" if p.is_dir() else _sha(p))
    return out


def _cli(capsys, args) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


@pytest.fixture
def own_run(small_image_folder, tmp_path, fast_kwargs):
    """A private workdir (the tests below try to damage it)."""
    work = tmp_path / "work"
    run_pipeline(str(small_image_folder), work, **fast_kwargs)
    return work


# ---------------------------------------------------------------------------
# 1. export-tree --force removes only what the previous export wrote


def test_force_never_deletes_files_the_user_put_in_an_export(base_run, tmp_path, capsys):
    tree = tmp_path / "T"
    export_tree(base_run, select_subset(base_run, keep=0.5), tree)
    label = sorted(p.name for p in tree.iterdir())[0]
    photo = tree / label / "MY_NEW_PHOTO.png"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(photo)
    notes = tree / label / "notes.png"
    notes.write_text("my notes")
    before = _tree_snapshot(tree)
    workdir = str(base_run.dir)
    code, err = _cli(capsys, ["export-tree", "--workdir", workdir, "--keep", "0.2", "--out", str(tree), "--force"])
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "MY_NEW_PHOTO.png" in err and "refusing" in err
    assert _tree_snapshot(tree) == before  # nothing removed, nothing added
    photo.unlink()
    code, err = _cli(capsys, ["export-tree", "--workdir", workdir, "--keep", "0.2", "--out", str(tree), "--force"])
    assert code == 2 and "notes.png" in err
    assert notes.read_text() == "my notes"

    # once the user's files are gone, --force replaces the export (and only it)
    notes.unlink()
    assert main(["export-tree", "--workdir", workdir, "--keep", "0.2", "--out", str(tree), "--force"]) == 0
    capsys.readouterr()
    links = [p for p in tree.rglob("*") if p.is_symlink()]
    assert len(links) == round(0.2 * base_run.n_examples)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T", "T.manifest.json"]  # no temp or old folder left


def test_force_refuses_a_tree_whose_links_became_real_copies(base_run, tmp_path):
    tree = tmp_path / "T"
    export_tree(base_run, select_subset(base_run, keep=0.3), tree)
    link = next(p for p in sorted(tree.rglob("*")) if p.is_symlink())
    target = os.readlink(link)
    link.unlink()
    shutil.copyfile(target, link)  # the user made a real copy of one image
    before = _tree_snapshot(tree)
    with pytest.raises(CurateError, match=f"{link.name}.*real file"):
        export_tree(base_run, select_subset(base_run, keep=0.1), tree, force=True)
    assert _tree_snapshot(tree) == before


def test_force_refuses_a_relinked_entry(base_run, tmp_path):
    tree = tmp_path / "T"
    export_tree(base_run, select_subset(base_run, keep=0.3), tree)
    link = next(p for p in sorted(tree.rglob("*")) if p.is_symlink())
    link.unlink()
    os.symlink("/etc/hostname", link)
    with pytest.raises(CurateError, match="now links to"):
        export_tree(base_run, select_subset(base_run, keep=0.1), tree, force=True)


# ---------------------------------------------------------------------------
# 2. exports never land on the store's own files; a changed stage file is not a cache hit


def test_exports_onto_the_workdirs_own_files_are_refused(own_run, capsys):
    run = load_run(own_run)
    sel = select_subset(run, keep=0.5)
    latest, table = own_run / "latest.json", run.dir / "examples.parquet"
    before = {p: _sha(p) for p in (latest, table)}
    for out in (latest, table, run.dir / "kept.csv", own_run / "embeddings" / "x.csv", own_run / "runs" / "k.csv"):
        with pytest.raises(CurateError, match="refusing to write"):
            write_selection(sel, out, force=True)
        assert store_owner(out)
    with pytest.raises(CurateError, match="refusing to write"):
        export_tree(run, sel, own_run / "runs" / "tree", force=True)
    assert {p: _sha(p) for p in before} == before
    # the CLI says it in one line, exit 2; select and info still work afterwards
    code, err = _cli(capsys, ["select", "--workdir", str(own_run), "--keep", "0.5", "--out", str(table), "--force"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cache" in err
    assert main(["info", "--workdir", str(own_run)]) == 0
    # a folder beside the stages is fine (the app's default is <workdir>/selections/)
    assert write_selection(sel, own_run / "selections" / "kept.csv").exists()


def test_a_stage_whose_files_changed_is_recomputed_not_trusted(own_run, small_image_folder, fast_kwargs):
    from backend import Reporter

    run = load_run(own_run)
    table = run.dir / "examples.parquet"
    good = table.read_bytes()
    st_meta = json.loads((run.dir / "meta.json").read_text())
    assert st_meta["files"]["examples.parquet"]["sha256"] == hashlib.sha256(good).hexdigest()
    table.write_bytes(b'[{"example_id": "not a table"}]')  # what the old Export page could do
    assert "examples.parquet" in stage_dir_problem(run.dir)  # what a reader can say instead of a traceback

    class Rec(Reporter):
        stages: dict = {}

        def stage(self, name, *, cached=False, detail=""):
            self.stages[name] = cached

    rec = Rec()
    again = run_pipeline(str(small_image_folder), own_run, reporter=rec, **fast_kwargs)
    assert rec.stages["run"] is False and rec.stages["embeddings"] is True
    assert again.dir == run.dir and again.table.equals(run.table)
    assert stage_dir_problem(run.dir) is None

    # a file of any stage: same size, other bytes, other mtime -> not done; same bytes, touched -> still done
    emb_dir = next((own_run / "embeddings").iterdir())
    st = json.loads((emb_dir / "meta.json").read_text())
    stage = Stage(own_run, "embeddings", st["version"], st["inputs"])
    assert stage.done
    npy = emb_dir / "embeddings.npy"
    os.utime(npy, ns=(1, 1))
    assert stage.done  # touched only: the sha256 still matches
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    assert not stage.done and "changed" in stage.problem()


# ---------------------------------------------------------------------------
# 3. no silent overwrite, no writing through links, never inside the source


def test_existing_manifest_needs_force(base_run, tmp_path, capsys):
    out = tmp_path / "kept.csv"
    man = tmp_path / "kept.csv.manifest.json"
    man.write_text("my own notes")
    code, err = _cli(capsys, ["select", "--workdir", str(base_run.dir), "--keep", "0.5", "--out", str(out)])
    assert code == 2 and "manifest.json already exists" in err and "--force" in err
    assert man.read_text() == "my own notes" and not out.exists()


def test_symlinks_as_out_are_refused(base_run, tmp_path, capsys):
    target = tmp_path / "elsewhere" / "real.csv"
    target.parent.mkdir()
    target.write_text("precious\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    code, err = _cli(capsys, ["select", "--workdir", str(base_run.dir), "--keep", "0.5", "--out", str(link), "--force"])
    assert code == 2 and "symbolic link" in err
    assert target.read_text() == "precious\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["real.csv"]  # no manifest beside the target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "link.csv"]

    tdir = tmp_path / "tree_target"
    tdir.mkdir()
    tlink = tmp_path / "tree_link"
    tlink.symlink_to(tdir)
    code, err = _cli(
        capsys, ["export-tree", "--workdir", str(base_run.dir), "--keep", "0.5", "--out", str(tlink), "--force"]
    )
    assert code == 2 and "symbolic link" in err and list(tdir.iterdir()) == []


def test_exports_inside_the_source_folder_are_refused(small_image_folder, tmp_path, fast_kwargs, capsys):
    work = tmp_path / "work"
    run = run_pipeline(str(small_image_folder), work, **fast_kwargs)
    before = _tree_snapshot(small_image_folder)
    sel = select_subset(run, keep=0.5)
    with pytest.raises(CurateError, match="inside the source folder"):
        export_tree(run, sel, small_image_folder / "pruned")
    with pytest.raises(CurateError, match="inside the source folder"):
        write_selection(sel, small_image_folder / "kept.csv")
    assert _tree_snapshot(small_image_folder) == before
    # so the next run on the source counts the same images (no class "pruned")
    again = run_pipeline(str(small_image_folder), work, **fast_kwargs)
    assert sorted(again.classes) == sorted(run.classes) and again.n_examples == run.n_examples


# ---------------------------------------------------------------------------
# 4. two writers, one output: the list and its manifest always come from the same writer


def _writer(run_dir, keep, out, barrier, rounds):
    run = load_run(run_dir)
    sel = select_subset(run, keep=keep)
    for _ in range(rounds):
        barrier.wait()
        write_selection(sel, out, force=True)
        barrier.wait()


def test_two_writers_never_mix_a_list_with_the_other_manifest(base_run, tmp_path):
    rounds = 40
    out = tmp_path / "kept.csv"
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_writer, args=(str(base_run.dir), keep, out, barrier, rounds)) for keep in (0.3, 0.6)]
    for p in procs:
        p.start()
    try:
        for _ in range(rounds):
            barrier.wait()  # both write now
            barrier.wait()  # both done
            man = json.loads((tmp_path / "kept.csv.manifest.json").read_text())
            data = out.read_bytes()
            assert man["output"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert man["output"]["rows"] == data.count(b"\n") - 1
    finally:
        for p in procs:
            p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv", "kept.csv.manifest.json"]
