"""In-memory image arrays: torchvision data sets, IDX files, the demo."""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import struct
from pathlib import Path

import numpy as np

from ..errors import CurateError
from .base import Source, make_index
from .registry import register_source

TORCHVISION_SETS = ("MNIST", "FashionMNIST", "KMNIST", "CIFAR10", "CIFAR100", "SVHN")
IDX_SETS = ("MNIST", "FashionMNIST", "KMNIST")  # stored as IDX files under <root>/<NAME>/raw/
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def array_source(spec, kind, description, splits: dict, classes) -> Source:
    """``splits`` maps split name -> (images uint8 (n,H,W[,3]), integer labels)."""
    imgs: list[np.ndarray] = []
    ids: list[str] = []
    labels: list[str] = []
    split_col: list[str] = []
    h = hashlib.sha256(spec.encode())
    for split, (x, y) in splits.items():
        x = np.ascontiguousarray(x, dtype=np.uint8)
        y = np.asarray(y).astype(np.int64)
        imgs.append(x)
        ids.extend(f"{split}/{i}" for i in range(len(x)))
        names = classes if classes else [str(c) for c in range(int(y.max()) + 1)]
        labels.extend(np.asarray(names, dtype=object)[y].tolist())
        split_col.extend([split] * len(x))
        h.update(split.encode())
        h.update(hashlib.sha256(x.tobytes()).digest())
        h.update(y.tobytes())
    images = np.concatenate(imgs) if len(imgs) > 1 else imgs[0]
    index = make_index(ids, None, labels, split_col)
    shape = images.shape[1:]
    size = f"{shape[1]}x{shape[0]}" + (" RGB" if len(shape) == 3 else " grey")
    return Source(
        spec=spec,
        kind=kind,
        index=index,
        fingerprint=h.hexdigest()[:16],
        description=description,
        classes=list(classes) if classes else None,
        images=images,
        image_size=size,
    )


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise CurateError(f"{path} is not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for cand in (folder / f"{stem}.gz", folder / stem):
        if cand.exists():
            return cand
    return None


def fashion_mnist_from_idx(folder: Path, spec: str, description: str, classes=None) -> Source | None:
    """A Source from the four MNIST-style IDX files (``.gz`` or extracted) in ``folder``, or None."""
    names = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    splits = {}
    for split, (xi, yi) in names.items():
        px, py = _find_idx(folder, xi), _find_idx(folder, yi)
        if px is None or py is None:
            if split == "train":
                return None
            continue
        splits[split] = (_read_idx(px), _read_idx(py))
    return array_source(
        spec,
        "demo" if spec == "demo" else "torchvision",
        description,
        splits,
        FASHION_CLASSES if classes is None else classes,
    )


def load_torchvision(name: str, root: str | Path | None, *, download: bool = False) -> Source:
    match = {n.lower(): n for n in TORCHVISION_SETS}.get(name.lower())
    if match is None:
        raise CurateError(
            f"unknown torchvision data set {name!r}: use one of "
            f"{', '.join(TORCHVISION_SETS)} (e.g. torchvision:CIFAR10)"
        )
    root = Path(root or os.environ.get("CURATE_DATA_ROOT", "data")).expanduser().resolve()
    try:
        import torchvision.datasets as tvd
    except ImportError as exc:  # pragma: no cover
        raise CurateError(f"torchvision is needed for torchvision:{match} ({exc}); pip install torchvision") from None
    cls = getattr(tvd, match)
    if match in IDX_SETS:
        # torchvision only reads the extracted IDX files; the .gz originals (as Debian ships
        # them, or as a download leaves them) are read directly, offline.
        src = fashion_mnist_from_idx(
            root / match / "raw",
            f"torchvision:{match}",
            f"torchvision {match} from {root} (IDX files)",
            list(cls.classes),
        )
        if src is not None:
            return src
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    classes = None
    for split in ("train", "test"):
        try:
            if match == "SVHN":
                ds = cls(str(root), split=split, download=download)
                x, y = ds.data.transpose(0, 2, 3, 1), ds.labels
                classes = [str(i) for i in range(10)]
            else:
                ds = cls(str(root), train=(split == "train"), download=download)
                x = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
                y = ds.targets.numpy() if hasattr(ds.targets, "numpy") else np.asarray(ds.targets)
                classes = list(ds.classes)
        except (RuntimeError, FileNotFoundError, OSError) as exc:
            if split == "test" and splits:
                continue  # a train split without its test split is still usable
            hint = (
                "pass --download to fetch it (needs the internet)" if not download else f"the download failed ({exc})"
            )
            raise CurateError(
                f"torchvision:{match} not found under {root}: put the files there, point --data-root at them, or {hint}"
            ) from None
        splits[split] = (x, y)
    return array_source(
        f"torchvision:{match}", "torchvision", f"torchvision {match} from {root} ({', '.join(splits)})", splits, classes
    )


@register_source(
    "torchvision",
    spec="torchvision:NAME",
    priority=40,
    description="MNIST, FashionMNIST, KMNIST, CIFAR10, CIFAR100, SVHN from --data-root (downloads "
    "only with --download)",
)
def _torchvision_kind(target, *, data_root=None, download: bool = False, **_):
    return load_torchvision(target, data_root, download=download)


@register_source(
    "demo",
    spec="demo",
    exact=True,
    priority=0,
    description="Fashion-MNIST train (pool) + test (held out): a torchvision root, Debian's "
    "dataset-fashion-mnist, a download, or scikit-learn's digits",
)
def _demo_kind(target, *, data_root=None, **_):
    return load_demo(data_root, allow_download=True)


def load_demo(data_root: str | Path | None = None, *, allow_download: bool = True) -> Source:
    """Fashion-MNIST train (pool) + test (held out), from the first place that has it.

    Order: a torchvision root (``--data-root``, ``$CURATE_DATA_ROOT`` or ``./data``),
    Debian's dataset-fashion-mnist files, a torchvision download when online, and
    finally scikit-learn's bundled 8x8 digits.
    """
    roots = [Path(r).expanduser() for r in (data_root, os.environ.get("CURATE_DATA_ROOT"), "data") if r]
    for root in roots:
        raw = root / "FashionMNIST" / "raw"
        if raw.is_dir():
            src = fashion_mnist_from_idx(raw, "demo", f"Fashion-MNIST from torchvision root {root.resolve()}")
            if src is not None:
                return src
    if DEBIAN_FASHION_MNIST.is_dir():
        src = fashion_mnist_from_idx(
            DEBIAN_FASHION_MNIST, "demo", f"Fashion-MNIST from Debian's dataset-fashion-mnist ({DEBIAN_FASHION_MNIST})"
        )
        if src is not None:
            return src
    if allow_download and _online():
        root = (roots[0] if roots else Path("data")).resolve()
        try:
            import torchvision.datasets as tvd

            for is_train in (True, False):
                tvd.FashionMNIST(str(root), train=is_train, download=True)
            src = fashion_mnist_from_idx(
                root / "FashionMNIST" / "raw", "demo", f"Fashion-MNIST downloaded by torchvision into {root}"
            )
            if src is not None:
                return src
        except Exception:  # noqa: BLE001, S110 - any failure falls through to the bundled set
            pass
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(imgs))
    test = order[:300]
    train = order[300:]
    return array_source(
        "demo",
        "demo",
        "scikit-learn's bundled 8x8 digits (Fashion-MNIST was not found: "
        "apt-get install dataset-fashion-mnist for the full demo)",
        {"train": (imgs[train], d.target[train]), "test": (imgs[test], d.target[test])},
        [str(i) for i in range(10)],
    )


def _online(host: str = "ossci-datasets.s3.amazonaws.com", timeout: float = 2.0) -> bool:
    if os.environ.get("CURATE_OFFLINE"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
