"""The three self-supervised methods as small modules around a backbone; losses, heads and schedules from lightly.

Each model takes the list of augmented views of a batch and returns the loss
(``loss(views, epoch=, progress=)``), moves its momentum copy first when it has one
(``progress`` in [0, 1] drives lightly's cosine momentum schedule), and
exports the backbone whose features become the embedding (``export()``):
the online backbone for SimCLR and BYOL, the teacher for DINO (as in the DINO
paper).  This module imports torch and lightly at the top: import it only
inside the function that trains.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
from lightly.loss import DINOLoss, NegativeCosineSimilarity, NTXentLoss
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead, DINOProjectionHead, SimCLRProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule


def _features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return backbone(x).flatten(start_dim=1)


class SimCLR(nn.Module):
    """SimCLR: a projection head and the NT-Xent contrastive loss between two views."""

    def __init__(self, backbone: nn.Module, dim: int, *, epochs: int):
        super().__init__()
        self.backbone = backbone
        self.head = SimCLRProjectionHead(dim, dim, 128)
        self.criterion = NTXentLoss(temperature=0.5)

    def loss(self, views, *, epoch: int, progress: float) -> torch.Tensor:
        x = torch.cat(views[:2])  # one forward for both views: bigger batches are faster on a CPU
        z = self.head(_features(self.backbone, x)).float()
        z0, z1 = z.chunk(2)
        return self.criterion(z0, z1)

    def after_backward(self, epoch: int) -> None:
        pass

    def export(self) -> nn.Module:
        return self.backbone


class BYOL(nn.Module):
    """BYOL: online network with predictor, momentum target network, negative cosine similarity."""

    def __init__(self, backbone: nn.Module, dim: int, *, epochs: int):
        super().__init__()
        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(dim, 1024, 256)
        self.prediction_head = BYOLPredictionHead(256, 1024, 256)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()

    def loss(self, views, *, epoch: int, progress: float) -> torch.Tensor:
        m = cosine_schedule(int(progress * 10_000), 10_000, 0.99, 1.0)
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projection_head, self.projection_head_momentum, m=m)
        x = torch.cat(views[:2])
        p = self.prediction_head(self.projection_head(_features(self.backbone, x))).float()
        with torch.no_grad():
            z = self.projection_head_momentum(_features(self.backbone_momentum, x)).float()
        p0, p1 = p.chunk(2)
        z0, z1 = z.chunk(2)
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))

    def after_backward(self, epoch: int) -> None:
        pass

    def export(self) -> nn.Module:
        return self.backbone


class DINO(nn.Module):
    """DINO: student and momentum teacher with DINO heads, self-distillation loss over global and local views."""

    OUT_DIM = 2048

    def __init__(self, backbone: nn.Module, dim: int, *, epochs: int):
        super().__init__()
        self.student_backbone = backbone
        self.student_head = DINOProjectionHead(dim, 512, 64, self.OUT_DIM, freeze_last_layer=1)
        self.teacher_backbone = copy.deepcopy(backbone)
        # the head's weight-normalised last layer cannot be deep-copied: build it again and copy the weights
        self.teacher_head = DINOProjectionHead(dim, 512, 64, self.OUT_DIM)
        self.teacher_head.load_state_dict(self.student_head.state_dict())
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)
        self.criterion = DINOLoss(output_dim=self.OUT_DIM, warmup_teacher_temp_epochs=max(1, min(5, epochs // 3)))

    def loss(self, views, *, epoch: int, progress: float) -> torch.Tensor:
        m = cosine_schedule(int(progress * 10_000), 10_000, 0.996, 1.0)
        update_momentum(self.student_backbone, self.teacher_backbone, m=m)
        update_momentum(self.student_head, self.teacher_head, m=m)
        n = views[0].shape[0]
        global_views = torch.cat(views[:2])
        with torch.no_grad():
            teacher_out = list(self.teacher_head(_features(self.teacher_backbone, global_views)).float().split(n))
        student_out = list(self.student_head(_features(self.student_backbone, global_views)).float().split(n))
        if len(views) > 2:  # local crops share one (smaller) size: one forward for all of them
            local = torch.cat(views[2:])
            student_out += list(self.student_head(_features(self.student_backbone, local)).float().split(n))
        return self.criterion(teacher_out, student_out, epoch=epoch)

    def after_backward(self, epoch: int) -> None:
        self.student_head.cancel_last_layer_gradients(current_epoch=epoch)

    def export(self) -> nn.Module:
        return self.teacher_backbone


MODELS = {"simclr": SimCLR, "byol": BYOL, "dino": DINO}


def transform_for(method: str, *, image_size: int, mean, std):
    """lightly's augmentations for ``method`` at ``image_size``; no blur below 64 px (it erases small images)."""
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform, DINOTransform, SimCLRTransform

    norm = {"mean": list(mean), "std": list(std)}
    small = image_size <= 64
    blur = 0.0 if small else None
    kw: dict[str, Any] = {"gaussian_blur": blur} if small else {}
    if method == "simclr":
        # cj_strength 0.5 and min_scale 0.2: lightly's advice for small images (CIFAR-like)
        return SimCLRTransform(input_size=image_size, cj_strength=0.5, min_scale=0.2, normalize=norm, **kw)
    if method == "byol":
        return BYOLTransform(
            view_1_transform=BYOLView1Transform(input_size=image_size, min_scale=0.2, normalize=norm, **kw),
            view_2_transform=BYOLView2Transform(input_size=image_size, min_scale=0.2, normalize=norm, **kw),
        )
    if method == "dino":
        local = max(8, (image_size * 3) // 7)  # 96/224 of the global crop, as in DINO
        kw = {"gaussian_blur": (0.0, 0.0, 0.0)} if small else {}
        # two local crops instead of six: most of DINO's benefit at a third of the cost on a CPU
        return DINOTransform(global_crop_size=image_size, local_crop_size=local, n_local_views=2, normalize=norm, **kw)
    raise ValueError(method)
