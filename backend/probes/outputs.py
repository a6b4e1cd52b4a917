"""Per-example quantities read from a probe's logits (torch tensors or numpy arrays, classes on the last axis).

``y`` holds class indices.  All three work on any leading shape: ``[N, C]``
for one probe, ``[P, N, C]`` for P probes with ``y`` of shape ``[N]`` or
``[P, N]``.
"""

from __future__ import annotations

import numpy as np


def _lib(z):
    if isinstance(z, np.ndarray):
        return None
    import torch

    return torch


def softmax(logits):
    """Soft-max over the last axis (numerically stable)."""
    torch = _lib(logits)
    if torch is None:
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return torch.softmax(logits, -1)


def correct_class_margin(logits, y):
    """Assigned-class logit minus the largest other logit (Pleiss et al. 2020's margin).

    Range (-inf, inf); positive = classified correctly, negative = the example
    is classified as another class (hard or mislabelled).
    """
    torch = _lib(logits)
    if torch is None:
        y = np.broadcast_to(np.asarray(y), logits.shape[:-1])
        zy = np.take_along_axis(logits, y[..., None], -1)[..., 0]
        other = logits.copy()
        np.put_along_axis(other, y[..., None], -np.inf, -1)
        return zy - other.max(-1)
    y = y.expand(logits.shape[:-1]) if y.dim() < logits.dim() - 1 else y
    zy = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    other = logits.scatter(-1, y.unsqueeze(-1), float("-inf"))
    return zy - other.amax(-1)


def el2n_from_logits(logits, y):
    """EL2N (Paul et al. 2021): ||softmax(logits) - onehot(y)||_2, in [0, sqrt(2)]; higher = harder."""
    torch = _lib(logits)
    p = softmax(logits)
    if torch is None:
        y = np.broadcast_to(np.asarray(y), logits.shape[:-1])
        py = np.take_along_axis(p, y[..., None], -1)[..., 0]
        # ||p - e_y||^2 = sum p^2 - 2 p_y + 1
        return np.sqrt(np.maximum((p * p).sum(-1) - 2 * py + 1, 0))
    y = y.expand(logits.shape[:-1]) if y.dim() < logits.dim() - 1 else y
    py = p.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return ((p * p).sum(-1) - 2 * py + 1).clamp_min(0).sqrt()
