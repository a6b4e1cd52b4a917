"""The small CNN trained on pixels: it learns, reports per-epoch logits, checkpoints and resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest

from backend.probes.cnn import CNNConfig, build_cnn, train_cnn


@pytest.fixture(scope="module")
def small_images(fashion_arrays):
    x, y, _ = fashion_arrays
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    tr, te = order[:150], order[150:]
    return x[tr], y[tr], x[te], y[te]


def test_cnn_learns_and_reports_logits_every_epoch(small_images):
    x, y, xe, ye = small_images
    seen = []
    res = train_cnn(
        x,
        y,
        n_classes=10,
        config=CNNConfig(epochs=6, batch_size=16, widths=(8, 16, 32)),
        eval_images=xe,
        eval_labels=ye,
        device="cpu",
        on_epoch=lambda e, logits: seen.append((e, logits.shape)),
    )
    assert seen == [(e, (150, 10)) for e in range(1, 7)]
    assert res.steps == 6 * 10 and res.epochs == 6
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert res.eval_error is not None and res.eval_error < 0.8  # 10 classes: chance is 0.9
    # fixed iterations: the same number of steps whatever the training-set size
    r2 = train_cnn(
        x[:40], y[:40], n_classes=10, config=CNNConfig(iterations=7, batch_size=32, widths=(8, 16, 32)), device="cpu"
    )
    assert r2.steps == 7 and r2.eval_error is None


def test_cnn_resumes_from_its_last_epoch(small_images, tmp_path):
    x, y, xe, ye = small_images
    cfg = CNNConfig(epochs=3, batch_size=50, widths=(8, 16, 32), seed=5)
    full = train_cnn(x, y, n_classes=10, config=cfg, eval_images=xe, eval_labels=ye, device="cpu")

    def stop(epoch, logits):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cnn(x, y, n_classes=10, config=cfg, device="cpu", checkpoint_dir=tmp_path, on_epoch=stop)
    replayed = []
    res = train_cnn(
        x,
        y,
        n_classes=10,
        config=cfg,
        eval_images=xe,
        eval_labels=ye,
        device="cpu",
        checkpoint_dir=tmp_path,
        on_epoch=lambda e, logits: replayed.append(e),
    )
    assert res.resumed_from_epoch == 1 and replayed == [1, 2, 3]
    np.testing.assert_allclose([h["loss"] for h in res.history], [h["loss"] for h in full.history], rtol=1e-4)
    assert (res.eval_predictions == full.eval_predictions).mean() > 0.95
    # another config does not reuse the checkpoint
    other = train_cnn(
        x,
        y,
        n_classes=10,
        config=CNNConfig(epochs=1, batch_size=50, widths=(8, 16, 32)),
        device="cpu",
        checkpoint_dir=tmp_path,
    )
    assert other.resumed_from_epoch == 0


def test_cnn_any_small_size_and_channels():
    import torch

    for c, side in ((1, 28), (3, 32), (3, 9)):
        net = build_cnn(c, 4)
        assert net(torch.zeros(2, c, side, side)).shape == (2, 4)
