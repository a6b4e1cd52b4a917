"""``ssl``: an encoder trained on your own images by ``curate train-encoder`` (SimCLR / BYOL / DINO).

``--weights`` is the ``encoder.pt`` that training wrote, its folder, or a
workdir (its latest trained encoder).  The file carries the backbone spec,
the image size and the normalisation, so the embedding uses exactly the
preprocessing the encoder was trained with (resize, centre crop, normalise).
The identity holds the file's content hash, method, backbone and epochs:
retrained weights never reuse old embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import CurateError
from .base import ModuleEncoder, is_random, register_encoder, weights_identity

TRAIN_HINT = "train one with `curate train-encoder --source S --workdir W` (it prints the file to pass)"


def resolve_ssl_weights(weights: str | None) -> Path:
    """The encoder.pt that ``--weights`` names (a file, its folder, or a workdir's latest), or a one-line error."""
    if not weights or is_random(weights):
        raise CurateError(f"the ssl encoder needs --weights FILE (an encoder.pt from train-encoder): {TRAIN_HINT}")
    p = Path(weights).expanduser()
    if p.is_dir():
        for cand in (p / "encoder.pt", p / "encoders" / "latest.json", p / "latest.json"):
            if cand.is_file():
                p = Path(json.loads(cand.read_text())["encoder"]) if cand.suffix == ".json" else cand
                break
        else:
            raise CurateError(f"no trained encoder in {p} (no encoder.pt, no encoders/latest.json): {TRAIN_HINT}")
    if not p.is_file():
        raise CurateError(f"weights {p} do not exist: pass the encoder.pt written by train-encoder, or {TRAIN_HINT}")
    return p


def load_ssl_file(path: Path) -> dict:
    import torch

    from ..ssl_train import FORMAT

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CurateError(
            f"cannot read {path} ({type(exc).__name__}): pass the encoder.pt written by train-encoder"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CurateError(
            f"{path.name} is not an encoder written by train-encoder: for other checkpoints use "
            "--encoder resnet50 / timm:NAME / open_clip:NAME with --weights FILE"
        )
    return blob


class SSLEncoder(ModuleEncoder):
    name = "ssl"
    cpu_batch_size = 256  # small backbones at small sizes: big batches are fastest on a CPU too

    def __init__(self, weights: str | None, image_size: int | None = None):
        from ..backbones import build_backbone
        from ..ssl_train import eval_transform

        path = resolve_ssl_weights(weights)
        blob = load_ssl_file(path)
        spec = dict(blob["backbone"])
        model, _ = build_backbone(spec)
        try:
            model.load_state_dict(blob["state_dict"])
        except RuntimeError as exc:
            raise CurateError(
                f"{path.name} does not fit its own backbone {spec['name']} "
                f"({str(exc).splitlines()[0][:160]}): retrain with train-encoder"
            ) from None
        self.model = model
        self.size = int(image_size or blob["image_size"])
        self.transform = eval_transform(self.size, blob["mean"], blob["std"])
        self.channels_last = not spec["name"].startswith("timm:vit")
        self.identity = {
            "encoder": "ssl",
            "family": "ssl",
            "method": blob["method"],
            "backbone": spec["name"],
            "epochs": int(blob["epochs"]),
            "weights": weights_identity(path),
            "image_size": self.size,
            "preprocess": f"resize{self.size},centercrop{self.size},normalise{blob['mean']}/{blob['std']}",
        }
        self.trained = {"knn_accuracy": blob.get("knn_accuracy"), "source": blob.get("source"), "path": str(path)}
        self._finish()


@register_encoder(
    "ssl",
    family="ssl",
    priority=10,
    needs_weights=True,
    description="self-supervised encoder trained on your own images by `curate train-encoder`; "
    "--weights encoder.pt (or its workdir)",
)
def make_ssl(name, *, weights=None, image_size=None, pca_dim=128):
    return SSLEncoder(weights, image_size=image_size)
