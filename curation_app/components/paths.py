"""Where the app may read and write, and which runs a workdir holds (pure, no Streamlit)."""

from __future__ import annotations

import json
import os
import re
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
    """One line naming a run in a select box ("current" marks what ``--workdir`` resolves to)."""
    when = r["created"][:16].replace("T", " ") if r["created"] else "?"
    src = r["source"] if len(r["source"]) <= 48 else r["source"][:45] + "..."
    k = f"{r['k']:,}" if isinstance(r.get("k"), int) else r.get("k")
    mark = "current · " if r.get("current") else ""
    return f"{mark}{when} · {src} · {r['examples']:,} examples · {r['encoder']} · k={k} ({r['key']})"


def list_encoders(workdir: str | Path) -> list[dict]:
    """Encoders trained in a workdir by ``curate train-encoder``, newest first:
    ``[{path, method, backbone, epochs, image_size, images, knn_accuracy, seconds, created}]``."""
    out = []
    for pt in Path(workdir).glob("encoders/*/encoder.pt"):
        try:
            meta = json.loads((pt.parent / "train.json").read_text())
        except (OSError, ValueError):
            meta = {}
        backbone = meta.get("backbone") or {}
        history = meta.get("history") or []
        knn = [h.get("knn_accuracy") for h in history if isinstance(h, dict) and h.get("knn_accuracy") is not None]
        out.append(
            {
                "path": str(pt),
                "method": meta.get("method", "?"),
                "backbone": backbone.get("name", "?") if isinstance(backbone, dict) else str(backbone),
                "epochs": meta.get("epochs"),
                "image_size": backbone.get("image_size") if isinstance(backbone, dict) else None,
                "images": meta.get("n_images"),
                "knn_accuracy": knn[-1] if knn else None,
                "seconds": meta.get("seconds"),
                "created": pt.stat().st_mtime,
            }
        )
    out.sort(key=lambda e: e["created"], reverse=True)
    return out


def encoder_label(e: dict) -> str:
    """One line naming a trained encoder in a select box."""
    knn = f", kNN accuracy {e['knn_accuracy']:.3f}" if e.get("knn_accuracy") is not None else ""
    size = f" at {e['image_size']} px" if e.get("image_size") else ""
    epochs = f", {e['epochs']:,} epochs" if isinstance(e.get("epochs"), int) else ""
    images = f" on {e['images']:,} images" if isinstance(e.get("images"), int) else ""
    return f"{e['method']} / {e['backbone']}{size}{epochs}{images}{knn} ({Path(e['path']).parent.name})"


# the writers speak the command line's words (--force, --out); the Export page has a checkbox and a path field
_PAGE_WORDS = [
    (r"pass --force to (overwrite it|replace that export|replace it)", 'tick "{overwrite}" to \\1'),
    (r"even with --force", 'even with "{overwrite}" ticked'),
    (r"(an empty or new|another|a writable) --out", "\\1 path"),
    (r"as --out", "as the path"),
    (r"end --out with", "end the path with"),
    (r"use `curate select --out kept.csv` instead", "choose a list format (CSV, Parquet, JSON or TXT) instead"),
    (r"--force", '"{overwrite}"'),
    (r"--out", "the path"),
]


def in_page_words(message: str, *, overwrite: str) -> str:
    """A writer's message with the command line's words (--force, --out) replaced by the page's:
    ``overwrite`` is the label of the page's overwrite checkbox."""
    for pattern, repl in _PAGE_WORDS:
        message = re.sub(pattern, repl.replace("{overwrite}", overwrite), message)
    return message
