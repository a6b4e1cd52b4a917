"""``ray``: the embedding pass as a Ray Data pipeline and the nearest-centroid pass as Ray tasks.

Embedding: the source's rows are cut into shards (one Ray Data block each);
CPU tasks load and preprocess a shard's images; actors that hold the encoder
(loaded once per actor, one GPU each when the cluster has GPUs) embed them;
the driver streams the vectors into the same memory-mapped ``embeddings.npy``
the local runner writes and, once every row of a shard has arrived, writes the
shard's marker ``shards/<first row>.json``.  An interrupted driver resumes
from the finished shards; a worker that dies is retried by Ray (task retries,
actor restarts).  Nothing assumes a shared filesystem: images are read where
the task runs (paths must be valid on every node), vectors travel through
Ray's object store.

For ``pixels`` the raw pixels are assembled first and the PCA is then fitted
and applied on the driver by the encoder's own ``fit_transform``, on the same
pool rows as the local runner: same sample, same components, same vectors.

Assignment: the centroids are fitted on the driver (``SphericalKMeans.fit``
samples, as locally); every shard of pool rows is sent to a Ray task that runs
the same ``nearest_centroid``.  Shards are whole multiples of its chunk size,
so every task sees the blocks the local pass sees and the results are equal.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np

from ..errors import CurateError
from ..io import atomic_path, clean_stale_tmp, lock_file, write_json
from . import register_runner

MAX_SHARD_BYTES = 64 << 20  # preprocessed inputs of one shard (one Ray block)
MAX_SHARD_ROWS = 16384
KILL_ONCE_ENV = "CURATE_RAY_KILL_ONCE"  # fault drill: the first actor batch SIGKILLs its worker (see tests)


def _adapter():
    from . import _ray_adapter  # raises CurateError with the install hint when Ray is missing

    return _ray_adapter


# ---------------------------------------------------------------------------
# code that runs on the cluster

_SOURCES: dict = {}  # per worker process: the source, fetched once from the object store


def _load_shard(batch: dict, *, source_ref, encoder) -> dict:
    """CPU task: {start, end} of one shard -> {row, x (preprocessed), error} (a bad file: zeros + reason)."""
    from ..sources import BadImage

    key = repr(source_ref)
    if key not in _SOURCES:
        _SOURCES.clear()
        _SOURCES[key] = _adapter().get(source_ref[0])
    source = _SOURCES[key]
    start, end = int(batch["start"][0]), int(batch["end"][0])
    xs, errors = [], []
    for row in range(start, end):
        try:
            x, err = encoder.preprocess(source.load_image(row)), ""
        except BadImage as exc:
            x, err = encoder.empty(), str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run
            x, err = encoder.empty(), f"unreadable image: {type(exc).__name__}: {exc}"
        xs.append(x.numpy())
        errors.append(err)
    return {"row": np.arange(start, end, dtype=np.int64), "x": np.stack(xs), "error": np.array(errors, dtype=object)}


class _EmbedActor:
    """Holds the encoder on its device (loaded once); embeds batches of preprocessed inputs."""

    def __init__(self, encoder, device: str):
        import torch

        if device.startswith("cuda") and torch.cuda.is_available():
            device = "cuda"  # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU
        else:
            device = "cpu"
        self.encoder = encoder.to(device)
        self.dtype = np.dtype(encoder.raw_dtype)

    def __call__(self, batch: dict) -> dict:
        import torch

        flag = os.environ.get(KILL_ONCE_ENV)
        if flag and not os.path.exists(flag):
            Path(flag).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)  # a worker dying mid-run: Ray restarts the actor and retries
        feats = self.encoder.forward(torch.from_numpy(np.ascontiguousarray(batch["x"])))
        feats = feats.cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats)
        feats = np.array(feats, dtype=self.dtype, copy=True)
        bad = np.array([bool(e) for e in batch["error"]])
        feats[bad] = 0  # a failed image gets a zero row, not the encoder's output for a blank input
        return {"row": batch["row"], "emb": feats, "error": batch["error"]}


def _assign_shard(x, centroids, device):
    from ..cluster.kmeans import nearest_centroid

    return nearest_centroid(x, centroids, None, device=device)


# ---------------------------------------------------------------------------
# the driver


def shard_rows(n: int, row_bytes: int, cpus: float) -> int:
    """Rows per shard: ~8 shards per CPU, at most MAX_SHARD_BYTES of inputs and MAX_SHARD_ROWS rows."""
    rows = int(np.ceil(n / max(1.0, 8.0 * cpus)))
    rows = min(rows, MAX_SHARD_ROWS, max(1, MAX_SHARD_BYTES // max(1, row_bytes)))
    return max(32, rows)


class RayRunner:
    name = "ray"

    def __init__(self, address: str | None = None, device: str = "auto"):
        self.address = address
        self.requested_device = device  # "auto": the cluster's GPUs when it has some, whatever the driver has

    def _connect(self):
        ray = _adapter()
        ray.connect(self.address)
        return ray

    # -- embeddings -------------------------------------------------------
    def embed(
        self, source, encoder, out_dir, *, device, batch_size, num_workers=None, progress=None, fit_rows=None
    ) -> dict:
        from ..embed.runner import LOCK, _file_stat, _finished_result

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with lock_file(out_dir / LOCK):
            done = _finished_result(out_dir)
            if done is not None:
                if progress:
                    progress(len(source), len(source))
                return done
            (out_dir / "result.json").unlink(missing_ok=True)
            info = self._embed(
                source, encoder, out_dir, device=device, batch_size=batch_size, progress=progress, fit_rows=fit_rows
            )
            write_json(out_dir / "result.json", {"embeddings": _file_stat(out_dir / "embeddings.npy"), "info": info})
            return info

    def _embed(self, source, encoder, out_dir: Path, *, device, batch_size, progress, fit_rows) -> dict:
        from ..embed.runner import _gaps, _open_memmap_prealloc, _read_markers, finish_pca

        ray = self._connect()
        shards_dir = out_dir / "shards"
        shards_dir.mkdir(parents=True, exist_ok=True)
        for folder in (out_dir, shards_dir):
            clean_stale_tmp(folder)
        n = len(source)
        pca_dim = getattr(encoder, "pca_dim", None)
        raw_path = out_dir / ("raw.npy" if pca_dim else "embeddings.npy")
        shape = (n, int(encoder.raw_dim))
        raw = _open_existing(raw_path, shape, encoder.raw_dtype)
        if raw is None:
            for marker in shards_dir.glob("*.json"):
                marker.unlink()
            with atomic_path(raw_path) as tmp:
                _open_memmap_prealloc(tmp, encoder.raw_dtype, shape, "the embeddings")
            raw = np.load(raw_path, mmap_mode="r+")

        res = ray.resources()
        use_gpus = self.requested_device != "cpu" and (device != "cpu" or self.requested_device == "auto")
        gpus = int(res["GPU"]) if use_gpus else 0
        device = "cuda" if gpus else "cpu"
        empty = encoder.empty()
        size = shard_rows(n, int(empty.numel() * empty.element_size()), res["CPU"])
        finished = _read_markers(shards_dir, n)
        todo = [(a, min(hi, a + size)) for lo, hi in _gaps(finished, n) for a in range(lo, hi, size)]
        done_rows = sum(end - start for start, end, _ in finished)
        if progress:
            progress(done_rows, n)
        if todo:
            ds = ray.shard_dataset([{"start": a, "end": b} for a, b in todo])
            ds = ray.map_tasks(ds, _load_shard, fn_kwargs={"source_ref": [ray.put(source)], "encoder": encoder})
            actors = gpus if gpus else max(1, int(res["CPU"]) // 2)
            ds = ray.map_actors(
                ds,
                _EmbedActor,
                constructor_kwargs={"encoder": encoder, "device": device},
                batch_size=int(batch_size),
                actors=actors,
                gpus_per_actor=1.0 if gpus else 0.0,
                cpus_per_actor=1.0,
            )
            blocks = ray.iter_blocks(ds)
            try:
                received = self._collect(blocks, raw, todo, shards_dir, progress, n, done_rows)
            finally:
                blocks.close()  # an interrupted driver stops the cluster's work on this pass
            raw.flush()
            missing_rows = int(sum(b - a for a, b in todo)) - received
            if missing_rows:
                raise CurateError(
                    f"the Ray cluster returned {missing_rows} rows too few: run the same "
                    "command again to resume from the finished shards"
                )
        failed_all = [f for _, _, fl in _read_markers(shards_dir, n) for f in fl]
        info = {"n": n, "raw_dim": int(encoder.raw_dim), "failed": failed_all, "engine": "ray"}
        del raw
        if pca_dim:
            info.update(finish_pca(source, encoder, out_dir, raw_path, failed_all, fit_rows))
        else:
            info["dim"] = int(encoder.raw_dim)
        return info

    @staticmethod
    def _collect(blocks, raw, todo, shards_dir: Path, progress, n: int, done_rows: int) -> int:
        """Write each arriving block into ``raw``; mark a shard once all its rows are in and flushed.

        Returns the number of rows received (each row counted once: a retried task may deliver rows again).
        """
        starts = np.array([a for a, _ in todo])
        missing = np.array([b - a for a, b in todo])
        seen = np.zeros(n, bool)
        failed: dict[int, list] = {i: [] for i in range(len(todo))}
        received = 0
        for block in blocks:
            rows = np.asarray(block["row"], np.int64)
            fresh = ~seen[rows]
            rows, emb, errors = rows[fresh], block["emb"][fresh], block["error"][fresh]
            if not len(rows):
                continue
            raw[rows] = emb
            seen[rows] = True
            which = np.searchsorted(starts, rows, side="right") - 1
            for i, r, e in zip(which, rows, errors):
                if e:
                    failed[int(i)].append((int(r), str(e)))
            for i, count in zip(*np.unique(which, return_counts=True)):
                missing[i] -= count
                if missing[i] == 0:  # the shard is complete: make it durable, then mark it
                    raw.flush()
                    a, b = todo[i]
                    with atomic_path(shards_dir / f"{a:010d}.json") as tmp:
                        tmp.write_text(json.dumps({"rows": [int(a), int(b)], "failed": failed[int(i)]}))
            done_rows += len(rows)
            received += len(rows)
            if progress:
                progress(done_rows, n)
        return received

    # -- nearest centroids ------------------------------------------------
    def assign(self, x, centroids: np.ndarray, rows: np.ndarray, *, device: str = "cpu", progress=None):
        from ..arrays import CHUNK

        ray = self._connect()
        rows = np.asarray(rows)
        n = len(rows)
        assign = np.empty(n, np.int32)
        sim = np.empty(n, np.float32)
        # whole chunks of the local pass per shard: each task sees the blocks the local pass sees
        step = CHUNK * max(1, int(np.ceil(n / CHUNK / max(1.0, 2.0 * ray.resources()["CPU"]))))
        c_ref = ray.put(np.ascontiguousarray(centroids, np.float32))
        fn = ray.task(_assign_shard)
        dev = "cuda" if device.startswith("cuda") else "cpu"
        finished = [0]

        def submit(start):
            xs = np.ascontiguousarray(np.asarray(x[rows[start : start + step]]), dtype=np.float32)
            return fn.remote(xs, c_ref, dev)

        def done(start, result):
            a, s = result
            assign[start : start + len(a)] = a
            sim[start : start + len(a)] = s
            finished[0] += len(a)
            if progress:
                progress(finished[0], n)

        ray.run_bounded(submit, range(0, n, step), in_flight=max(2, int(ray.resources()["CPU"]) + 1), done=done)
        return assign, sim


def _open_existing(path: Path, shape, dtype):
    if not path.exists():
        return None
    try:
        arr = np.load(path, mmap_mode="r+")
    except (OSError, ValueError):
        return None
    return arr if arr.shape == shape and arr.dtype == np.dtype(dtype) else None


@register_runner(
    "ray", priority=1, description="a Ray cluster (--address auto|HOST:PORT; none: a Ray instance on this machine)"
)
def make_ray(*, address: str | None = None, device: str = "auto") -> RayRunner:
    return RayRunner(address=address, device=device)
