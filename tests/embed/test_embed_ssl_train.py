"""Self-supervised training on real images: the whole pipeline, resume after an interruption, cache keys, errors."""

from __future__ import annotations

import os
import shutil
import signal

import numpy as np
import pytest
import torch

from backend import CurateError, run_pipeline
from backend.cli import main
from backend.embed import get_encoder, train_encoder
from backend.embed.ssl_train import METHODS
from backend.progress import Reporter

pytest.importorskip("lightly", reason="self-supervised training needs lightly: pip install 'curation-studio[ssl]'")

QUICK = {"batch_size": 32, "num_workers": 0, "device": "cpu", "knn_every": 0}


class Recorder(Reporter):
    def __init__(self, stop_when=None):
        self.lines: list[str] = []
        self.stop_when = stop_when

    def info(self, message):
        self.lines.append(message)
        if self.stop_when and self.stop_when(message):
            raise KeyboardInterrupt


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_two_epochs_then_the_whole_pipeline_with_the_trained_encoder(image_folder, tmp_path, fast_kwargs):
    work = tmp_path / "work"
    rep = Recorder()
    res = train_encoder(str(image_folder), work, epochs=2, batch_size=64, num_workers=0, device="cpu", reporter=rep)
    assert res.path.is_file() and not res.cached and res.epochs == 2 and res.n_images == 200
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert all(np.isfinite(h["loss"]) for h in res.history)
    # the folder has labels (one sub-folder per class): kNN accuracy is measured, a share in [0, 1]
    assert res.knn_accuracy is not None and 0.0 <= res.knn_accuracy <= 1.0
    assert any("ETA" in line and "loss" in line for line in rep.lines)
    assert not (res.path.parent / "checkpoint.pt").exists()  # removed once the weights are written

    again = train_encoder(str(image_folder), work, epochs=2, batch_size=64, num_workers=0, device="cpu")
    assert again.cached and again.path == res.path

    run = run_pipeline(str(image_folder), work, encoder="ssl", weights=str(res.path), **fast_kwargs)
    ident = run.config["embedding"]["identity"]
    assert ident["encoder"] == "ssl" and ident["method"] == "simclr" and ident["backbone"] == "small-cnn"
    assert ident["epochs"] == 2 and ident["weights"].startswith("file-sha256:")
    emb = np.asarray(run.embeddings)
    assert emb.shape == (200, 256) and np.isfinite(emb).all() and np.abs(emb).sum(axis=1).min() > 0
    assert run.table["ssl_prototype"].between(0, 2).all()
    # a workdir works as --weights too (its latest trained encoder)
    assert get_encoder("ssl", weights=str(work)).identity == get_encoder("ssl", weights=str(res.path)).identity


def test_interrupted_training_resumes_and_matches_an_uninterrupted_one(image_folder, tmp_path):
    kwargs = dict(epochs=2, limit=64, **QUICK)
    straight = train_encoder(str(image_folder), tmp_path / "a", **kwargs)

    with pytest.raises(KeyboardInterrupt):
        train_encoder(
            str(image_folder), tmp_path / "b", reporter=Recorder(lambda m: m.startswith("epoch 1/2")), **kwargs
        )
    ckpt = next((tmp_path / "b" / "encoders").glob("*/checkpoint.pt"))
    assert not (ckpt.parent / "encoder.pt").exists()
    rep = Recorder()
    resumed = train_encoder(str(image_folder), tmp_path / "b", reporter=rep, **kwargs)
    assert resumed.resumed_from_epoch == 1
    assert any(line.startswith("resuming the training from epoch 1") for line in rep.lines)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[0]["loss"] == pytest.approx(straight.history[0]["loss"])
    # seeded order and augmentations per epoch, full optimiser/schedule state: the same weights
    a, b = _state(straight.path), _state(resumed.path)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_ctrl_c_inside_an_epoch_checkpoints_the_step_and_resumes_there(image_folder, tmp_path):
    class CtrlC(Reporter):
        def update(self, done, total):
            if done == 1:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: handled after the step finishes

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train_encoder(str(image_folder), tmp_path, epochs=1, limit=96, reporter=CtrlC(), **QUICK)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    ckpt = next((tmp_path / "encoders").glob("*/checkpoint.pt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) == (0, 1)
    rep = Recorder()
    res = train_encoder(str(image_folder), tmp_path, epochs=1, limit=96, reporter=rep, **QUICK)
    assert any("from epoch 0, step 1" in line for line in rep.lines) and res.path.is_file()


@pytest.mark.parametrize("method", [m for m in METHODS if m != "simclr"])
def test_byol_and_dino_train_and_embed(image_folder, tmp_path, method):
    res = train_encoder(str(image_folder), tmp_path, method=method, epochs=1, limit=64, **QUICK)
    assert np.isfinite(res.history[0]["loss"])
    enc = get_encoder("ssl", weights=str(res.path))
    assert enc.identity["method"] == method and enc.raw_dim == 256
    from PIL import Image

    img = Image.open(next(image_folder.rglob("*.png"))).convert("RGB")
    out = enc.to("cpu").forward(torch.stack([enc.preprocess(img)] * 2))
    assert out.shape == (2, 256) and torch.isfinite(out).all()


def test_new_weights_in_the_same_file_change_the_embedding_cache_key(image_folder, tmp_path, fast_kwargs):
    res = train_encoder(str(image_folder), tmp_path / "w", epochs=1, limit=64, **QUICK)
    mine = tmp_path / "mine.pt"
    shutil.copy(res.path, mine)
    small = {**fast_kwargs, "limit": 40}
    first = run_pipeline(str(image_folder), tmp_path / "w", encoder="ssl", weights=str(mine), **small)
    blob = torch.load(mine, map_location="cpu", weights_only=True)
    first_key = next(k for k in blob["state_dict"] if k.endswith("weight"))
    blob["state_dict"][first_key] = blob["state_dict"][first_key] * 1.5
    torch.save(blob, mine)  # retrained in place: same name, other content
    second = run_pipeline(str(image_folder), tmp_path / "w", encoder="ssl", weights=str(mine), **small)
    assert first.config["stages"]["embeddings"] != second.config["stages"]["embeddings"]
    assert first.config["embedding"]["identity"]["weights"] != second.config["embedding"]["identity"]["weights"]
    assert not np.allclose(np.asarray(first.embeddings), np.asarray(second.embeddings))
    # the same content again is a cache hit
    third = run_pipeline(str(image_folder), tmp_path / "w", encoder="ssl", weights=str(mine), **small)
    assert third.config["stages"]["embeddings"] == second.config["stages"]["embeddings"]


def test_train_encoder_cli_then_curate_run(image_folder, tmp_path, capsys):
    work = tmp_path / "work"
    assert (
        main(
            [
                "train-encoder",
                "--source",
                str(image_folder),
                "--workdir",
                str(work),
                "--epochs",
                "1",
                "--limit",
                "64",
                "--batch-size",
                "32",
                "--workers",
                "0",
                "--device",
                "cpu",
                "--knn-every",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    weights = next(line.split()[1] for line in out.splitlines() if line.startswith("encoder:"))
    assert "next: curate run" in out and "--encoder ssl" in out
    assert (
        main(
            [
                "run",
                "--source",
                str(image_folder),
                "--workdir",
                str(work),
                "--encoder",
                "ssl",
                "--weights",
                weights,
                "--map",
                "pca",
                "--workers",
                "0",
                "--limit",
                "40",
            ]
        )
        == 0
    )
    assert "embedding_dim  256" in capsys.readouterr().out


def test_ssl_errors_are_one_line_with_the_fix(image_folder, tmp_path, capsys):
    with pytest.raises(CurateError, match="train-encoder"):
        get_encoder("ssl")
    with pytest.raises(CurateError, match="do not exist"):
        get_encoder("ssl", weights=str(tmp_path / "nope.pt"))
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(CurateError, match="not an encoder written by train-encoder"):
        get_encoder("ssl", weights=str(other))
    with pytest.raises(CurateError, match="no trained encoder"):
        get_encoder("ssl", weights=str(tmp_path))
    with pytest.raises(CurateError, match="unknown method"):
        train_encoder(str(image_folder), tmp_path, method="mocov9", **QUICK)
    with pytest.raises(CurateError, match="unknown backbone"):
        train_encoder(str(image_folder), tmp_path, backbone="resnet9000", **QUICK)
    emb = tmp_path / "emb.npy"
    np.save(emb, np.zeros((10, 4), np.float32))
    with pytest.raises(CurateError, match="needs images"):
        train_encoder(str(emb), tmp_path, **QUICK)
    assert main(["run", "--source", str(image_folder), "--workdir", str(tmp_path / "w"), "--encoder", "ssl"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "train-encoder" in last
