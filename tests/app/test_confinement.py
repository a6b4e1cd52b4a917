"""Issue 12, items 10-12: the app sees only what it was allowed to see, answers only to its own host name and
sends nothing anywhere.

Items 11 and 12 start the real server (``curate app``) on a free port and talk to it with raw WebSocket
handshakes; item 12 watches the server's outbound connections with a Python audit hook (every
``socket.connect`` / ``socket.getaddrinfo`` of the process, before any packet could leave).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import backend
from backend.sources import BadImage, open_rgb, resolve_source
from backend.sources.confine import OUTSIDE
from curation_app.components import paths

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "curation_app" / "app.py"


def _images(folder: Path, n: int = 8) -> list[Path]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = folder / ("a" if i % 2 else "b") / f"img{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(p)
        out.append(p)
    return out


@pytest.fixture
def confined(tmp_path, monkeypatch):
    """A workdir holding an image folder with a link to /etc, reads confined to the workdir (as `curate app`)."""
    work = tmp_path / "work"
    imgs = work / "imgs"
    _images(imgs)
    (imgs / "a" / "etc").symlink_to("/etc")
    (imgs / "b" / "passwd.png").symlink_to("/etc/passwd")
    monkeypatch.setenv("CURATE_WORKDIR", str(work))
    monkeypatch.setenv("CURATE_ALLOWED_DIRS", str(work))
    return work


# ---------------------------------------------------------------------------
# 10. reads outside the allowed folders


def test_the_folder_walk_does_not_follow_links_out(confined):
    src = resolve_source(str(confined / "imgs"))
    assert len(src) == 8
    skipped = dict(src.skipped)
    assert skipped == {"a/etc/": f"link to a folder {OUTSIDE}", "b/passwd.png": f"link {OUTSIDE}"}
    assert not any("shadow" in s or "hostname" in s for s, _ in src.skipped)


def test_the_data_page_run_lists_no_file_from_elsewhere(confined):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.radio(key="new.kind").set_value("folder").run()
    at.text_input(key="new.folder").input(str(confined / "imgs")).run()
    at.selectbox(key="new.map").set_value("pca").run()
    at.button(key="new.start").click().run()
    from backend.jobs import latest_job, wait_job  # the run is a background job (it inherits the confinement)

    assert wait_job(latest_job(confined, "data.run")).state == "succeeded"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    run = backend.load_run(confined)
    listed = " ".join(run.skipped["example_id"])
    assert "shadow" not in listed and "passwd" in listed  # the user's own link name, never what is behind it
    assert set(run.skipped["reason"]) == {f"link to a folder {OUTSIDE}", f"link {OUTSIDE}"}


def test_manifest_rows_outside_are_refused_whether_or_not_they_exist(confined):
    inside = sorted(str(p) for p in (confined / "imgs").rglob("img*.png"))
    rows = inside + ["/etc/passwd", "/etc/no-such-file.png", str(confined / ".." / "escape.png")]
    pd.DataFrame({"path": rows}).to_csv(confined / "m.csv", index=False)
    src = resolve_source(str(confined / "m.csv"))
    assert len(src) == len(inside)
    reasons = {sid: reason for sid, reason in src.skipped}
    assert reasons["/etc/passwd"] == reasons["/etc/no-such-file.png"] == OUTSIDE  # no existence oracle


def test_thumbnails_of_files_outside_are_refused(confined, tmp_path):
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (4, 4)).save(outside)
    with pytest.raises(BadImage, match="outside"):
        open_rgb(outside)
    link = confined / "imgs" / "a" / "img1.png"
    assert open_rgb(link).size == (12, 12)
    os.environ.pop("CURATE_ALLOWED_DIRS")  # the CLI is not confined
    assert open_rgb(outside).size == (4, 4)


def test_typed_output_paths_keep_a_link_as_typed(confined, tmp_path):
    allowed = [confined]
    target = tmp_path / "outside.csv"
    (confined / "link.csv").symlink_to(target)
    p, err = paths.check_path(str(confined / "link.csv"), allowed, what="output path", for_writing=True)
    assert p is None and "outside" in err  # resolves outside: refused
    (confined / "inside.csv").write_text("x")
    (confined / "link2.csv").symlink_to(confined / "inside.csv")
    p, err = paths.check_path(str(confined / "link2.csv"), allowed, what="output path", for_writing=True)
    assert err is None and p == confined / "link2.csv"  # the link itself, which write_selection refuses
    with pytest.raises(backend.CurateError, match="symbolic link"):
        from backend.select.export import _check_out

        _check_out(p, True)


# ---------------------------------------------------------------------------
# 11, 12: the real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ws_status(port: int, host: str, origin: str) -> str:
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            (
                f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
            ).encode()
        )
        return s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


AUDIT_HOOK = r"""
import json, os, sys
_LOG = os.environ["NET_AUDIT_LOG"]
_LOCAL = ("127.", "::1", "localhost", "0.0.0.0", "::")
def _hook(event, args):
    if event not in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
        return
    if event == "socket.getaddrinfo":
        host = str(args[0])
    else:
        addr = args[1] if len(args) > 1 else None
        host = str(addr[0]) if isinstance(addr, tuple) else str(addr)
    if host.startswith(_LOCAL) or host in ("None", ""):
        return
    with open(_LOG, "a") as fh:
        fh.write(json.dumps([event, host]) + "\n")
sys.addaudithook(_hook)
"""


def _start(cmd: list[str], port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read()) from None
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("the app did not start in 90 s")


def _watched_env(tmp_path: Path, work: Path) -> tuple[dict, Path]:
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp_path / "net.log"
    log.write_text("")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(hook_dir), str(ROOT)]),
        NET_AUDIT_LOG=str(log),
        CURATE_WORKDIR=str(work),
    )
    env.pop("CURATE_ALLOWED_DIRS", None)
    return env, log


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.mark.slow
def test_the_app_refuses_foreign_hosts_and_sends_nothing_anywhere(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    port = _free_port()
    env, log = _watched_env(tmp_path, work)
    cmd = [
        sys.executable,
        "-c",
        "import sys; from backend.cli import main; sys.exit(main(sys.argv[1:]))",
        "app",
        "--workdir",
        str(work),
        "--port",
        str(port),
    ]
    proc = _start(cmd, port, env)
    try:
        # 11. DNS rebinding: a foreign Host with a matching Origin is refused; the app's own names are served
        assert " 403 " in _ws_status(port, f"evil.example:{port}", f"http://evil.example:{port}") + " "
        assert " 101 " in _ws_status(port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}") + " "
        assert " 101 " in _ws_status(port, f"localhost:{port}", f"http://localhost:{port}") + " "
        # 12. cross-origin WebSockets are refused without asking anyone for the public IP
        for _ in range(3):
            assert " 403 " in _ws_status(port, f"localhost:{port}", "http://evil.example") + " "
        time.sleep(3)  # Streamlit's lookup had a 1 s timeout per attempt
    finally:
        out = _stop(proc)
    assert "Did not auto detect external IP" not in out, out
    assert log.read_text() == "", log.read_text()


@pytest.mark.slow
def test_the_watch_sees_streamlits_own_lookup(tmp_path):
    """The control for the test above: plain `streamlit run` does try to reach the IP service (so the audit
    hook would have caught it)."""
    work = tmp_path / "work"
    work.mkdir()
    port = _free_port()
    env, log = _watched_env(tmp_path, work)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    proc = _start(cmd, port, env)
    try:
        _ws_status(port, f"localhost:{port}", "http://evil.example")
        time.sleep(3)
    finally:
        _stop(proc)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(host == "checkip.amazonaws.com" for _, host in events), events


def test_the_export_page_cannot_overwrite_the_workdirs_cache(app_workdir, monkeypatch):
    """Item 2 through the page itself: Overwrite ticked, JSON onto latest.json and Parquet onto the run's table."""
    monkeypatch.setenv("CURATE_WORKDIR", str(app_workdir))
    monkeypatch.setenv("CURATE_ALLOWED_DIRS", str(app_workdir))
    run = backend.load_run(app_workdir)
    targets = {"JSON": app_workdir / "latest.json", "Parquet": run.dir / "examples.parquet"}
    before = {p: p.read_bytes() for p in targets.values()}
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page("views/export.py").run()
    for fmt, target in targets.items():
        at.radio(key="export.format").set_value(fmt).run()
        path_box = next(t for t in at.text_input if t.label == "Path")
        path_box.input(str(target)).run()
        at.checkbox(key="export.force").check().run()
        at.button(key="export.write").click().run()
        assert not at.exception, [e.message for e in at.exception]
        assert any("refusing to write" in e.value for e in at.error), [e.value for e in at.error]
    assert {p: p.read_bytes() for p in targets.values()} == before
    assert backend.load_run(app_workdir).table.equals(run.table)
