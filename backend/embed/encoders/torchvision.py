"""torchvision backbones (``resnet18``, ``resnet50``, ``vit_b_16``, ...): the classifier head is removed.

Weights come from ``--weights FILE`` (any state dict for that architecture,
e.g. self-supervised SwAV/DINO ResNet-50 weights, the paper's choice), from
torch's cache (``~/.cache/torch/hub/checkpoints``) for ImageNet weights, or
``--weights random`` (untrained, for tests).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import CurateError
from .base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModuleEncoder,
    is_random,
    register_encoder,
    seeded_init,
    strip_prefix,
    weights_identity,
)

TORCHVISION_ENCODERS = {
    # name: (weights enum name, default image size)
    "resnet18": ("ResNet18_Weights", 224),
    "resnet34": ("ResNet34_Weights", 224),
    "resnet50": ("ResNet50_Weights", 224),
    "resnet101": ("ResNet101_Weights", 224),
    "wide_resnet50_2": ("Wide_ResNet50_2_Weights", 224),
    "vit_b_16": ("ViT_B_16_Weights", 224),
    "vit_b_32": ("ViT_B_32_Weights", 224),
    "convnext_tiny": ("ConvNeXt_Tiny_Weights", 224),
    "efficientnet_b0": ("EfficientNet_B0_Weights", 224),
    "mobilenet_v3_large": ("MobileNet_V3_Large_Weights", 224),
}
HEAD_PREFIXES = ("fc.", "heads.", "classifier.")


class TorchvisionEncoder(ModuleEncoder):
    def __init__(self, name: str, weights: str | None = "imagenet", image_size: int | None = None):
        import torchvision
        from torchvision import transforms as T

        self.name = name
        enum_name, default_size = TORCHVISION_ENCODERS[name]
        self.size = int(image_size or default_size)
        if name.startswith("vit") and self.size != 224:
            raise CurateError(f"{name} needs --image-size 224 (got {self.size})")
        self.channels_last = not name.startswith("vit")
        model = seeded_init(lambda: torchvision.models.get_model(name, weights=None))
        weights_id = self._load_weights(model, enum_name, weights)
        strip_head(model)
        self.model = model
        resize = int(round(self.size * 256 / 224))
        self.identity = {
            "encoder": name,
            "weights": weights_id,
            "image_size": self.size,
            "preprocess": f"resize{resize},centercrop{self.size},imagenet-normalise",
        }
        self.transform = T.Compose(
            [T.Resize(resize), T.CenterCrop(self.size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        )
        self._finish()

    def _load_weights(self, model, enum_name, weights) -> str:
        import torch
        import torchvision

        if weights is None or is_random(weights):
            return "random-init-seed0"
        if weights == "imagenet":
            enum = getattr(torchvision.models, enum_name).DEFAULT
            fname = os.path.basename(enum.url)
            cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
            if not cached.exists():
                from ...sources.arrays import _online

                if not _online("download.pytorch.org"):
                    raise CurateError(
                        f"no ImageNet weights for {self.name} and no network: pass --weights FILE "
                        f"(a {self.name} state dict), copy {fname} into {cached.parent}, "
                        "or use --encoder pixels"
                    )
                try:
                    torch.hub.download_url_to_file(enum.url, str(cached), progress=True)
                except Exception as exc:  # noqa: BLE001
                    raise CurateError(f"downloading {fname} failed ({exc}): pass --weights FILE") from None
            path = cached
            ident = f"torchvision:{fname}"
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise CurateError(
                    f"weights file {path} does not exist: pass a state dict saved with "
                    f"torch.save(model.state_dict(), FILE), or --weights imagenet"
                )
            ident = weights_identity(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise CurateError(
                f"cannot read weights {path} ({type(exc).__name__}): pass a state dict saved with torch.save"
            ) from None
        for key in ("state_dict", "model", "teacher", "student"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        if not isinstance(state, dict):
            raise CurateError(
                f"weights {path.name} hold a {type(state).__name__}, not a state dict: "
                "save them with torch.save(model.state_dict(), FILE)"
            )
        state = {strip_prefix(str(k)): v for k, v in state.items()}
        own = model.state_dict()
        wrong = [k for k, v in state.items() if k in own and tuple(getattr(v, "shape", ())) != tuple(own[k].shape)]
        bad = [k for k in wrong if not k.startswith(HEAD_PREFIXES)]
        if bad:
            raise CurateError(
                f"weights {path.name} do not fit {self.name}: {bad[0]} has shape "
                f"{tuple(getattr(state[bad[0]], 'shape', ()))}, the model needs "
                f"{tuple(own[bad[0]].shape)}; pass weights for this architecture"
            )
        # a classifier head of another size does not matter: the head is removed
        state = {k: v for k, v in state.items() if k not in wrong}
        result = model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(HEAD_PREFIXES)]
        if missing:
            raise CurateError(
                f"weights {path.name} do not fit {self.name}: {len(missing)} tensors "
                f"missing (e.g. {missing[0]}); pass weights for this architecture"
            )
        return ident


def strip_head(model) -> None:
    """Replace a torchvision classifier head by the identity, so the model returns pooled features."""
    import torch.nn as nn

    if hasattr(model, "fc"):
        model.fc = nn.Identity()
    elif hasattr(model, "heads"):
        model.heads = nn.Identity()
    elif hasattr(model, "classifier"):
        cls = model.classifier
        if isinstance(cls, nn.Sequential):
            layers = list(cls.children())
            while layers and not isinstance(layers[-1], nn.Linear):
                layers.pop()
            model.classifier = nn.Sequential(*layers[:-1]) if layers else nn.Identity()
        else:
            model.classifier = nn.Identity()


def _make(name, *, weights=None, image_size=None, pca_dim=128):
    return TorchvisionEncoder(name, weights=weights or "imagenet", image_size=image_size)


for _name in TORCHVISION_ENCODERS:
    register_encoder(
        _name,
        family="torchvision",
        priority=20,
        needs_weights=True,
        description=f"torchvision {_name}, head removed; --weights FILE, imagenet (torch cache) or random",
    )(_make)
