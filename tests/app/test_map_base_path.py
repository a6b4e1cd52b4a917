"""The Map page's canvas under ``streamlit run ... --server.baseUrlPath studio`` in a real Chromium: the component
fetches its positions, colours and ids from media URLs that must carry the base path (Streamlit's frontend adds it
to its own images, not to a component's ``fetch``).

Needs /usr/bin/chromium and the playwright Python package (never `playwright install`); skips itself otherwise.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
APP = Path(__file__).resolve().parents[2] / "curation_app" / "app.py"
BASE = "studio"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

CANVAS = (
    "() => { for (const h of document.querySelectorAll('[data-testid=stBidiComponentIsolated]')) {"
    " const S = h.shadowRoot && h.shadowRoot.__mapCanvas; if (S && S.root) return {n: S.n || 0,"
    " drawn: S.drawMs !== undefined && !!S.codes, ids: S.root.dataset.ids || null, pos: S.posUrl,"
    " status: S.status.textContent}; } return null; }"
)


@pytest.fixture(scope="module")
def served_under_base_path(app_workdir, tmp_path_factory):
    """The app on a free loopback port under ``/studio``; its URL (stopped after the module)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, CURATE_WORKDIR=str(app_workdir), CURATE_ALLOWED_DIRS=str(app_workdir))
    log_path = tmp_path_factory.mktemp("base_path") / "streamlit.log"
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true", "--server.port",
           str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.baseUrlPath", BASE]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(app_workdir))
        url = f"http://127.0.0.1:{port}/{BASE}"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read().strip() == b"ok":
                        break
                except OSError:
                    if time.time() > deadline:
                        pytest.fail("streamlit did not start: " + log_path.read_text()[-2000:])
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_canvas_fetches_its_data_under_the_base_path(served_under_base_path, app_run, chromium_args):
    url = served_under_base_path
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args, headless=True)
        pg = browser.new_page(viewport={"width": 1440, "height": 1000})
        failed: list[str] = []
        pg.on(
            "response",
            lambda r: failed.append(f"{r.status} {r.url}") if "/media/" in r.url and r.status >= 400 else None,
        )
        pg.goto(url + "/map")
        pg.wait_for_function(
            f"() => {{ const s = ({CANVAS})(); return s && (s.drawn && s.ids || s.status.includes('map error')); }}",
            timeout=60_000,
        )
        state = pg.evaluate(CANVAS)
        browser.close()
    assert state["n"] == len(app_run.table) and state["ids"] == str(len(app_run.table)), state
    assert state["pos"].startswith(f"/{BASE}/media/"), state
    assert "map error" not in state["status"], state
    assert not failed, failed
