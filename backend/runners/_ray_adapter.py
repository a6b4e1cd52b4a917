"""Every call into Ray in one module: Ray's Data API changes between releases, so only this file follows it.

Tested with ray 2.60 (``pip install 'ray[data]>=2.60,<2.61'``).  The rest of
the project sees plain functions: connect, resources, a shard dataset, a
CPU-task map, an actor map, streaming iteration, and core tasks with retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import CurateError

try:
    import ray
    import ray.data
except ImportError as exc:  # the engine module turns this into the install hint
    raise CurateError(
        "--engine ray needs Ray: pip install 'curation-studio[distributed]' (or pip install "
        "'ray[data]>=2.60,<2.61') on the driver and on every node of the cluster"
    ) from exc

# Faults are Ray's own: a Data task whose worker dies is retried (Ray's default max_retries=3 for tasks); Ray Data
# restarts a dead actor and retries its tasks (max_restarts=-1, max_task_retries=-1 by default since 2.x).
# Passing them as extra kwargs is deprecated in 2.60 (removed in 2.64), so the defaults are relied on.
RETRIES = 3  # core tasks (the nearest-centroid shards)


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` ("auto", "HOST:PORT", "ray://...") or start a local one (None)."""
    if ray.is_initialized():
        return
    if address is not None:  # (an explicit RAY_AUTH_MODE is respected by the helper)
        # `ray start` (2.60) enables token auth by default, but a driver joining it sends the token only in
        # token mode: without this it retries "InvalidAuthToken" until it times out.  Ray's own helper switches
        # token mode on when a token exists (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token).
        try:
            from ray._private.authentication.authentication_token_setup import (
                maybe_enable_token_auth_if_token_available,
            )
        except ImportError:  # another Ray version: no token auth, or it works without this
            pass
        else:
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    try:
        ray.init(
            address=address,
            ignore_reinit_error=True,
            log_to_driver=False,
            logging_level=logging.WARNING,
            include_dashboard=False if address is None else None,
        )
    except ConnectionError as exc:
        raise CurateError(
            f"cannot reach a Ray cluster at --address {address} ({exc}): start one with "
            "`ray start --head` or check the address"
        ) from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the pipeline's Reporter shows progress
    ctx.print_on_execution_start = False
    ctx.max_errored_blocks = 0  # a block that fails after its retries fails the run


def resources() -> dict[str, float]:
    """Total CPUs and GPUs of the cluster."""
    total = ray.cluster_resources()
    return {"CPU": float(total.get("CPU", 0.0)), "GPU": float(total.get("GPU", 0.0))}


def shard_dataset(items: list[dict]) -> Any:
    """A dataset with one block per item (each item describes one shard)."""
    return ray.data.from_items(items, override_num_blocks=max(1, len(items)))


def map_tasks(ds: Any, fn: Callable, *, fn_kwargs: dict, num_cpus: float = 1.0) -> Any:
    """``fn`` on each block in stateless CPU tasks (retried when a worker dies)."""
    return ds.map_batches(fn, batch_size=1, batch_format="numpy", fn_kwargs=fn_kwargs, num_cpus=num_cpus)


def map_actors(
    ds: Any,
    cls: type,
    *,
    constructor_kwargs: dict,
    batch_size: int,
    actors: int,
    gpus_per_actor: float,
    cpus_per_actor: float = 1.0,
) -> Any:
    """``cls(**constructor_kwargs)`` once per actor, then ``actor(batch)``; restarted when its process dies."""
    return ds.map_batches(
        cls,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=gpus_per_actor,
        num_cpus=cpus_per_actor,
        fn_constructor_kwargs=constructor_kwargs,
    )


def iter_blocks(ds: Any) -> Iterator[dict]:
    """Stream the dataset's output to the driver, one block (a dict of numpy arrays) at a time.

    Closing this generator (the driver was interrupted) shuts the execution down, so its actors free their
    CPUs/GPUs for the next attempt.
    """
    it = ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
    try:
        yield from it
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def put(obj: Any) -> Any:
    return ray.put(obj)


def get(ref: Any) -> Any:
    return ray.get(ref)


def task(fn: Callable) -> Any:
    """``fn`` as a Ray task retried after a worker dies."""
    return ray.remote(num_cpus=1, max_retries=RETRIES)(fn)


def wait_first(refs: list) -> tuple[list, list]:
    return ray.wait(refs, num_returns=1)


def run_bounded(
    submit: Callable[[Any], Any], jobs: Iterable[Any], *, in_flight: int, done: Callable[[Any, Any], None]
) -> None:
    """Submit ``jobs`` with at most ``in_flight`` pending; ``done(job, result)`` as each finishes."""
    pending: dict = {}
    for job in jobs:
        pending[submit(job)] = job
        while len(pending) >= in_flight:
            ready, _ = ray.wait(list(pending), num_returns=1)
            done(pending.pop(ready[0]), ray.get(ready[0]))
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        done(pending.pop(ready[0]), ray.get(ready[0]))
