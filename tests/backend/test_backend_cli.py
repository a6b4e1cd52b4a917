"""The `curate` command: help texts, run, select, export-tree, info."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backend.cli import build_parser, main

CURATE = Path(sys.executable).with_name("curate")


def _subparsers(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return action.choices
    return {}


def _option_strings(parser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


@pytest.mark.skipif(not CURATE.exists(), reason="the curate entry point is not installed in this environment")
def test_console_script_help():
    res = subprocess.run(
        [str(CURATE), "--help"], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}
    )
    assert res.returncode == 0, res.stderr
    for cmd in ("run", "select", "export-tree", "info", "app"):
        assert cmd in res.stdout
    assert "curate run --source demo --workdir work" in res.stdout  # the examples epilog


def test_every_subcommand_help_mentions_every_option(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    parser = build_parser()
    subs = _subparsers(parser)
    assert {"run", "select", "export-tree", "info", "app"} <= set(subs)
    for name, sub in subs.items():
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        options = _option_strings(sub)
        assert options, name
        for opt in options:
            assert opt in text, (name, opt)
        for a in sub._actions:  # every option is explained, not just listed
            if a.option_strings and a.option_strings[0] != "-h":
                assert a.help and len(a.help) > 10, (name, a.option_strings)
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "curation-studio" in capsys.readouterr().out
    assert main([]) == 2  # no command: help and a usage exit code


def test_run_help_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for word in ("pixels", "resnet18", "resnet50", "vit_b_16", "torchvision:NAME", "CIFAR10", "umap", "pca"):
        assert word in text, word
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    text = capsys.readouterr().out
    for word in ("hard", "easy", "random", "ssl_prototype", "supervised_prototype", "cluster", ".parquet", ".txt"):
        assert word in text, word


def test_run_select_export_info(image_folder, tmp_path, capsys):
    work = tmp_path / "work"
    assert (
        main(
            ["run", "--source", str(image_folder), "--workdir", str(work), "--map", "pca", "--workers", "0", "--k", "6"]
        )
        == 0
    )
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("run directory: "))
    run_dir = Path(line.split(": ", 1)[1])
    assert run_dir.is_dir() and run_dir.parent == work / "runs"
    assert (run_dir / "examples.parquet").exists() and (run_dir / "skipped.csv").exists()
    assert "  k              6" in out and "ssl_prototype" in out

    assert (
        main(
            [
                "select",
                "--workdir",
                str(work),
                "--keep",
                "0.25",
                "--strategy",
                "easy",
                "--balance",
                "class",
                "--out",
                str(tmp_path / "sel" / "kept.parquet"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    kept = pd.read_parquet(tmp_path / "sel" / "kept.parquet")
    assert len(kept) == 50 and f"kept 50 of 200 examples (25.0%) -> {tmp_path / 'sel' / 'kept.parquet'}" in out
    assert (tmp_path / "sel" / "kept.parquet.manifest.json").exists()

    # a run folder works as --workdir too
    assert (
        main(
            [
                "select",
                "--workdir",
                str(run_dir),
                "--keep-count",
                "7",
                "--strategy",
                "random",
                "--seed",
                "2",
                "--out",
                str(tmp_path / "kept.txt"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert len((tmp_path / "kept.txt").read_text().splitlines()) == 7

    assert main(["export-tree", "--workdir", str(work), "--keep", "0.1", "--out", str(tmp_path / "tree")]) == 0
    assert "20 symlinks" in capsys.readouterr().out
    assert sum(1 for p in (tmp_path / "tree").rglob("*") if p.is_symlink()) == 20

    assert main(["info", "--workdir", str(work), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["run_dir"] == str(run_dir) and info["examples"] == 200 and info["k"] == 6
    assert sum(info["classes"].values()) == 200
