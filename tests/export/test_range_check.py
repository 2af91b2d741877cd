"""The range-narrowing check: unsafe size handling must raise RangeNarrowedError; safe modules pass.

The unsafe modules reproduce research tensorrt.md §5.3/§5.4: torch.onnx.export *succeeds* on all of them
(it silently narrows/specializes), so only the check stands between them and a wrong ONNX.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resvit_export.errors import RangeNarrowedError
from resvit_export.export import DimRequest, check_export, export_onnx
from resvit_export.export.onnx_export import captured_output
from resvit_export.profiles import parse_batch, parse_profile

PROFILE = parse_profile("32-128")


class WhileLoop(nn.Module):
    def forward(self, x):
        while x.shape[-2] > 16:
            x = F.avg_pool2d(x, 2)
        return x.mean((2, 3))


class IfBranch(nn.Module):
    def forward(self, x):
        if x.shape[-1] > 48:
            x = x * 2
        return x.mean((2, 3))


class AdaptivePool(nn.Module):
    def forward(self, x):
        return F.adaptive_avg_pool2d(x, (2, 3)).flatten(1)  # any fixed grid > 1


class Linspace(nn.Module):
    def forward(self, x):
        g = torch.linspace(-1, 1, x.shape[-1] // 2)
        return x.mean(2).narrow(-1, 0, x.shape[-1] // 2) + g


class Safe(nn.Module):
    """Conv stem + global pooling + a size-derived scale from the tensor shape: resolution-safe."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)

    def forward(self, x):
        y = self.conv(x)
        pos = F.interpolate(y, size=(y.shape[-2], y.shape[-1]), mode="bilinear", align_corners=False)
        return F.adaptive_avg_pool2d(y + pos, 1).flatten(1) * (x.shape[-1] / 128.0)


@pytest.mark.parametrize(
    "module, dim, words",
    [
        (WhileLoop, "height", "narrowed"),
        (IfBranch, "width", "narrowed"),
        (AdaptivePool, "height", "guard"),
        (Linspace, "width", "specialized"),
    ],
    ids=["while", "if", "adaptive_pool", "linspace"],
)
def test_unsafe_module_raises(module, dim, words, tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(RangeNarrowedError) as info:
        export_onnx(module().eval(), out, PROFILE)
    msg = str(info.value)
    assert f"'{dim}'" in msg and words in msg and "requested [32, 128]" in msg and "likely cause" in msg
    assert "\n" not in msg
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing that looks like an artifact


def test_safe_module_passes_external_data_and_quiet(tmp_path, capfd):
    out = tmp_path / "safe.onnx"
    model = Safe().eval()
    res = export_onnx(model, out, parse_profile("32-128", parse_batch("1-4@2")), external_data=True)
    o, e = capfd.readouterr()
    assert "torch.onnx" not in o + e and "torchvision" not in o + e  # chatter captured
    assert isinstance(res.log, str)  # kept on the result for --verbose and error messages
    assert res.range_constraints == {"batch": [1, None], "height": [32, 128], "width": [32, 128]}
    assert res.data_path == out.with_name("safe.onnx.data") and res.data_path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["safe.onnx", "safe.onnx.data"]  # no temp leftovers
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for b, h, w in ((1, 32, 32), (3, 128, 128), (2, 37, 121)):
        x = torch.randn(b, 3, h, w)
        np.testing.assert_allclose(sess.run(None, {"pixels": x.numpy()})[0], model(x).detach().numpy(), atol=1e-5)


def test_export_deterministic(tmp_path):
    model = Safe().eval()
    a = export_onnx(model, tmp_path / "a.onnx", PROFILE)
    b = export_onnx(model, tmp_path / "b.onnx", PROFILE)
    assert a.onnx_sha256 == b.onnx_sha256


def test_check_export_flags_static_and_renamed_onnx_dims(tmp_path):
    with captured_output():
        prog = torch.onnx.export(Safe().eval(), (torch.randn(2, 3, 45, 61),), dynamo=True,
                                 dynamic_shapes=({0: torch.export.Dim("batch", min=1),
                                                  2: torch.export.Dim("height", min=32, max=128),
                                                  3: torch.export.Dim("width", min=32, max=128)},),
                                 input_names=["pixels"], output_names=["logits"])
    reqs = [DimRequest("batch", 1, 8, (("pixels", 0),)), DimRequest("height", 32, 128, (("pixels", 2),)),
            DimRequest("width", 32, 128, (("pixels", 3),))]
    assert check_export(prog, prog.model, reqs, ["pixels"])["height"] == [32, 128]
    # asking for more than was exported is a narrowing
    with pytest.raises(RangeNarrowedError, match=r"'width'.*requested \[16, 256\], exported \[32, 128\]"):
        check_export(prog, prog.model, reqs[:2] + [DimRequest("width", 16, 256, (("pixels", 3),))], ["pixels"])
    # a constant ONNX dim (e.g. a later tool froze it) is caught on the proto
    prog.save(tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    proto.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 64
    with pytest.raises(RangeNarrowedError, match="constant 64"):
        check_export(prog, proto, reqs, ["pixels"])
    proto.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "s42"
    with pytest.raises(RangeNarrowedError, match="named 's42'"):
        check_export(prog, proto, reqs, ["pixels"])
