"""Which run a workdir's ``--workdir`` resolves to (``latest.json``), read and set on purpose.

``curate run`` makes its run the workdir's current one (``--keep-current``
leaves it as it was); the app starts runs with ``--keep-current`` unless the
user asks otherwise, and sets the current run only when the user says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CurateError
from ..io import read_json, write_json
from ..run import LATEST


def current_run_key(workdir: str | os.PathLike) -> str | None:
    """The key of the run ``--workdir`` resolves to, or None when the workdir has none (or it is gone)."""
    wd = Path(workdir).expanduser().resolve()
    try:
        rel = read_json(wd / LATEST)["run"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    run = wd / rel
    return run.name if (run / "run.json").is_file() else None


def set_current_run(workdir: str | os.PathLike, run_key: str) -> None:
    """Make ``runs/<run_key>`` what ``--workdir`` resolves to for every ``curate`` command."""
    wd = Path(workdir).expanduser().resolve()
    run = wd / "runs" / run_key
    if "/" in run_key or run_key in ("", ".", "..") or not (run / "run.json").is_file():
        raise CurateError(f"no finished run {run_key!r} in {wd / 'runs'}: pick one that `curate run` finished")
    write_json(wd / LATEST, {"run": str(run.relative_to(wd))})
