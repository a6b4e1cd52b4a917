"""The engine registry without Ray: choices, messages, and that ``local`` is today's code path."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from backend.config import PipelineConfig
from backend.errors import CurateError
from backend.runners import RUNNERS, get_runner


def test_engines_are_registered_and_ray_is_not_imported_for_local():
    import subprocess

    assert list(RUNNERS)[:2] == ["local", "ray"]
    code = (
        "import sys; from backend.runners import RUNNERS, get_runner; list(RUNNERS); get_runner('local'); "
        "get_runner('ray', address='auto'); assert 'ray' not in sys.modules, 'ray imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)  # a fresh interpreter
    assert out.returncode == 0, out.stderr[-2000:]


def test_config_refuses_unknown_engine_and_address_without_ray():
    with pytest.raises(CurateError, match="unknown engine 'spark'.*local, ray"):
        PipelineConfig(source="demo", engine="spark").check()
    with pytest.raises(CurateError, match="--address is for --engine ray"):
        PipelineConfig(source="demo", address="auto").check()


def test_ray_missing_is_one_line_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.delitem(sys.modules, "backend.runners._ray_adapter", raising=False)
    # after another test imported it, the package keeps the submodule as an attribute: drop that too,
    # so `from . import _ray_adapter` really imports it again (and meets the missing Ray)
    import backend.runners

    monkeypatch.delattr(backend.runners, "_ray_adapter", raising=False)
    runner = get_runner("ray")
    with pytest.raises(CurateError, match=r"pip install .curation-studio\[distributed\]."):
        runner.assign(np.zeros((4, 2), np.float32), np.eye(2, dtype=np.float32), np.arange(4))


def test_local_runner_assign_is_nearest_centroid():
    from backend.cluster.kmeans import nearest_centroid

    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    c = rng.standard_normal((7, 16)).astype(np.float32)
    rows = np.arange(0, 500, 3)
    a, s = get_runner("local").assign(x, c, rows)
    ra, rs = nearest_centroid(x, c, rows)
    assert np.array_equal(a, ra) and np.array_equal(s, rs)


def test_local_engine_goes_through_pipeline_compute_embeddings(image_folder, tmp_path, fast_kwargs, monkeypatch):
    from backend import pipeline, run_pipeline

    calls = []
    real = pipeline.compute_embeddings

    def spy(*args, **kw):
        calls.append(kw.get("device"))
        return real(*args, **kw)

    monkeypatch.setattr(pipeline, "compute_embeddings", spy)
    run = run_pipeline(str(image_folder), tmp_path / "w", engine="local", k=5, **fast_kwargs)
    assert calls == ["cpu"] and len(run.table) > 0
