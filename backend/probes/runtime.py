"""How the probes use the machine: the precision of their matrix products and the torch CPU threads."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

_GEMM_CHOICE: dict = {}
THREADS_ENV = ("CURATE_PROBE_THREADS", "CURATE_SCALING_THREADS")


def gemm_dtype(precision: str, device):
    """The dtype of the probes' two matrix products: float32, or bfloat16 where it is much faster.

    Everything else (soft-max, loss, gradients' accumulation, L-BFGS, the
    held-out evaluation) stays float32.  ``"auto"`` picks bfloat16 on a CPU
    whose bfloat16 GEMM is at least 1.5x faster than float32 (a 20 ms probe,
    once per process and thread count; e.g. AVX512-BF16 or AMX), else float32.
    ``"fp32"``/``"bf16"`` force one; any non-CPU device gets float32.
    """
    import torch

    if precision in ("fp32", "float32") or getattr(device, "type", str(device)) != "cpu":
        return torch.float32
    if precision in ("bf16", "bfloat16"):
        return torch.bfloat16
    key = torch.get_num_threads()
    if key not in _GEMM_CHOICE:
        a, b = torch.randn(270, 256), torch.randn(256, 2048)

        def best(x, y):
            x @ y
            ts = []
            for _ in range(3):
                t = time.perf_counter()
                x @ y
                ts.append(time.perf_counter() - t)
            return min(ts)

        try:
            fast = best(a.bfloat16(), b.bfloat16()) * 1.5 < best(a, b)
        except RuntimeError:
            fast = False
        _GEMM_CHOICE[key] = torch.bfloat16 if fast else torch.float32
    return _GEMM_CHOICE[key]


@contextlib.contextmanager
def cpu_threads(device: str) -> Iterator[int]:
    """Torch (and faiss) CPU threads while probes train: all of them, or 1 when the machine is oversubscribed.

    Small GEMMs with several OpenMP threads on busy cores spend most of their
    time waiting at barriers (10x slower or worse); one thread degrades
    gracefully.  ``CURATE_PROBE_THREADS=N`` (or the older
    ``CURATE_SCALING_THREADS``) overrides the choice.  Yields the count used;
    restores the previous counts on exit.
    """
    import torch

    before = torch.get_num_threads()
    n = before
    env = next((os.environ[k] for k in THREADS_ENV if os.environ.get(k)), None)
    if env:
        n = max(1, int(env))
    elif not str(device).startswith("cuda"):
        try:
            cores = len(os.sched_getaffinity(0))
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            cores, load = before, 0.0
        if load > cores + 0.5:
            n = 1
    torch.set_num_threads(n)
    faiss: Any = None
    try:
        import faiss as faiss_module

        faiss_before = faiss_module.omp_get_max_threads()
        faiss_module.omp_set_num_threads(n)
        faiss = faiss_module
    except (ImportError, AttributeError):
        pass
    try:
        yield n
    finally:
        torch.set_num_threads(before)
        if faiss is not None:
            faiss.omp_set_num_threads(faiss_before)
