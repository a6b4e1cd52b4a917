"""Encoders behind one interface, chosen by name.

An encoder turns an RGB PIL image into a vector.  ``preprocess`` runs in the
DataLoader workers; ``forward`` runs on the device in batches.  ``identity``
(name, weights, preprocessing) is part of the embedding cache key.

* ``pixels``: resize, flatten, PCA to ``pca_dim`` fitted on the pool.  Needs no
  weights, so the demo and the tests run offline.
* torchvision backbones (``resnet18``, ``resnet50``, ``vit_b_16``, ...): the
  classifier head is removed and the pooled features are the embedding.
  Weights come from ``--weights FILE`` (any state dict for that architecture,
  e.g. self-supervised SwAV/DINO ResNet-50 weights, the paper's choice), from
  torch's cache (``~/.cache/torch/hub/checkpoints``) for ImageNet weights, or
  ``--weights random`` (untrained, for tests).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import CurateError

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
ENCODERS = ("pixels",) + tuple(TORCHVISION_ENCODERS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PixelsEncoder:
    """Resize to ``size`` x ``size`` RGB, flatten (uint8), then PCA to ``pca_dim``."""

    name = "pixels"
    raw_dtype = np.uint8

    def __init__(self, size: int = 32, pca_dim: int = 128):
        self.size = int(size)
        self.pca_dim = int(pca_dim)
        self.raw_dim = 3 * self.size * self.size
        self.identity = {"encoder": "pixels", "size": self.size, "pca_dim": self.pca_dim,
                         "preprocess": "bilinear-resize,rgb,uint8"}

    def preprocess(self, img):
        import torch
        from PIL import Image

        img = img.resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).reshape(-1).copy())

    def empty(self):
        import torch

        return torch.zeros(self.raw_dim, dtype=torch.uint8)

    def forward(self, batch):
        return batch  # raw pixels; PCA happens after the pass (see fit_transform)

    def to(self, device):
        return self

    # PCA is fitted on a sample of the pool, then applied in chunks.
    def fit_transform(self, raw: np.ndarray, fit_rows: np.ndarray, out: np.ndarray, *,
                      seed: int = 0, progress=None) -> dict:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(fit_rows, size=min(len(fit_rows), 20000), replace=False))
        x = raw[sample].astype(np.float32) / 255.0
        mean = x.mean(axis=0)
        dim = min(self.pca_dim, x.shape[0], x.shape[1])
        # randomized SVD of the centred sample: a full SVD of 20k x 3072 takes minutes on 2 cores
        from sklearn.utils.extmath import randomized_svd

        xc = x - mean
        _, s, vt = randomized_svd(xc, n_components=dim, n_iter=4, random_state=seed)
        comps = vt.astype(np.float32)
        explained = float((s ** 2).sum() / max(float(np.einsum("ij,ij->", xc, xc)), 1e-12))
        step = 65536
        for start in range(0, len(raw), step):
            chunk = raw[start:start + step].astype(np.float32) / 255.0
            out[start:start + step, :dim] = (chunk - mean) @ comps.T
            if progress:
                progress(min(start + step, len(raw)), len(raw))
        return {"pca_mean": mean, "pca_components": comps, "explained_variance": explained, "dim": dim}


class TorchvisionEncoder:
    raw_dtype = np.float32

    def __init__(self, name: str, weights: str | None = "imagenet", image_size: int | None = None):
        import torch
        import torchvision

        self.name = name
        enum_name, default_size = TORCHVISION_ENCODERS[name]
        self.size = int(image_size or default_size)
        if name.startswith("vit") and self.size != 224:
            raise CurateError(f"{name} needs --image-size 224 (got {self.size})")
        with torch.random.fork_rng(devices=[]):
            # a fixed seed: "random" weights are the same every time, as their cache identity claims
            torch.manual_seed(0)
            model = torchvision.models.get_model(name, weights=None)
        weights_id = self._load_weights(model, enum_name, weights)
        _strip_head(model)
        model.eval()
        self.model = model
        with torch.no_grad():
            self.raw_dim = int(model(torch.zeros(1, 3, self.size, self.size)).shape[1])
        self.pca_dim = None
        self.device = "cpu"
        self.identity = {"encoder": name, "weights": weights_id, "image_size": self.size,
                         "preprocess": f"resize{int(round(self.size * 256 / 224))},centercrop{self.size},"
                                       "imagenet-normalise"}
        from torchvision import transforms as T

        self._tf = T.Compose([T.Resize(int(round(self.size * 256 / 224))), T.CenterCrop(self.size),
                              T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def _load_weights(self, model, enum_name, weights) -> str:
        import torch
        import torchvision

        if weights in (None, "random", "none"):
            return "random-init-seed0"
        if weights == "imagenet":
            enum = getattr(torchvision.models, enum_name).DEFAULT
            fname = os.path.basename(enum.url)
            cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
            if not cached.exists():
                from ..sources.arrays import _online

                if not _online("download.pytorch.org"):
                    raise CurateError(
                        f"no ImageNet weights for {self.name} and no network: pass --weights FILE "
                        f"(a {self.name} state dict), copy {fname} into {cached.parent}, "
                        "or use --encoder pixels")
                try:
                    torch.hub.download_url_to_file(enum.url, str(cached), progress=True)
                except Exception as exc:  # noqa: BLE001
                    raise CurateError(f"downloading {fname} failed ({exc}): pass --weights FILE") from None
            path = cached
            ident = f"torchvision:{fname}"
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise CurateError(f"weights file {path} does not exist: pass a state dict saved with "
                                  f"torch.save(model.state_dict(), FILE), or --weights imagenet")
            ident = f"file-sha256:{_sha256(path)[:16]}"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise CurateError(f"cannot read weights {path} ({type(exc).__name__}): "
                              "pass a state dict saved with torch.save") from None
        for key in ("state_dict", "model", "teacher", "student"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        if not isinstance(state, dict):
            raise CurateError(f"weights {path.name} hold a {type(state).__name__}, not a state dict: "
                              "save them with torch.save(model.state_dict(), FILE)")
        state = {_strip_prefix(str(k)): v for k, v in state.items()}
        head = ("fc.", "heads.", "classifier.")
        own = model.state_dict()
        wrong = [k for k, v in state.items()
                 if k in own and tuple(getattr(v, "shape", ())) != tuple(own[k].shape)]
        bad = [k for k in wrong if not k.startswith(head)]
        if bad:
            raise CurateError(f"weights {path.name} do not fit {self.name}: {bad[0]} has shape "
                              f"{tuple(getattr(state[bad[0]], 'shape', ()))}, the model needs "
                              f"{tuple(own[bad[0]].shape)}; pass weights for this architecture")
        # a classifier head of another size does not matter: the head is removed
        state = {k: v for k, v in state.items() if k not in wrong}
        result = model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(head)]
        if missing:
            raise CurateError(f"weights {path.name} do not fit {self.name}: {len(missing)} tensors "
                              f"missing (e.g. {missing[0]}); pass weights for this architecture")
        return ident

    def preprocess(self, img):
        return self._tf(img)

    def empty(self):
        import torch

        return torch.zeros(3, self.size, self.size)

    def to(self, device):
        import torch

        self.device = str(device)
        self.model = self.model.to(device)
        if self.device.startswith("cuda"):
            self.model = self.model.to(memory_format=torch.channels_last)
        return self

    def forward(self, batch):
        import torch

        with torch.inference_mode():
            if self.device.startswith("cuda"):
                batch = batch.to(self.device, non_blocking=True).to(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.float16):
                    out = self.model(batch)
                return out.float()
            return self.model(batch)


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "backbone.", "encoder.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def _strip_head(model) -> None:
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def get_encoder(name: str, *, weights: str | None = None, image_size: int | None = None,
                pca_dim: int = 128):
    """Encoder by name (see ``ENCODERS``)."""
    if name == "pixels":
        return PixelsEncoder(size=image_size or 32, pca_dim=pca_dim)
    if name in TORCHVISION_ENCODERS:
        return TorchvisionEncoder(name, weights=weights or "imagenet", image_size=image_size)
    raise CurateError(f"unknown encoder {name!r}: use one of {', '.join(ENCODERS)}")
