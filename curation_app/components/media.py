"""Bytes the browser fetches from Streamlit's in-memory media store, at URLs that also work under
``server.baseUrlPath`` (the Map page's canvas data, the Redundancy page's thumbnails in static HTML)."""

from __future__ import annotations

import hashlib


def with_base_path(url: str, base_url_path: str) -> str:
    """``url`` as the browser must fetch it when the app is served under ``server.baseUrlPath``.

    The media store hands out server-absolute paths (``/media/<id>.bin``) and Streamlit's own frontend
    prefixes them with the app's base before it loads an image; a component's ``fetch`` gets the bare path,
    which misses the app under ``--server.baseUrlPath studio`` (served at ``/studio/media/...``)."""
    base = (base_url_path or "").strip("/")
    if not base or not url.startswith("/") or url.startswith("//"):
        return url
    return f"/{base}{url}"


_DIGESTS: dict[int, tuple[bytes, str]] = {}  # id(bytes) -> (the bytes, kept alive so the id stays theirs; digest)


def digest(data: bytes) -> str:
    """A digest of every byte; remembered for the last few bytes objects (the run's positions and ids are the
    same object on every rerun: 15 MB at 1,000,000 points is not hashed again per rerun)."""
    hit = _DIGESTS.pop(id(data), None)
    if hit is not None and hit[0] is data:
        _DIGESTS[id(data)] = hit  # most recently used last: a new colouring evicts an old colouring first
        return hit[1]
    value = hashlib.blake2b(data, digest_size=16).hexdigest()
    while len(_DIGESTS) >= 4:
        _DIGESTS.pop(next(iter(_DIGESTS)))
    _DIGESTS[id(data)] = (data, value)
    return value


def url(data: bytes, coordinates: str, mimetype: str = "application/octet-stream") -> str:
    """A URL the browser fetches ``data`` from: Streamlit's in-memory media store (same origin, id = hash of
    the bytes, so identical bytes keep their URL across reruns); a data URL when no server runs (AppTest)."""
    from streamlit import config, runtime

    if runtime.exists():
        try:
            # above 1 MiB the store's file id hashes only the length, head, middle and tail (64 KiB each): a
            # colouring that differs elsewhere (one more example kept at 1,000,000) would keep its URL and the
            # browser would not fetch it; a digest of every byte as the (never shown) file name tells them apart
            name = digest(data) if len(data) > 1 << 20 else None
            served = runtime.get_instance().media_file_mgr.add(data, mimetype, coordinates, file_name=name)
            return with_base_path(served, config.get_option("server.baseUrlPath"))
        except Exception:  # noqa: BLE001 - no session (bare script): fall back to inline data
            pass
    import base64

    return f"data:{mimetype};base64," + base64.b64encode(data).decode()
