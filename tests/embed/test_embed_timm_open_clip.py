"""timm and open_clip encoders offline: random weights through `curate run`, weights from a file, a folder and the
Hugging Face cache (exactly the same outputs), missing weights as one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from backend import CurateError
from backend.cli import main
from backend.embed import get_encoder

timm = pytest.importorskip("timm", reason="timm encoders need timm: pip install 'curation-studio[timm]'")
open_clip = pytest.importorskip(
    "open_clip", reason="open_clip encoders need open_clip_torch: pip install 'curation-studio[open_clip]'"
)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Empty Hugging Face and torch hub caches, whatever this machine has downloaded before."""
    import huggingface_hub.constants

    hf = tmp_path / "hf-cache"
    hf.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf))
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch-hub"))
    yield hf
    torch.hub.set_dir(old)


def _image(seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 30, 3), dtype=np.uint8))


def _run(folder, work, encoder, size, capsys, *extra):
    code = main(
        [
            "run",
            "--source",
            str(folder),
            "--workdir",
            str(work),
            "--encoder",
            encoder,
            "--weights",
            "random",
            "--image-size",
            str(size),
            "--map",
            "pca",
            "--workers",
            "0",
            "--batch-size",
            "8",
            *extra,
        ]
    )
    return code, capsys.readouterr()


@pytest.mark.parametrize("encoder,size,dim", [("dinov2_vits14", 28, 384), ("timm:resnet18", 32, 512)])
def test_timm_random_weights_through_curate_run(small_image_folder, tmp_path, capsys, encoder, size, dim):
    code, out = _run(small_image_folder, tmp_path / "w", encoder, size, capsys)
    assert code == 0, out.err
    assert f"embedding_dim  {dim}" in out.out and f"encoder        {encoder}" in out.out


# the models' own preprocessing: OpenAI's CLIP mean for CLIP, 0.5 for SigLIP (not ImageNet's for either)
@pytest.mark.slow
@pytest.mark.parametrize(
    "encoder,size,dim,mean", [("clip_vit_b32", 32, 512, "0.4814"), ("siglip_vit_b16", 32, 768, "mean=(0.5, 0.5, 0.5)")]
)
def test_open_clip_random_weights_through_curate_run(small_image_folder, tmp_path, capsys, encoder, size, dim, mean):
    from backend import load_run

    code, out = _run(small_image_folder, tmp_path / "w", encoder, size, capsys)
    assert code == 0, out.err
    assert f"embedding_dim  {dim}" in out.out
    ident = load_run(tmp_path / "w").config["embedding"]["identity"]
    assert ident["family"] == "open_clip" and ident["weights"] == "random-init-seed0" and mean in ident["preprocess"]


def test_timm_uses_the_models_own_preprocessing():
    dino = get_encoder("dinov2_vits14", weights="random", image_size=28)
    assert dino.size == 28 and "bicubic" in dino.identity["preprocess"]
    r50 = get_encoder("timm_resnet50", weights="random", image_size=32)
    assert "Resize(size=33" in r50.identity["preprocess"]  # crop_pct 0.95 of resnet50.a1_in1k


def test_timm_weights_from_a_file_a_folder_and_the_hf_cache_give_the_same_model(tmp_path, empty_caches):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    ref = timm.create_model("resnet18.a1_in1k")  # a checkpoint with its classifier, as published
    state = ref.state_dict()
    save_file(state, str(tmp_path / "r18.safetensors"))
    folder = tmp_path / "snapshot"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    # the layout huggingface_hub writes: models--org--name/refs/main + snapshots/<commit>/file
    repo = empty_caches / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    save_file(state, str(repo / "snapshots" / "abc123" / "model.safetensors"))

    ref.reset_classifier(0)
    ref.eval()
    x = None
    idents = set()
    for weights in (str(tmp_path / "r18.safetensors"), str(folder), None):
        enc = get_encoder("timm:resnet18.a1_in1k", weights=weights, image_size=32)
        x = enc.preprocess(_image())[None] if x is None else x
        with torch.no_grad():
            torch.testing.assert_close(enc.forward(x), ref(x), rtol=1e-4, atol=1e-5)
        idents.add(enc.identity["weights"])
    assert len(idents) == 1 and idents.pop().startswith("file-sha256:")  # same content, same cache key
    # other weights under the same name: another identity, so the embedding cache is not reused
    torch.manual_seed(2)
    save_file(timm.create_model("resnet18.a1_in1k").state_dict(), str(tmp_path / "r18.safetensors"))
    other = get_encoder("timm:resnet18.a1_in1k", weights=str(tmp_path / "r18.safetensors"), image_size=32)
    assert other.identity != get_encoder("timm:resnet18.a1_in1k", weights=str(folder), image_size=32).identity


@pytest.mark.slow
def test_open_clip_weights_file_loads_exactly_with_the_tags_settings(tmp_path, empty_caches):
    torch.manual_seed(3)
    model, _, _ = open_clip.create_model_and_transforms(
        "ViT-B-32", pretrained=None, force_quick_gelu=True, force_image_size=64
    )
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    enc = get_encoder("clip_vit_b32", weights=str(path), image_size=64)
    model.eval()
    x = enc.preprocess(_image())[None]
    with torch.no_grad():
        torch.testing.assert_close(enc.forward(x), model.encode_image(x), rtol=1e-4, atol=1e-4)
    assert get_encoder("clip_vit_b32", weights=str(tmp_path), image_size=64).identity == enc.identity  # a folder


def test_missing_weights_name_the_file_to_provide(small_image_folder, tmp_path, empty_caches, capsys):
    with pytest.raises(
        CurateError,
        match=r"model\.safetensors of the Hugging Face repo "
        r"timm/vit_small_patch14_dinov2\.lvd142m.*--weights random",
    ):
        get_encoder("dinov2_vits14")
    with pytest.raises(CurateError, match="timm/resnet50.a1_in1k"):
        get_encoder("timm_resnet50")
    with pytest.raises(
        CurateError,
        match=r"open_clip_model\.safetensors of the Hugging Face repo "
        r"timm/vit_base_patch32_clip_224\.openai.*ViT-B-32\.pt",
    ):
        get_encoder("clip_vit_b32")
    with pytest.raises(CurateError, match="timm/ViT-B-16-SigLIP"):
        get_encoder("siglip_vit_b16")
    with pytest.raises(CurateError, match="do not exist"):
        get_encoder("timm_resnet50", weights=str(tmp_path / "nope.safetensors"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CurateError, match="no weights file .* in .*empty"):
        get_encoder("siglip_vit_b16", weights=str(tmp_path / "empty"))
    with pytest.raises(CurateError, match="timm has no model"):
        get_encoder("timm:resnet9000")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CurateError, match="do not load into timm"):
        get_encoder("timm_resnet50", weights=str(junk))
    # through the CLI: exit 2 and one line
    code = main(
        ["run", "--source", str(small_image_folder), "--workdir", str(tmp_path / "w"), "--encoder", "dinov2_vits14"]
    )
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: no weights for timm vit_small_patch14_dinov2")
