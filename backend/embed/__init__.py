"""Embeddings: encoders by name, the resumable chunked embedding pass, and self-supervised training."""

from .encoders import ENCODERS, TORCHVISION_ENCODERS, get_encoder
from .knn import knn_accuracy
from .runner import compute_embeddings, resolve_device
from .ssl_train import METHODS as SSL_METHODS
from .ssl_train import TrainedEncoder, train_encoder

__all__ = [
    "ENCODERS",
    "TORCHVISION_ENCODERS",
    "get_encoder",
    "compute_embeddings",
    "resolve_device",
    "train_encoder",
    "TrainedEncoder",
    "SSL_METHODS",
    "knn_accuracy",
]
