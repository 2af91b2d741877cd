import pytest
import torch

from resvit_export.errors import CheckpointError, ConfigError, InputSizeError, UnknownModelError
from resvit_export.models import create_model, list_models, load_weights, parse_overrides, save_weights


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownModelError) as info:
        create_model("deit_tset")
    msg = str(info.value)
    assert "deit_test" in msg and "Did you mean 'deit_test'" in msg


def test_overrides_are_type_checked():
    m = create_model("deit_test", depth=1)
    assert len(m.blocks) == 1 and m.cfg.depth == 1
    with pytest.raises(ConfigError, match="no config field 'detph'"):
        create_model("deit_test", detph=1)
    with pytest.raises(ConfigError, match="must be int"):
        create_model("deit_test", depth=1.5)
    with pytest.raises(ConfigError, match="not a valid int"):
        create_model("deit_test", **parse_overrides(["depth=two"]))
    with pytest.raises(ConfigError, match="divisible"):
        create_model("deit_test", dim=30, num_heads=4)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["depth"])


def test_seeded_creation_is_reproducible():
    a, b = create_model("deit_test", seed=3), create_model("deit_test", seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = create_model("deit_test", seed=4)
    assert not torch.equal(a.pos_embed, c.pos_embed)


def test_weights_round_trip_and_mismatch(tmp_path):
    m = create_model("deit_test", seed=1)
    path = save_weights(m, tmp_path / "w.safetensors")
    fresh = load_weights(create_model("deit_test", seed=2), path)
    x = torch.randn(1, 3, 64, 80)
    torch.testing.assert_close(fresh(x), m(x))
    with pytest.raises(CheckpointError, match=r"'pos_embed' has shape|has shape"):
        load_weights(create_model("deit_test", dim=64, num_heads=2), path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_weights(m, bad)
    with pytest.raises(CheckpointError, match="pickle"):
        (tmp_path / "w.pt").write_bytes(b"x")
        load_weights(m, tmp_path / "w.pt")


def test_input_below_minimum_is_an_error():
    m = create_model("deit_test")
    with pytest.raises(InputSizeError, match="below this model's minimum"):
        m(torch.randn(1, 3, 16, 224))
    with pytest.raises(InputSizeError, match="4-D"):
        m(torch.randn(3, 224, 224))


def test_every_family_has_a_test_variant():
    names = list_models()
    assert "deit_test" in names


_SAVE_IN_A_FRESH_PROCESS = """
import sys
from resvit_export.models import create_model, save_weights
save_weights(create_model("deit_test", seed=1), sys.argv[1],
             extra_metadata={"converted_from": "timm-vit", "source_file": "a.safetensors", "source_sha256": "0" * 64})
"""


def test_save_weights_is_byte_reproducible_across_processes(tmp_path):
    """safetensors orders a multi-key metadata map differently in every process (a Rust HashMap); save_weights
    writes one key of sorted JSON, so the same weights give the same bytes. Three processes: with four keys, the
    old layout gave three different files most of the time."""
    import hashlib
    import subprocess
    import sys

    digests = set()
    for i in range(3):
        path = tmp_path / f"w{i}.safetensors"
        subprocess.run([sys.executable, "-c", _SAVE_IN_A_FRESH_PROCESS, str(path)], check=True)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_read_metadata_reads_the_new_and_the_old_layout(tmp_path):
    import json

    from safetensors.torch import save_file

    from resvit_export.models.weights import METADATA_KEY, read_metadata

    m = create_model("deit_test", seed=1, depth=1)
    meta = read_metadata(save_weights(m, tmp_path / "new.safetensors", extra_metadata={"converted_from": "x"}))
    assert meta["model_name"] == "deit_test" and meta["config"]["depth"] == 1 and meta["converted_from"] == "x"
    old = tmp_path / "old.safetensors"  # the layout the committed reference weights were saved with
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(old),
              metadata={"model_name": "deit_test", "config": json.dumps({"depth": 1, "dim": 32})})
    assert read_metadata(old) == {"model_name": "deit_test", "config": {"depth": 1, "dim": 32}}
    assert METADATA_KEY not in read_metadata(old)
    # the "saved with --set" hint of a shape mismatch reads both layouts
    for path in (old, tmp_path / "new.safetensors"):
        with pytest.raises(CheckpointError, match="it was saved with --set dim=32"):
            load_weights(create_model("deit_test", depth=1, dim=64, num_heads=2), path)
