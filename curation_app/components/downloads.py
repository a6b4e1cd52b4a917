"""Download buttons whose file is always the one on screen.

Why: Streamlit 1.67's media store names a file above 1 MiB by a hash of its length, first, middle and last
64 KiB only, and keeps the first file stored under a name.  Two kept lists of the same length that differ
elsewhere (one example swapped for another with an id of the same length, in a list sorted by id) would get
the same name, and the button would hand out the earlier list.  The MIME type is part of the name, so a digest
of every byte as a MIME parameter (``text/csv; x-content-digest=...``, ignored by browsers) tells them apart.
"""

from __future__ import annotations

import hashlib

PARTIAL_HASH_ABOVE = 1 << 20  # streamlit/runtime/memory_media_file_storage.py _PARTIAL_HASH_THRESHOLD


def exact_mime(data: bytes | str, mime: str) -> str:
    """``mime``, with a digest of all of ``data`` as a parameter when Streamlit would hash only part of it."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) <= PARTIAL_HASH_ABOVE:
        return mime
    return f"{mime}; x-content-digest={hashlib.blake2b(raw, digest_size=16).hexdigest()}"


def tagged_mime(mime: str, identity: bytes | str) -> str:
    """``mime`` tagged with a digest of ``identity``: for a button whose bytes are made on click (a callable),
    ``identity`` is what determines them (e.g. the kept rows and the format)."""
    raw = identity.encode() if isinstance(identity, str) else bytes(identity)
    return f"{mime}; x-content-digest={hashlib.blake2b(raw, digest_size=16).hexdigest()}"


def frame_identity(df, *extra: str) -> bytes:
    """Bytes that change whenever any cell of ``df`` (or any of ``extra``) does."""
    import pandas as pd

    return pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes() + "\0".join(extra).encode()
