"""Where the app may read and write, and which runs a workdir holds (pure, no Streamlit)."""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_WORKDIR = "work"


def workdir_from_env(environ=None) -> Path:
    """The workdir the app serves: ``$CURATE_WORKDIR`` (set by ``curate app``) or ./work."""
    env = os.environ if environ is None else environ
    return Path(env.get("CURATE_WORKDIR") or DEFAULT_WORKDIR).expanduser().resolve()


def allowed_dirs(environ=None, *, cwd: str | Path | None = None) -> list[Path]:
    """Folders typed paths may point into: ``$CURATE_ALLOWED_DIRS`` (os.pathsep-separated),
    else the workdir and the current directory."""
    env = os.environ if environ is None else environ
    raw = env.get("CURATE_ALLOWED_DIRS", "")
    dirs = [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]
    if not dirs:
        dirs = [workdir_from_env(env), Path(cwd or os.getcwd()).resolve()]
    return list(dict.fromkeys(dirs))


def check_path(
    text: str, allowed: list[Path], *, what: str = "path", for_writing: bool = False
) -> tuple[Path | None, str | None]:
    """(path, None) when ``text`` lies inside an allowed folder, else (None, message).

    Links are followed before the check, so a link inside an allowed folder
    that points elsewhere is refused.  ``for_writing`` returns the path with
    its folder resolved but its last component kept as typed: a symbolic link
    there stays a link, which the writers refuse, instead of being swapped for
    its target (writing somewhere else than asked).
    """
    text = (text or "").strip()
    if not text:
        return None, f"type a {what}"
    try:
        typed = Path(os.path.abspath(Path(text).expanduser()))
        real = typed.resolve()
        p = typed.parent.resolve() / typed.name if for_writing else real
    except (OSError, RuntimeError) as exc:
        return None, f"cannot read the {what} {text!r} ({exc})"
    if any(_inside(p, d) and _inside(real, d) for d in allowed):
        return p, None
    names = ", ".join(str(d) for d in allowed)
    return None, (
        f"{real} is outside the folders this app may use ({names}); restart with "
        f"`curate app --allow-dir FOLDER` to allow another folder"
    )


def _inside(p: Path, folder: Path) -> bool:
    return p == folder or p.is_relative_to(folder)


def list_runs(workdir: str | Path) -> list[dict]:
    """Finished runs of a workdir, latest first: ``[{key, dir, created, source, examples, encoder, k}]``."""
    runs = []
    for cfg_path in Path(workdir).glob("runs/*/run.json"):
        try:
            cfg = json.loads(cfg_path.read_text())
        except (OSError, ValueError):
            continue  # a run being written or a damaged one: not offered
        p = cfg.get("params", {})
        runs.append(
            {
                "key": cfg_path.parent.name,
                "dir": str(cfg_path.parent),
                "created": cfg.get("created", ""),
                "mtime": cfg_path.stat().st_mtime,
                "source": cfg.get("source", {}).get("description", p.get("source", "?")),
                "examples": int(cfg.get("counts", {}).get("examples", 0)),
                "encoder": p.get("encoder", "?"),
                "k": p.get("k"),
                "map": p.get("map_method"),
            }
        )
    runs.sort(key=lambda r: (r["mtime"], r["created"]), reverse=True)
    return runs


def run_label(r: dict) -> str:
    """One line naming a run in a select box."""
    when = r["created"][:16].replace("T", " ") if r["created"] else "?"
    src = r["source"] if len(r["source"]) <= 48 else r["source"][:45] + "..."
    return f"{when} · {src} · {r['examples']:,} examples · {r['encoder']} · k={r['k']} ({r['key']})"
