"""timm models by name: ``dinov2_vits14``, ``dinov2_vitb14``, ``timm_resnet50`` and ``timm:ANY_TIMM_NAME``.

Weights, never downloaded, in this order: ``--weights FILE`` (a timm or
original checkpoint, .safetensors/.pth/.bin), ``--weights FOLDER`` (a
Hugging Face snapshot with model.safetensors or pytorch_model.bin), the model's
Hugging Face repo in the local HF cache, its file in torch's hub cache; or
``--weights random``.  Loading goes through timm itself
(``create_model(name, pretrained=True, pretrained_cfg_overlay={"file": PATH})``),
so timm's own checkpoint filters (e.g. DINOv2 position-embedding resampling
for another ``--image-size``) apply.  Preprocessing is the model's own
(timm's ``resolve_model_data_config`` + ``create_transform``: size, crop,
interpolation, mean, std).
"""

from __future__ import annotations

import os
from pathlib import Path

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

TIMM_ALIASES = {
    "dinov2_vits14": "vit_small_patch14_dinov2.lvd142m",
    "dinov2_vitb14": "vit_base_patch14_dinov2.lvd142m",
    "timm_resnet50": "resnet50.a1_in1k",
}
HF_FILES = ("model.safetensors", "pytorch_model.bin")


def _timm():
    try:
        import timm
    except ImportError:
        raise CurateError(
            "timm encoders need the timm package: pip install 'curation-studio[timm]' (or pip install timm)"
        ) from None
    return timm


class TimmEncoder(ModuleEncoder):
    def __init__(self, name: str, model_name: str, *, weights: str | None = None, image_size: int | None = None):
        timm = _timm()
        self.name = name
        if not timm.is_model(model_name):
            raise CurateError(
                f"timm has no model {model_name!r}: pick a name from timm.list_models() "
                "(e.g. vit_small_patch14_dinov2.lvd142m, resnet50.a1_in1k)"
            )
        kwargs = {"num_classes": 0}
        if image_size and _is_vit(model_name):
            kwargs["img_size"] = int(image_size)
        if weights is not None and is_random(weights):
            model = seeded_init(lambda: timm.create_model(model_name, pretrained=False, **kwargs))
            weights_id = "random-init-seed0"
        else:
            path = self._weights_file(timm, model_name, weights)
            try:
                model = timm.create_model(
                    model_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs
                )
            except Exception as exc:  # noqa: BLE001 - torch, safetensors and pickle errors alike: one line
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                raise CurateError(
                    f"weights {path.name} do not load into timm {model_name} ({first}): "
                    "pass a checkpoint of this architecture"
                ) from None
            weights_id = weights_identity(path)
        data_args = {"input_size": (3, int(image_size), int(image_size))} if image_size else None
        cfg = timm.data.resolve_model_data_config(model, args=data_args)
        self.size = int(cfg["input_size"][-1])
        self.transform = timm.data.create_transform(**cfg, is_training=False)
        self.model = model
        self.channels_last = not hasattr(model, "patch_embed")
        self.identity = {
            "encoder": name,
            "family": "timm",
            "model": model_name,
            "weights": weights_id,
            "image_size": self.size,
            "preprocess": describe_transform(self.transform),
        }
        self._finish()

    @staticmethod
    def _weights_file(timm, model_name: str, weights: str | None) -> Path:
        cfg = timm.models.get_pretrained_cfg(model_name)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        url = getattr(cfg, "url", None) if cfg is not None else None
        url_file = os.path.basename(url) if url else None
        names = HF_FILES + ((url_file,) if url_file else ())
        if weights not in (None, "", "pretrained", "default"):
            return local_weights(str(weights), filenames=names, what=f"timm {model_name}")
        found = hf_cached_file(hub_id, HF_FILES) if hub_id else None
        if found is None and url_file:
            import torch

            cached = Path(torch.hub.get_dir()) / "checkpoints" / url_file
            found = cached if cached.is_file() else None
        if found is None:
            where = f"model.safetensors of the Hugging Face repo {hub_id}" if hub_id else "a checkpoint file"
            raise CurateError(
                f"no weights for timm {model_name} on this machine (nothing is downloaded): pass "
                f"--weights FILE ({where}"
                + (f", or {url_file}" if url_file else "")
                + "), put the repo in the Hugging Face cache, or use --weights random"
            )
        return found


def _is_vit(model_name: str) -> bool:
    base = model_name.split(".")[0]
    return base.startswith(("vit", "deit", "eva", "beit", "dinov2"))


def _make_alias(name, *, weights=None, image_size=None, pca_dim=128):
    return TimmEncoder(name, TIMM_ALIASES[name], weights=weights, image_size=image_size)


def _make_any(name, *, weights=None, image_size=None, pca_dim=128):
    return TimmEncoder(name, name.split(":", 1)[1], weights=weights, image_size=image_size)


register_encoder(
    "dinov2_vits14",
    family="timm",
    priority=30,
    needs_weights=True,
    description="DINOv2 ViT-S/14 (timm vit_small_patch14_dinov2.lvd142m), self-supervised; 518 px "
    "by default, --image-size 224 is 5x faster",
)(_make_alias)
register_encoder(
    "dinov2_vitb14",
    family="timm",
    priority=31,
    needs_weights=True,
    description="DINOv2 ViT-B/14 (timm vit_base_patch14_dinov2.lvd142m)",
)(_make_alias)
register_encoder(
    "timm_resnet50",
    family="timm",
    priority=32,
    needs_weights=True,
    description="ResNet-50 (timm resnet50.a1_in1k), supervised ImageNet",
)(_make_alias)
register_encoder(
    "timm:",
    prefix=True,
    family="timm",
    priority=39,
    needs_weights=True,
    description="any timm model by name, e.g. timm:convnext_tiny.fb_in1k",
)(_make_any)
