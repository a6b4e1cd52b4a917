"""Backbones for self-supervised training, rebuilt identically from the spec stored in the weights file.

``small-cnn``  four 3x3 conv layers (32-64-128-256 channels, BatchNorm, ReLU,
               stride 2 from the second on), global average pool: 256-d; fast
               enough to train on a CPU at the data's own resolution (28-64 px).
``resnet18``, ``resnet34``, ``resnet50``  torchvision, untrained; at 64 px and
               below the ImageNet stem (7x7 stride 2 + max-pool) is replaced by
               a 3x3 stride-1 conv (the usual CIFAR stem), else 28 px images
               shrink to 1x1 before the last block.
``timm:NAME``  any timm model, untrained, ``num_classes=0``.
"""

from __future__ import annotations

from typing import Any

from ..errors import CurateError

BACKBONES = ("small-cnn", "resnet18", "resnet34", "resnet50")
SMALL_STEM_MAX_PX = 64


def backbone_spec(name: str, *, image_size: int) -> dict[str, Any]:
    """The spec stored with trained weights: enough to build the same module again."""
    if name not in BACKBONES and not name.startswith("timm:"):
        raise CurateError(f"unknown backbone {name!r}: use one of {', '.join(BACKBONES)} or timm:MODEL (--backbone)")
    spec: dict[str, Any] = {"name": name, "image_size": int(image_size)}
    if name.startswith("resnet"):
        spec["stem"] = "small" if image_size <= SMALL_STEM_MAX_PX else "imagenet"
    return spec


def build_backbone(spec: dict[str, Any]):
    """(module, feature dimension) for a spec from :func:`backbone_spec`; the module maps (B,3,H,W) -> (B,D)."""
    import torch
    import torch.nn as nn

    name = spec["name"]
    if name == "small-cnn":
        model: nn.Module = SmallCNN()
    elif name.startswith("resnet"):
        import torchvision

        model = torchvision.models.get_model(name, weights=None)
        if spec.get("stem") == "small":
            model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
        model.fc = nn.Identity()
    elif name.startswith("timm:"):
        try:
            import timm
        except ImportError:
            raise CurateError("timm backbones need the timm package: pip install timm") from None
        model_name = name.split(":", 1)[1]
        if not timm.is_model(model_name):
            raise CurateError(f"timm has no model {model_name!r}: pick one from timm.list_models()")
        kwargs: dict[str, Any] = {"num_classes": 0}
        if model_name.startswith(("vit", "deit")):
            kwargs["img_size"] = spec["image_size"]
        model = timm.create_model(model_name, pretrained=False, **kwargs)
    else:
        raise CurateError(f"unknown backbone {name!r}: use one of {', '.join(BACKBONES)} or timm:MODEL")
    model.eval()
    with torch.no_grad():
        dim = int(model(torch.zeros(2, 3, spec["image_size"], spec["image_size"])).flatten(1).shape[1])
    return model, dim


def _conv_bn(cin: int, cout: int, stride: int):
    import torch.nn as nn

    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def SmallCNN():  # noqa: N802 - builds a module, reads like a class
    """3x3 convs 32-64-128-256 (stride 2 from 64 on), global average pool: (B,3,H,W) -> (B,256).

    Four layers, not six or seven: on 2 CPU cores a deeper stack trained half as many images per second
    (measured at 28 px) for the few epochs a CPU can afford.
    """
    import torch.nn as nn

    layers = []
    for cin, cout, stride in ((3, 32, 1), (32, 64, 2), (64, 128, 2), (128, 256, 2)):
        layers += _conv_bn(cin, cout, stride)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
