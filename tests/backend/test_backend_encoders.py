"""Encoders: pixels, torchvision backbones with random / file weights, missing ImageNet weights offline."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torchvision

from backend import CurateError, run_pipeline
from backend.cli import main
from backend.embed import get_encoder
from backend.embed.encoders import PixelsEncoder
from backend.sources import resolve_source


def test_pixels_encoder_embeds_identical_images_identically(image_folder_copy, tmp_path, fast_kwargs):
    first = sorted(image_folder_copy.rglob("*.png"))[0]
    twin = first.with_name("twin_" + first.name)
    shutil.copy(first, twin)
    run = run_pipeline(str(image_folder_copy), tmp_path / "work", **fast_kwargs)
    emb = np.asarray(run.embeddings)
    assert emb.dtype == np.float32 and emb.shape == (run.n_examples, 128)
    assert np.isfinite(emb).all()
    t = run.table.set_index("example_id")
    a, b = (f"{first.parent.name}/{n}" for n in (first.name, twin.name))
    # equal up to float32 rounding (BLAS blocks rows differently)
    np.testing.assert_allclose(emb[t.loc[a, "row"]], emb[t.loc[b, "row"]], rtol=0, atol=1e-4)
    assert t.loc[a, "ssl_prototype"] == pytest.approx(t.loc[b, "ssl_prototype"], abs=1e-5)
    # PCA is centred on the pool: the mean embedding is ~0, and the components are ordered by variance
    assert np.abs(emb.mean(axis=0)).max() < 1e-3 * np.abs(emb).max()
    var = emb.var(axis=0)
    assert var[0] >= var[10] >= var[100]
    info = run.config["embedding"]
    assert info["identity"]["encoder"] == "pixels" and 0 < info["pca_explained_variance"] <= 1.0


def test_pixels_identity_is_part_of_the_cache_key():
    a, b = PixelsEncoder(size=32), PixelsEncoder(size=16)
    assert a.identity != b.identity and a.raw_dim == 3 * 32 * 32


def test_resnet18_random_weights_on_a_tiny_set(small_image_folder, tmp_path, fast_kwargs):
    run = run_pipeline(
        str(small_image_folder), tmp_path / "work", encoder="resnet18", weights="random", image_size=32, **fast_kwargs
    )
    emb = np.asarray(run.embeddings)
    assert emb.shape == (24, 512) and np.isfinite(emb).all()
    assert np.abs(emb).sum(axis=1).min() > 0  # no zero rows: every image was embedded
    assert run.config["embedding"]["identity"]["weights"] == "random-init-seed0"
    assert run.k == 4 and run.summary()["embedding_dim"] == 512


def _state_dict_file(tmp_path, prefix=""):
    torch.manual_seed(123)
    model = torchvision.models.resnet18(weights=None)
    sd = {prefix + k: v for k, v in model.state_dict().items()}
    path = tmp_path / f"r18{prefix.strip('.')}.pth"
    torch.save(sd, path)
    model.fc = torch.nn.Identity()
    return path, model.eval()


def test_weights_file_is_loaded_exactly(tmp_path, small_image_folder):
    path, reference = _state_dict_file(tmp_path)
    enc = get_encoder("resnet18", weights=str(path), image_size=32)
    assert enc.identity["weights"].startswith("file-sha256:")
    src = resolve_source(str(small_image_folder))
    batch = torch.stack([enc.preprocess(src.load_image(i)) for i in range(4)])
    with torch.no_grad():
        expected = reference(batch).numpy()
    np.testing.assert_allclose(enc.forward(batch).numpy(), expected, rtol=1e-5, atol=1e-5)

    # the same weights wrapped by DataParallel ("module." prefix) give the same model
    wrapped, _ = _state_dict_file(tmp_path, prefix="module.")
    enc2 = get_encoder("resnet18", weights=str(wrapped), image_size=32)
    np.testing.assert_allclose(enc2.forward(batch).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert enc2.identity["weights"] != enc.identity["weights"]  # identity = the file's content hash


def test_weights_file_via_cli_and_bad_weights(tmp_path, small_image_folder, capsys):
    path, _ = _state_dict_file(tmp_path)
    rc = main(
        [
            "run",
            "--source",
            str(small_image_folder),
            "--workdir",
            str(tmp_path / "w"),
            "--encoder",
            "resnet18",
            "--weights",
            str(path),
            "--image-size",
            "32",
            "--map",
            "pca",
            "--workers",
            "0",
        ]
    )
    assert rc == 0
    assert "run directory:" in capsys.readouterr().out
    # a fine-tuned model with another head size: the head is dropped anyway
    other_head = torchvision.models.resnet18(weights=None, num_classes=7)
    torch.save({"state_dict": other_head.state_dict()}, tmp_path / "r18_7.pth")
    assert get_encoder("resnet18", weights=str(tmp_path / "r18_7.pth"), image_size=32).raw_dim == 512
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "junk.pth")
    with pytest.raises(CurateError, match="do not fit resnet18"):
        get_encoder("resnet18", weights=str(tmp_path / "junk.pth"))
    (tmp_path / "notweights.pth").write_text("hello")
    with pytest.raises(CurateError, match="cannot read weights"):
        get_encoder("resnet18", weights=str(tmp_path / "notweights.pth"))
    with pytest.raises(CurateError, match="does not exist"):
        get_encoder("resnet18", weights=str(tmp_path / "absent.pth"))
    with pytest.raises(CurateError, match="unknown encoder"):
        get_encoder("resnet9000")


def test_missing_imagenet_weights_offline_is_a_one_line_error(tmp_path, monkeypatch, small_image_folder, capsys):
    import backend.sources.arrays as arrays

    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr(arrays, "_online", lambda *a, **k: False)
    with pytest.raises(CurateError, match="--weights") as exc:
        get_encoder("resnet18")
    msg = str(exc.value)
    assert "\n" not in msg and "no ImageNet weights" in msg and "resnet18-" in msg
    work = tmp_path / "work"
    rc = main(["run", "--source", str(small_image_folder), "--workdir", str(work), "--encoder", "resnet18"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "--weights" in lines[0] and "Traceback" not in err
    assert not work.exists()  # nothing written
    assert not any(hub.rglob("*.pth"))  # nothing downloaded


def test_other_backbones_by_name():
    r50 = get_encoder("resnet50", weights="random", image_size=64)
    assert r50.raw_dim == 2048 and r50.identity["image_size"] == 64
    with pytest.raises(CurateError, match="vit_b_16 needs --image-size 224"):
        get_encoder("vit_b_16", weights="random", image_size=32)
    from backend.embed import ENCODERS

    assert {"pixels", "resnet18", "resnet50", "vit_b_16"} <= set(ENCODERS)
