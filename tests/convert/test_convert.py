"""Checkpoint converters against state dicts made by the reference code itself (timm) or with the official
ResFormer key layout, and the refusals for variants that do not map."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from resvit_export.convert import convert_checkpoint, detect_format, read_state_dict
from resvit_export.convert.resformer_official import renamed_keys
from resvit_export.errors import CheckpointError, OutputDirError, UsageError
from resvit_export.models import create_model, load_weights


def _save(state: dict, path):
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path))
    return path


def _x(h, w, batch=1):
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(h * 7 + w))


def test_timm_deit_s_converts_to_identical_logits(timm, tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model("deit_small_patch16_224", pretrained=False, dynamic_img_size=True).eval()
    src = _save(ref.state_dict(), tmp_path / "model.safetensors")  # what timm's hub files hold
    result = convert_checkpoint(src, tmp_path / "deit_s.safetensors", "deit_s")
    assert result.source_format == "timm-vit" and result.overrides == {}
    ours = load_weights(create_model("deit_s", seed=1), result.path)  # the --weights path
    with torch.no_grad():
        for h, w in ((224, 224), (448, 448), (320, 640), (97, 301)):
            x = _x(h, w)
            # timm asserts whole patches; our floor rule is that crop (97x301 -> 96x288), done by the conv
            crop = x[..., : h // 16 * 16, : w // 16 * 16]
            assert torch.equal(ours(x), ref(crop)), (h, w, float((ours(x) - ref(crop)).abs().max()))


@pytest.mark.parametrize("proj", ["conv", "linear"])
def test_timm_naflexvit_converts_to_navit_s(timm, tmp_path, proj):
    from timm.models.naflexvit import NaFlexVit, NaFlexVitCfg

    torch.manual_seed(0)
    cfg = NaFlexVitCfg(embed_dim=384, depth=12, num_heads=6, pos_embed="factorized", pos_embed_grid_size=(64, 64),
                       global_pool="avg", class_token=False, embed_proj_type=proj)
    ref = NaFlexVit(cfg).eval()
    src = _save(ref.state_dict(), tmp_path / "naflex.safetensors")
    result = convert_checkpoint(src, tmp_path / "navit_s.safetensors", "navit_s")
    ours = load_weights(create_model("navit_s", seed=1), result.path)
    sizes = [(224, 224), (320, 640)] + ([(97, 301)] if proj == "conv" else [])  # timm's linear path
    with torch.no_grad():                                                                   # needs whole patches
        for h, w in sizes:
            x = _x(h, w)
            assert (ours(x) - ref(x)).abs().max() <= 6e-6, (h, w)


def _official_resformer_state(dim=384, depth=12, heads=6, classes=1000) -> dict:
    """Key names and shapes of ruitian12/resformer image_classification/models.py (ResFormer, commit 33e2c09):
    GlobalPosEmbed.embed_layer = Conv2d(D, D, 3, groups=D); Attention.get_v = Conv2d(hd, hd, 3, groups=hd);
    timm's Mlp (fc1, fc2); qkv_bias=True; LayerNorm(eps=1e-6) norm1/norm2/norm; Linear head."""
    hd, g = dim // heads, torch.Generator().manual_seed(0)
    shapes = {"cls_token": (1, 1, dim), "patch_embed.proj.weight": (dim, 3, 16, 16), "patch_embed.proj.bias": (dim,),
              "pos_embed.embed_layer.weight": (dim, 1, 3, 3), "pos_embed.embed_layer.bias": (dim,)}
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (dim,), b + "norm1.bias": (dim,), b + "attn.qkv.weight": (3 * dim, dim),
                       b + "attn.qkv.bias": (3 * dim,), b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,),
                       b + "attn.get_v.weight": (hd, 1, 3, 3), b + "attn.get_v.bias": (hd,),
                       b + "norm2.weight": (dim,), b + "norm2.bias": (dim,), b + "mlp.fc1.weight": (4 * dim, dim),
                       b + "mlp.fc1.bias": (4 * dim,), b + "mlp.fc2.weight": (dim, 4 * dim), b + "mlp.fc2.bias": (dim,)})
    shapes.update({"norm.weight": (dim,), "norm.bias": (dim,), "head.weight": (classes, dim), "head.bias": (classes,)})
    return {k: torch.randn(s, generator=g) * 0.02 for k, s in shapes.items()}


def test_official_resformer_layout_converts_with_26_renamed_keys(tmp_path):
    state = _official_resformer_state()
    pairs = renamed_keys(state)
    assert len(pairs) == 26
    assert ("pos_embed.embed_layer.weight", "pos_conv.weight") in pairs
    assert ("blocks.11.attn.get_v.bias", "blocks.11.attn.lpe.bias") in pairs
    src = _save(state, tmp_path / "resformer_s.safetensors")
    result = convert_checkpoint(src, tmp_path / "ours.safetensors", "resformer_s")
    assert result.source_format == "resformer-official" and result.overrides == {}
    model = load_weights(create_model("resformer_s"), result.path)
    ours = model.state_dict()
    for official, name in pairs + [("cls_token", "cls_token"), ("blocks.3.attn.qkv.weight", "blocks.3.attn.qkv.weight")]:
        assert torch.equal(ours[name], state[official]), name


def test_heads_are_read_from_the_resformer_lpe_width(tmp_path):
    src = _save(_official_resformer_state(dim=32, depth=2, heads=4, classes=10), tmp_path / "tiny.safetensors")
    result = convert_checkpoint(src, tmp_path / "ours.safetensors", "resformer_test")
    assert result.overrides == {"num_heads": 4}  # resformer_test has 2 heads; the checkpoint says 4 (get_v is 8 wide)
    model = load_weights(create_model("resformer_test", num_heads=4), result.path)
    assert model.blocks[0].attn.lpe.weight.shape[0] == 8


@pytest.mark.parametrize("build,variant", [
    ("distilled", "distilled DeiT"),
    ("deit3", "LayerScale"),
    ("registers", "register tokens"),
    ("gap", "global-average-pooled ViT"),
])
def test_variants_that_do_not_map_are_refused_by_name(timm, tmp_path, build, variant):
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer

    small = dict(embed_dim=32, depth=2, num_heads=2, num_classes=10)
    ref = {
        "distilled": lambda: VisionTransformerDistilled(**small),
        "deit3": lambda: VisionTransformer(init_values=1e-5, no_embed_class=True, **small),
        "registers": lambda: VisionTransformer(reg_tokens=4, **small),
        "gap": lambda: VisionTransformer(global_pool="avg", fc_norm=True, **small),
    }[build]()
    src = _save(ref.state_dict(), tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match=variant) as info:
        convert_checkpoint(src, tmp_path / "out.safetensors", "deit_test")
    assert "\n" not in str(info.value) and "does not map onto deit_*" in str(info.value)
    assert not (tmp_path / "out.safetensors").exists()


def test_tiny_timm_vit_via_the_cli(timm, tmp_path):
    from click.testing import CliRunner

    from resvit_export.cli.main import cli
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    ref = VisionTransformer(embed_dim=32, depth=2, num_heads=2, num_classes=7, dynamic_img_size=True).eval()
    src = _save(ref.state_dict(), tmp_path / "vit.safetensors")
    out = tmp_path / "deit_test.safetensors"
    run = CliRunner().invoke(cli, ["convert", str(src), "deit_test", "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert "--set num_classes=7" in run.output and run.output.strip().splitlines()[-1].startswith("PASSED")
    model = load_weights(create_model("deit_test", num_classes=7), out)
    with torch.no_grad():
        assert torch.equal(model(_x(64, 96)), ref(_x(64, 96)))
    # without the override the load names the flag the file was saved with
    with pytest.raises(CheckpointError, match="saved with --set num_classes=7"):
        load_weights(create_model("deit_test"), out)
    again = CliRunner().invoke(cli, ["convert", str(src), "deit_test", "-o", str(out)])
    assert again.exit_code == OutputDirError.exit_code and "--force" in again.output


def test_refusals_before_any_work(tmp_path):
    pth = tmp_path / "ckpt.pth"
    pth.write_bytes(b"\x80\x02not really")
    with pytest.raises(CheckpointError, match=r"never unpickles.*weights_only=True"):
        read_state_dict(pth)
    ours = tmp_path / "ours.safetensors"
    _save(create_model("deit_test").state_dict(), ours)
    with pytest.raises(CheckpointError, match="already in resvit-export's layout"):
        detect_format(read_state_dict(ours))
    official = _save(_official_resformer_state(dim=32, depth=2, heads=2, classes=10), tmp_path / "rf.safetensors")
    with pytest.raises(UsageError, match="converts into resformer_\\* models, not deit_test"):
        convert_checkpoint(official, tmp_path / "o.safetensors", "deit_test")
    with pytest.raises(UsageError, match="must end in .safetensors"):
        convert_checkpoint(official, tmp_path / "o.pth", "resformer_test")
    with pytest.raises(UsageError, match="unknown source format"):
        convert_checkpoint(official, tmp_path / "o.safetensors", "resformer_test", source_format="keras")


def test_a_width_the_model_lacks_needs_the_heads(timm, tmp_path):
    from timm.models.vision_transformer import VisionTransformer

    src = _save(VisionTransformer(embed_dim=48, depth=2, num_heads=3, num_classes=10).state_dict(), tmp_path / "v.safetensors")
    with pytest.raises(CheckpointError, match="--set num_heads=N"):
        convert_checkpoint(src, tmp_path / "o.safetensors", "deit_test")
    result = convert_checkpoint(src, tmp_path / "o.safetensors", "deit_test", overrides={"num_heads": "3"})
    assert result.overrides == {"dim": 48, "num_heads": "3"}


def test_timm_vit_converts_and_builds_with_parity_passed(timm, tmp_path):
    """Issue 10's done-when at CI size: a ViT made by timm's own code -> convert -> build, parity PASSED."""
    import json

    from click.testing import CliRunner

    from resvit_export.cli.main import cli
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(1)
    ref = VisionTransformer(embed_dim=32, depth=2, num_heads=2, num_classes=10, dynamic_img_size=True).eval()
    weights = convert_checkpoint(_save(ref.state_dict(), tmp_path / "vit.safetensors"),
                                 tmp_path / "deit_test.safetensors", "deit_test").path
    out = tmp_path / "build"  # 224 px up: below it the antialiased pos-embed resize has no exact TensorRT form
    run = CliRunner().invoke(cli, ["build", "deit_test", "--weights", str(weights), "--profile", "224-256",
                                   "--engine", "skip", "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert run.output.strip().splitlines()[-1].startswith("PASSED")
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] and parity["top1_agreement"] == 1.0
    assert json.loads((out / "export.json").read_text())["weights_sha256"]
