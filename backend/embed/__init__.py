"""Embeddings: encoders by name and the resumable, chunked embedding pass."""

from .encoders import ENCODERS, TORCHVISION_ENCODERS, get_encoder
from .runner import compute_embeddings, resolve_device

__all__ = ["ENCODERS", "TORCHVISION_ENCODERS", "get_encoder", "compute_embeddings", "resolve_device"]
