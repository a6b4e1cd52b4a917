"""Encoders behind one interface, found by name (one module per family, one registration each).

``pixels`` (no weights), torchvision backbones (``resnet18``, ``resnet50``, ...),
``ssl`` (trained on your own images by ``curate train-encoder``), timm models
(``dinov2_vits14``, ``timm_resnet50``, ``timm:NAME``) and open_clip image towers
(``clip_vit_b32``, ``siglip_vit_b16``, ``open_clip:MODEL[@TAG]``).  Nothing is
ever downloaded: weights come from ``--weights FILE|FOLDER``, the local torch /
Hugging Face caches, or ``--weights random``.  See :mod:`.base` for the
interface the embedding runner calls.
"""

from .base import ENCODERS, ModuleEncoder, get_encoder, register_encoder
from .pixels import PixelsEncoder
from .torchvision import TORCHVISION_ENCODERS, TorchvisionEncoder

__all__ = [
    "ENCODERS",
    "TORCHVISION_ENCODERS",
    "ModuleEncoder",
    "PixelsEncoder",
    "TorchvisionEncoder",
    "get_encoder",
    "register_encoder",
]
