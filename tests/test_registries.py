"""The plug-in registries: a new metric is one file plus its registration, and then it is everywhere.

The toy metric below is registered the way a module in backend/scores/ registers itself; the test
then finds it in the five places a user meets a metric (``curate run``, ``curate select --metric``,
``curate scaling --metric``, the app's metric menu and the per-example table) without any other edit.
A second test checks the discovery itself: a registry imports every module of its package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TOY = "toy_brightness"


@pytest.fixture
def toy_metric():
    from backend.scores import METRICS, register_metric

    @register_metric(
        TOY,
        description="toy: norm of the raw embedding (higher = harder)",
        default=False,
        cost="free",
        range="[0, inf)",
    )
    def toy(ctx):
        x = np.asarray(ctx.embeddings[ctx.rows], np.float64)
        return np.sqrt((x**2).sum(1))

    yield toy
    METRICS.unregister(TOY)


def test_a_registered_metric_appears_in_run_select_scaling_app_and_table(
    toy_metric, image_folder, tmp_path, fast_kwargs, monkeypatch
):
    from backend import cli, load_run, run_pipeline
    from backend.scaling.empirical import estimate_scaling

    # 1. curate run: offered in --help and computed with --metrics
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert TOY in help_text
    work = tmp_path / "work"
    assert (
        cli.main(
            [
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
                "--metrics",
                f"ssl_prototype,{TOY}",
            ]
        )
        == 0
    )
    run = load_run(work)
    # 5. the per-example table, with the values the metric computes
    assert TOY in run.table.columns and TOY in run.score_columns
    x = np.asarray(run.embeddings[run.table["row"].to_numpy()], np.float64)
    np.testing.assert_allclose(run.table[TOY], np.sqrt((x**2).sum(1)), rtol=1e-6)

    # 2. curate select --metric: keep-hard keeps the highest toy scores
    out = tmp_path / "kept.csv"
    assert (
        cli.main(
            [
                "select",
                "--workdir",
                str(work),
                "--keep",
                "0.3",
                "--strategy",
                "hard",
                "--metric",
                TOY,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    kept = pd.read_csv(out)
    cut = np.sort(run.table[TOY].to_numpy())[::-1][len(kept) - 1]
    assert (kept[TOY] >= cut - 1e-6).all()

    # 3. curate scaling --metric (same code path as the CLI's), on a tiny grid
    res = estimate_scaling(run, metric=TOY, fractions=[0.5, 1.0], initial_sizes=[1.0], seeds=1)
    assert res.params["metric"] == TOY and len(res.points) > 0

    # 4. the app's metric menu on the Prune page
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CURATE_WORKDIR", str(work))
    monkeypatch.setenv("CURATE_ALLOWED_DIRS", os.pathsep.join([str(work), str(image_folder)]))
    app = Path(__file__).resolve().parents[1] / "curation_app" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=120)
    at.run()
    at.switch_page("views/prune.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert TOY in at.selectbox(key="w.prune.metric").options

    # and a default run without --metrics does not compute an on-request metric
    plain = run_pipeline(str(image_folder), tmp_path / "plain", **fast_kwargs)
    assert TOY not in plain.table.columns


def test_a_new_module_is_found_without_editing_any_list(tmp_path, monkeypatch):
    from backend.registry import Registry

    pkg = tmp_path / "toy_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "shiny.py").write_text(
        textwrap.dedent("""
        from toy_registry import REG
        REG.register("shiny", lambda: 1, description="a toy plug-in")
    """)
    )
    (tmp_path / "toy_registry.py").write_text(
        textwrap.dedent("""
        from backend.registry import Registry
        REG = Registry("toy", packages=("toy_plugins",))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_registry

    assert toy_registry.REG.names() == ["shiny"] and toy_registry.REG.get("shiny")() == 1
    assert toy_registry.REG.entry("shiny").description == "a toy plug-in"
    from backend.errors import CurateError

    with pytest.raises(CurateError, match="unknown toy 'dull': use one of shiny"):
        toy_registry.REG.get("dull")
    assert isinstance(toy_registry.REG, Registry)


def test_every_registry_lists_what_the_cli_offers():
    from backend import BALANCES, ENCODERS, MAP_METHODS, METRICS, STRATEGIES, cli

    parser = cli.build_parser()
    subs = parser._subparsers._group_actions[0].choices
    run_actions = {a.dest: a for a in subs["run"]._actions}
    assert list(run_actions["encoder"].choices) == list(ENCODERS)
    assert list(run_actions["map_method"].choices) == list(MAP_METHODS)
    sel_actions = {a.dest: a for a in subs["select"]._actions}
    assert list(sel_actions["strategy"].choices) == list(STRATEGIES)
    assert list(sel_actions["balance"].choices) == list(BALANCES)
    for name in METRICS:
        info = METRICS.entry(name).info
        assert info["direction"] == "higher = harder" and info["cost"] and info["description"]


def test_importing_backend_loads_no_ui_or_heavy_library():
    code = (
        "import sys, backend, backend.cli; "
        "print(','.join(m for m in ('streamlit', 'plotly', 'umap', 'faiss') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing backend loaded {out.stdout.strip()}"
