"""The encoder registry: names for argparse and the app, prefix families, unknown names; kNN accuracy."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from backend import CurateError
from backend.embed import ENCODERS, TORCHVISION_ENCODERS, get_encoder, knn_accuracy


def test_encoders_behave_like_the_old_tuple_of_names():
    names = list(ENCODERS)
    assert names[0] == "pixels" and ENCODERS[0] == "pixels" and len(ENCODERS) == len(names)
    assert set(TORCHVISION_ENCODERS) <= set(names)
    assert {"ssl", "dinov2_vits14", "timm_resnet50", "clip_vit_b32", "siglip_vit_b16"} <= set(names)
    assert "timm:convnext_tiny" in ENCODERS and "open_clip:ViT-L-14@openai" in ENCODERS
    assert "timm:" not in ENCODERS and "nonsense" not in ENCODERS and 3 not in ENCODERS
    assert all(":" not in n for n in names)  # prefixes are not menu entries


def test_argparse_choices_accept_prefixed_names():
    p = argparse.ArgumentParser()
    p.add_argument("--encoder", choices=ENCODERS)
    assert p.parse_args(["--encoder", "timm:resnet18"]).encoder == "timm:resnet18"
    assert p.parse_args(["--encoder", "resnet18"]).encoder == "resnet18"
    with pytest.raises(SystemExit):
        p.parse_args(["--encoder", "resnet9000"])


def test_unknown_encoder_lists_the_choices():
    with pytest.raises(CurateError, match="unknown encoder 'resnet9000'.*pixels.*timm:MODEL"):
        get_encoder("resnet9000")


def test_every_registered_encoder_says_what_it_is():
    for entry in ENCODERS.entries():
        assert entry.description and entry.family in {"pixels", "torchvision", "timm", "open_clip", "ssl"}


def test_knn_accuracy_separable_and_shuffled():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 5
    labels = np.repeat(np.arange(4), 50)
    x = centres[labels] + rng.normal(size=(200, 16))
    q = centres[labels] + rng.normal(size=(200, 16))
    assert knn_accuracy(x, labels, q, labels) == 1.0
    shuffled = rng.permutation(labels)
    assert knn_accuracy(x, shuffled, q, labels) < 0.5  # chance is 0.25
    # a query class absent from the bank is never right
    assert knn_accuracy(x[labels < 3], labels[labels < 3], q[labels == 3], labels[labels == 3]) == 0.0
