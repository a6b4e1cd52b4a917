"""Content-addressed artifact store.

Every stage writes its outputs into ``<workdir>/<stage>/<fingerprint>/``. The
fingerprint hashes the stage name, the stage version, the fingerprints of its
inputs and its parameters, so identical inputs hit the cache and any change
(including a new stage version) gets a new folder.  A folder counts as finished
only once its ``meta.json`` exists; it is written last, atomically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .io import read_json, write_json

META = "meta.json"


def fingerprint(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Stage:
    """One cached stage output folder."""

    def __init__(self, workdir: str | Path, name: str, version: int, inputs: dict[str, Any]):
        self.name = name
        self.version = version
        self.inputs = inputs
        self.key = fingerprint(name, version, inputs)
        self.dir = Path(workdir) / name / self.key

    @property
    def done(self) -> bool:
        return (self.dir / META).exists()

    def meta(self) -> dict:
        return read_json(self.dir / META)

    def prepare(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir

    def finish(self, **info: Any) -> None:
        write_json(self.dir / META, {"stage": self.name, "version": self.version,
                                     "key": self.key, "inputs": self.inputs, **info})
