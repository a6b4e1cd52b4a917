"""The ray engine on a real local cluster: same scores and selection as the local engine, faults retried.

A head node and one more worker node are started with ``ray start`` as
separate processes (1 CPU each, loopback, free ports, a private temp dir,
``RAY_ADDRESS`` pointing at it so ``--address auto`` finds this cluster and no
other on the machine) and stopped by their process ids at the end (never
``ray stop``: it would stop other users' clusters too).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
PORT_FLAGS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
)


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _worker_range() -> tuple[int, int]:
    """A block of 40 ports that are free now, for the node's worker processes."""
    for _ in range(50):
        lo = int(np.random.default_rng().integers(20000, 60000))
        try:
            socks = []
            for p in range(lo, lo + 40):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return lo, lo + 39
    raise RuntimeError("no block of 40 free ports")


class LocalCluster:
    """``ray start --head`` plus ``ray start --address`` on this machine, each its own process group."""

    def __init__(self, env: dict):
        self.tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's unix sockets live here
        self.env = env
        self.procs: list[subprocess.Popen] = []
        self.port = _free_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"

    def _start(self, args: list[str]) -> None:
        ports = _free_ports(len(PORT_FLAGS))
        lo, hi = _worker_range()
        cmd = [
            RAY,
            "start",
            "--block",
            "--num-cpus",
            "1",
            "--num-gpus",
            "0",
            "--node-ip-address",
            "127.0.0.1",
            "--disable-usage-stats",
            "--min-worker-port",
            str(lo),
            "--max-worker-port",
            str(hi),
            *args,
        ]
        for flag, port in zip(PORT_FLAGS, ports):
            cmd += [flag, str(port)]
        log = open(self.tmp / f"node{len(self.procs)}.log", "w")
        self.procs.append(
            subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def start(self) -> LocalCluster:
        self._start(["--head", "--port", str(self.port), "--include-dashboard", "false", "--temp-dir", str(self.tmp)])
        self._wait_nodes(1)
        self._start(["--address", self.address])
        self._wait_nodes(2)
        return self

    def _wait_nodes(self, n: int, timeout: float = 90.0) -> None:
        code = (
            "import ray; ray.init(address='auto', logging_level='ERROR'); "
            "print(sum(1 for x in ray.nodes() if x['Alive']))"
        )
        t0 = time.time()
        while time.time() - t0 < timeout:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"ray start exited: {(self.tmp / 'node0.log').read_text()[-2000:]}")
            try:
                out = subprocess.run(
                    [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=40
                )
            except subprocess.TimeoutExpired:
                continue
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the local Ray cluster did not reach {n} nodes in {timeout:.0f} s")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)  # `ray start --block` stops the node's processes on SIGTERM
        for p in reversed(self.procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _curate(args: list[str], env: dict) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "backend.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    flag = tmp_path_factory.mktemp("fault") / "killed"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RAY_USAGE_STATS_ENABLED": "0",
        "CURATE_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "CURATE_RAY_KILL_ONCE": str(flag),
    }
    # a cluster with token authentication (what `ray get-auth-token --generate` sets up for a user, here with a
    # token of the test's own instead of ~/.ray/auth_token): `ray start` in token mode refuses to start without
    # one, and the engine's driver must find it and send it on its own (backend/runners/_ray_adapter.py)
    token = tmp_path_factory.mktemp("auth") / "auth_token"
    token.write_text(secrets.token_hex(32))
    env.pop("RAY_AUTH_MODE", None)
    env["RAY_AUTH_TOKEN_PATH"] = str(token)
    cluster = LocalCluster({**env, "RAY_AUTH_MODE": "token"})
    env["RAY_ADDRESS"] = cluster.address  # --address auto finds this cluster, not another one on the machine
    try:
        cluster.start()
        yield env, flag
    finally:
        cluster.stop()


RUN = [
    "--map",
    "pca",
    "--k",
    "10",
    "--device",
    "cpu",
    "--workers",
    "0",
    "--batch-size",
    "32",
    "--metrics",
    "ssl_prototype,supervised_prototype,random",
]


def _table(workdir: Path) -> pd.DataFrame:
    run = json.loads((workdir / "latest.json").read_text())["run"] if (workdir / "latest.json").exists() else None
    path = workdir / run / "examples.parquet" if run else next(workdir.glob("runs/*/examples.parquet"))
    return pd.read_parquet(path)


def test_ray_engine_matches_local_and_survives_a_killed_worker(cluster_env, image_folder, tmp_path):
    env, flag = cluster_env
    local_env = {k: v for k, v in env.items() if k not in ("RAY_ADDRESS", "CURATE_RAY_KILL_ONCE")}
    _curate(["run", "--source", str(image_folder), "--workdir", str(tmp_path / "local"), *RUN], local_env)
    _curate(
        [
            "run",
            "--source",
            str(image_folder),
            "--workdir",
            str(tmp_path / "ray"),
            *RUN,
            "--engine",
            "ray",
            "--address",
            "auto",
        ],
        env,
    )
    assert flag.exists(), "the fault drill did not kill a worker: the retry path was not exercised"

    a, b = _table(tmp_path / "local"), _table(tmp_path / "ray")
    assert len(a) == len(b) > 0
    for col in (
        "example_id",
        "cluster",
        "centroid_sim",
        "ssl_prototype",
        "supervised_prototype",
        "random",
        "map_x",
        "map_y",
    ):
        assert a[col].equals(b[col]), col
    emb_a = np.load(next((tmp_path / "local").glob("embeddings/*/embeddings.npy")))
    emb_b = np.load(next((tmp_path / "ray").glob("embeddings/*/embeddings.npy")))
    assert np.array_equal(emb_a, emb_b)
    shards = list((tmp_path / "ray").glob("embeddings/*/shards/*.json"))
    assert len(shards) >= 2  # the pass really was cut into shards

    for name in ("local", "ray"):
        _curate(
            ["select", "--workdir", str(tmp_path / name), "--keep", "0.5", "--out", str(tmp_path / f"{name}.csv")],
            local_env,
        )
    kept_a, kept_b = pd.read_csv(tmp_path / "local.csv"), pd.read_csv(tmp_path / "ray.csv")
    assert 0 < len(kept_a) < len(a)
    assert kept_a["example_id"].tolist() == kept_b["example_id"].tolist()


def test_interrupted_driver_resumes_from_finished_shards(cluster_env, image_folder, tmp_path, monkeypatch):
    import ray

    from backend.embed import compute_embeddings, get_encoder
    from backend.runners import get_runner
    from backend.sources import resolve_source

    env, _ = cluster_env
    monkeypatch.setenv("RAY_ADDRESS", env["RAY_ADDRESS"])
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", env["RAY_AUTH_TOKEN_PATH"])  # this driver is in the test's process
    src = resolve_source(str(image_folder))
    enc = get_encoder("pixels")
    pool = np.flatnonzero(src.index["split"].to_numpy() == "train")
    ref = compute_embeddings(src, enc, tmp_path / "local", device="cpu", batch_size=32, num_workers=0, fit_rows=pool)

    out = tmp_path / "ray"
    calls = []

    def stop_after_first_shard(done, total):
        calls.append(done)
        if list((out / "shards").glob("*.json")):
            raise KeyboardInterrupt  # the driver is interrupted after one shard was made durable

    runner = get_runner("ray", address="auto")
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.embed(src, enc, out, device="cpu", batch_size=32, progress=stop_after_first_shard, fit_rows=pool)
        first = {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.json")}
        assert first and (out / "raw.npy").exists() and not (out / "embeddings.npy").exists()
        seen = []
        info = runner.embed(
            src, enc, out, device="cpu", batch_size=32, progress=lambda d, t: seen.append(d), fit_rows=pool
        )
    finally:
        ray.shutdown()
    assert seen[0] >= sum(
        json.loads((out / "shards" / n).read_text())["rows"][1]
        - json.loads((out / "shards" / n).read_text())["rows"][0]
        for n in first
    )
    for name, mtime in first.items():  # finished shards were kept, not recomputed
        assert (out / "shards" / name).stat().st_mtime_ns == mtime
    assert info["dim"] == ref["dim"] and info["failed"] == ref["failed"]
    assert np.array_equal(np.load(out / "embeddings.npy"), np.load(tmp_path / "local" / "embeddings.npy"))
