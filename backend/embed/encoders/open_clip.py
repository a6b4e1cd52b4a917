"""open_clip image towers: ``clip_vit_b32`` (OpenAI CLIP ViT-B/32), ``siglip_vit_b16`` (SigLIP ViT-B/16, WebLI)
and ``open_clip:MODEL[@TAG]`` for any open_clip model.

Only the image tower is kept; the embedding is its output (the joint image-text
space, before normalisation).  Weights, never downloaded: ``--weights FILE``
(an open_clip checkpoint: open_clip_model.safetensors / open_clip_pytorch_model.bin
/ a .pt), ``--weights FOLDER`` (a Hugging Face snapshot holding one of them),
the tag's Hugging Face repo in the local HF cache; or ``--weights random``.
A file path does not carry the tag's preprocessing, so mean, std,
interpolation, resize mode and QuickGELU come from the tag's pretrained config
(``open_clip.get_pretrained_cfg(model, tag)``) and are passed explicitly.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from ...errors import CurateError
from .base import (
    ModuleEncoder,
    describe_transform,
    hf_cached_file,
    is_random,
    local_weights,
    register_encoder,
    seeded_init,
    weights_identity,
)

OPEN_CLIP_ALIASES = {
    "clip_vit_b32": ("ViT-B-32", "openai"),
    "siglip_vit_b16": ("ViT-B-16-SigLIP", "webli"),
}
CHECKPOINT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise CurateError(
            "open_clip encoders need the open_clip_torch package: pip install "
            "'curation-studio[open_clip]' (or pip install open_clip_torch)"
        ) from None
    return open_clip


class OpenClipEncoder(ModuleEncoder):
    channels_last = False

    def __init__(
        self, name: str, model_name: str, tag: str | None, *, weights: str | None = None, image_size: int | None = None
    ):
        open_clip = _open_clip()
        self.name = name
        if open_clip.get_model_config(model_name) is None:
            raise CurateError(
                f"open_clip has no model {model_name!r}: pick one of open_clip.list_models() "
                "(e.g. ViT-B-32, ViT-B-16-SigLIP)"
            )
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        tag = tag or (tags[0] if tags else None)
        tag_cfg = (open_clip.get_pretrained_cfg(model_name, tag) or {}) if tag else {}
        # never fetch tower weights: open_clip 3 calls the switch pretrained_text, open_clip 2 pretrained_hf
        accepted = inspect.signature(open_clip.create_model).parameters
        kwargs: dict[str, Any] = {
            k: False for k in ("pretrained_image", "pretrained_text", "pretrained_hf") if k in accepted
        }
        if image_size:
            kwargs["force_image_size"] = int(image_size)
        for ours, theirs in (
            ("image_mean", "mean"),
            ("image_std", "std"),
            ("image_interpolation", "interpolation"),
            ("image_resize_mode", "resize_mode"),
        ):
            if tag_cfg.get(theirs):
                kwargs[ours] = tag_cfg[theirs]
        if tag_cfg.get("quick_gelu"):
            kwargs["force_quick_gelu"] = True  # OpenAI's CLIP weights were trained with QuickGELU
        if weights is not None and is_random(weights):
            model, _, transform = seeded_init(
                lambda: open_clip.create_model_and_transforms(model_name, pretrained=None, **kwargs)
            )
            weights_id = "random-init-seed0"
        else:
            path = self._weights_file(model_name, tag, tag_cfg, weights)
            try:
                model, _, transform = open_clip.create_model_and_transforms(model_name, pretrained=str(path), **kwargs)
            except Exception as exc:  # noqa: BLE001 - torch, safetensors and pickle errors alike: one line
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                raise CurateError(
                    f"weights {path.name} do not load into open_clip {model_name} ({first}): "
                    "pass a checkpoint of this model"
                ) from None
            weights_id = weights_identity(path)
        self.model = model.visual  # the text tower is not needed for image embeddings
        del model
        self.transform = transform
        size = getattr(self.model, "image_size", None) or image_size or 224
        self.size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.identity = {
            "encoder": name,
            "family": "open_clip",
            "model": model_name,
            "tag": tag,
            "weights": weights_id,
            "image_size": self.size,
            "preprocess": describe_transform(self.transform),
        }
        self._finish()

    @staticmethod
    def _weights_file(model_name: str, tag: str | None, tag_cfg: dict, weights: str | None) -> Path:
        url_file = os.path.basename(tag_cfg.get("url") or "") or None
        names = CHECKPOINT_FILES + ((url_file,) if url_file else ())
        if weights not in (None, "", "pretrained", "default"):
            return local_weights(str(weights), filenames=names, what=f"open_clip {model_name}")
        # open_clip writes "org/repo/" (default file name) or "org/repo/file.bin"
        parts = [p for p in (tag_cfg.get("hf_hub") or "").split("/") if p]
        hub = len(parts) >= 2
        repo = "/".join(parts[:2])
        fname = parts[2] if len(parts) > 2 else None
        found = hf_cached_file(repo, ((fname,) if fname else ()) + CHECKPOINT_FILES) if hub else None
        if found is None:
            where = f"open_clip_model.safetensors of the Hugging Face repo {repo}" if hub else "an open_clip checkpoint"
            raise CurateError(
                f"no weights for open_clip {model_name}"
                + (f" ({tag})" if tag else "")
                + f" on this machine (nothing is downloaded): pass --weights FILE ({where}"
                + (f", or {url_file}" if url_file else "")
                + "), put the repo in the Hugging Face cache, or use --weights random"
            )
        return found


def _make_alias(name, *, weights=None, image_size=None, pca_dim=128):
    model_name, tag = OPEN_CLIP_ALIASES[name]
    return OpenClipEncoder(name, model_name, tag, weights=weights, image_size=image_size)


def _make_any(name, *, weights=None, image_size=None, pca_dim=128):
    model_name, _, tag = name.split(":", 1)[1].partition("@")
    return OpenClipEncoder(name, model_name, tag or None, weights=weights, image_size=image_size)


register_encoder(
    "clip_vit_b32",
    family="open_clip",
    priority=40,
    needs_weights=True,
    description="OpenAI CLIP ViT-B/32 image tower (open_clip ViT-B-32, tag openai)",
)(_make_alias)
register_encoder(
    "siglip_vit_b16",
    family="open_clip",
    priority=41,
    needs_weights=True,
    description="SigLIP ViT-B/16 image tower (open_clip ViT-B-16-SigLIP, tag webli)",
)(_make_alias)
register_encoder(
    "open_clip:",
    prefix=True,
    family="open_clip",
    priority=49,
    needs_weights=True,
    description="any open_clip model, open_clip:MODEL[@TAG], e.g. open_clip:ViT-L-14@openai",
)(_make_any)
