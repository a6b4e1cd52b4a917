"""A small finished run shared by the app tests (made once per session)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def app_workdir(tmp_path_factory):
    """Workdir with one demo run: 400 pool examples (Fashion-MNIST, or sklearn digits without it), PCA map."""
    from backend import run_pipeline

    work = tmp_path_factory.mktemp("app_work")
    run_pipeline("demo", work, limit=400, map_method="pca", num_workers=0, device="cpu")
    return work


@pytest.fixture(scope="session")
def app_run(app_workdir):
    from backend import load_run

    return load_run(app_workdir)
