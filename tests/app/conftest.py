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


# Chromium's flags for an offline, headless run (environment.md); the browser tests launch it with these.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def chromium_args() -> list[str]:
    return list(CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def start_streamlit():
    """``start(workdir, log_path, *, cwd=None, timeout=60) -> url``: the app served on a free loopback port.

    Every server it started is stopped when the module's tests are done.
    """
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    app = Path(__file__).resolve().parents[2] / "curation_app" / "app.py"
    started = []

    def start(workdir, log_path, *, cwd=None, timeout: float = 60) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, CURATE_WORKDIR=str(workdir), CURATE_ALLOWED_DIRS=str(workdir))
        log = open(log_path, "w")
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        started.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read().strip() == b"ok":
                    return url
            except OSError:
                time.sleep(0.3)
        pytest.fail("streamlit did not start: " + Path(log_path).read_text()[-2000:])

    yield start
    for proc, log in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
