"""What every encoder shares: the registry, the torch-module encoder and the weights helpers.

An encoder turns an RGB PIL image into a vector.  The embedding runner
(``backend/embed/runner.py``) calls

``preprocess(img) -> tensor``   in the DataLoader workers
``empty() -> tensor``           the placeholder for an unreadable image
``to(device)``, ``forward(batch) -> (B, raw_dim)`` on the device
``raw_dim``, ``raw_dtype``, ``pca_dim`` (None unless the runner fits a PCA after the pass)

and the pipeline puts ``identity`` (a JSON-able dict: family, model, a content
hash of the weights, image size, preprocessing) into the embedding cache key,
so new weights, or the same name with other weights, never reuse old vectors.

A family is one module of this package with one ``@register_encoder``.  Names
that take any model of a library (``timm:NAME``, ``open_clip:NAME``) are
registered as a prefix.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CurateError
from ...registry import Entry, Registry

RANDOM_WEIGHTS = ("random", "none")  # --weights random: untrained, seeded (tests, smoke runs)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EncoderRegistry(Registry):
    """A :class:`Registry` that also resolves prefix families (``timm:vit_small_patch14_dinov2``).

    It behaves like the tuple of names it replaced: iterating gives the names
    (argparse ``choices``, a select box), ``name in ENCODERS`` accepts a
    prefixed name too, and ``ENCODERS[i]`` indexes the names.
    """

    def names(self, **where: Any) -> list[str]:
        return [n for n in super().names(**where) if not self._entries[n].info.get("prefix")]

    def prefixes(self) -> list[str]:
        self._load()
        return [n for n, e in self._entries.items() if e.info.get("prefix")]

    def entry(self, name: str) -> Entry:
        self._load()
        if name in self._entries and not self._entries[name].info.get("prefix"):
            return self._entries[name]
        for prefix in self.prefixes():
            if name.startswith(prefix) and len(name) > len(prefix):
                return self._entries[prefix]
        raise CurateError(
            f"unknown encoder {name!r}: use one of {', '.join(self.names())}, or "
            f"{' / '.join(p + 'MODEL' for p in self.prefixes())} (--encoder)"
        )

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.entry(name)
        except CurateError:
            return False
        return True

    def __getitem__(self, i):
        return self.names()[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"EncoderRegistry({self.names()} + {self.prefixes()})"


ENCODERS: EncoderRegistry = EncoderRegistry("encoder", packages=("backend.embed.encoders",))


def register_encoder(
    name: str, *, description: str, family: str, prefix: bool = False, priority: int = 50, **info: Any
) -> Callable:
    """Register ``factory(name, *, weights, image_size, pca_dim) -> encoder`` under ``name``.

    ``prefix=True``: ``name`` is a prefix such as ``"timm:"`` and the factory gets the full name.
    """
    return ENCODERS.register(name, description=description, family=family, prefix=prefix, priority=priority, **info)


def get_encoder(name: str, *, weights: str | None = None, image_size: int | None = None, pca_dim: int = 128):
    """The encoder called ``name`` (see ``list(ENCODERS)``; also ``timm:MODEL`` and ``open_clip:MODEL``).

    ``weights``: a file or folder, ``random`` (untrained, seeded), or None for the
    family's default (ImageNet / the model's pretrained tag, looked up in the
    local torch and Hugging Face caches; never downloaded).
    """
    entry = ENCODERS.entry(name)
    if image_size is not None and int(image_size) < 8:
        raise CurateError(f"--image-size {image_size} is too small: pass at least 8 pixels")
    return entry.obj(name, weights=weights, image_size=image_size, pca_dim=pca_dim)


class ModuleEncoder:
    """A torch module plus its eval transform; the shared body of every neural encoder.

    Subclasses set ``model`` (eval mode, head removed), ``transform`` (PIL -> tensor),
    ``size`` (input height = width), ``identity`` and call :meth:`_finish`.
    """

    raw_dtype = np.float32
    pca_dim = None
    channels_last = True  # CNNs run faster channels-last on CUDA; ViTs do not care

    model: Any
    transform: Any
    size: int
    identity: dict

    def _finish(self) -> None:
        import torch

        self.model.eval()
        self.device = "cpu"
        with torch.inference_mode():
            out = self._embed(torch.zeros(1, 3, self.size, self.size))
        self.raw_dim = int(out.shape[-1])

    def _embed(self, batch):
        """(B, 3, H, W) -> (B, D); override when the module's output is not the embedding."""
        out = self.model(batch)
        return out.flatten(1) if out.ndim > 2 else out

    def preprocess(self, img):
        return self.transform(img)

    def empty(self):
        import torch

        return torch.zeros(3, self.size, self.size)

    def to(self, device):
        import torch

        self.device = str(device)
        self.model = self.model.to(device)
        if self.device.startswith("cuda") and self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        return self

    def forward(self, batch):
        import torch

        with torch.inference_mode():
            if self.device.startswith("cuda"):
                batch = batch.to(self.device, non_blocking=True)
                if self.channels_last:
                    batch = batch.to(memory_format=torch.channels_last)
                # fp16 autocast: inference only, the vectors are cast back to fp32
                with torch.autocast("cuda", dtype=torch.float16):
                    out = self._embed(batch)
                return out.float()
            return self._embed(batch.to(self.device))


def seeded_init(build: Callable[[], Any]) -> Any:
    """Build a model under a fixed seed: "random" weights are the same every time, as their identity claims."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def is_random(weights: str | None) -> bool:
    return weights is not None and str(weights).lower() in RANDOM_WEIGHTS


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's content (remembered per path, size and mtime within the process)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def weights_identity(path: str | os.PathLike) -> str:
    """What goes into the cache key for a weights file: its content hash, not its name."""
    return f"file-sha256:{file_sha256(path)[:16]}"


def hf_cached_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """A file of a Hugging Face repo already in the local HF cache, or None.  Never touches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in filenames:
        try:
            found = try_to_load_from_cache(repo_id, name)
        except Exception:  # noqa: BLE001 - a malformed cache entry is the same as none
            found = None
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def file_in_folder(folder: Path, filenames: tuple[str, ...]) -> Path | None:
    """The first of ``filenames`` inside ``folder`` (or one level down, e.g. an HF snapshot)."""
    for name in filenames:
        if (folder / name).is_file():
            return folder / name
    for name in filenames:
        hits = sorted(folder.glob(f"*/{name}"))
        if hits:
            return hits[0]
    return None


def local_weights(weights: str, *, filenames: tuple[str, ...], what: str) -> Path:
    """``--weights`` as a file, or the weights file inside a folder; a one-line error otherwise."""
    p = Path(weights).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        found = file_in_folder(p, filenames)
        if found is None:
            raise CurateError(
                f"no weights file for {what} in {p}: put one of {', '.join(filenames)} there, "
                "or pass the file itself with --weights FILE"
            )
        return found
    raise CurateError(
        f"weights {p} do not exist: pass a weights file or folder for {what}, "
        "or --weights random for an untrained model"
    )


def strip_prefix(key: str) -> str:
    """State-dict key without the wrappers that DataParallel, DINO or Lightning put in front."""
    for prefix in ("module.", "backbone.", "encoder.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def describe_transform(transform) -> str:
    """A stable text of a torchvision transform (part of the identity: other preprocessing, other vectors)."""
    text = repr(transform)
    return " ".join(text.split())
