"""Trained weights change activation ranges: the exported graph must still match PyTorch across the range."""

from __future__ import annotations

import numpy as np
import pytest

from resvit_export.reference import checkpoints, evaluate

pytestmark = pytest.mark.slow

PROFILE = "32-512"
SIZES = ((32, 32), (97, 301), (512, 512))  # the profile's min, an odd non-square size, its max
N_IMAGES = 20


@pytest.mark.parametrize("name", checkpoints.REFERENCE_MODELS)
def test_trained_weights_export_and_match_onnx_runtime(name, tmp_path):
    pytest.importorskip("onnxruntime")
    from resvit_export.export.onnx_export import export_onnx
    from resvit_export.profiles import parse_profile

    model = checkpoints.reference_model(name)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, parse_profile(PROFILE))
    eager, ort = evaluate.torch_runner(model), evaluate.onnx_runner(path)
    for h, w in SIZES:
        images, _ = next(evaluate.heldout_batches(h, w, N_IMAGES, batch_size=N_IMAGES))
        diff = np.abs(eager(images) - ort(images)).max()
        assert diff < 1e-4, (name, h, w, float(diff))
        assert evaluate.top1_agreement(eager, ort, images) == 1.0, (name, h, w)
