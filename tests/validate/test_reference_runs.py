"""PyTorch's side of the matrix computed ahead in a forked child (validate/reference_runs.py): the child's
outputs and inputs are the ones an in-process run gives, validate uses them only when they cover its matrix,
and a failed or abandoned child costs nothing but the fallback."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from resvit_export.models import create_model
from resvit_export.profiles import parse_profile
from resvit_export.validate.inputs import input_sha256
from resvit_export.validate.parity import validate_onnx
from resvit_export.validate.reference_runs import ReferenceAhead, as_arrays, plan_jobs

from .test_parity import export_test_onnx

PROFILE = parse_profile("32-128")

pytestmark = pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork (Linux)")


@pytest.fixture(scope="module")
def deit(tmp_path_factory):
    model = create_model("deit_test").eval()
    return model, export_test_onnx(model, tmp_path_factory.mktemp("ahead") / "model.onnx")


def _ahead(model, jobs):
    ahead = ReferenceAhead.start(model, jobs, threads=1)
    if ahead is None:
        pytest.skip("one CPU core: build computes the reference in validate")
    return ahead


def test_child_outputs_and_inputs_are_those_of_an_in_process_run(deit):
    model, _ = deit
    jobs = plan_jobs([PROFILE], model.size_rule, seed=3)
    ahead = _ahead(model, jobs)
    try:
        runs = ahead.result()
        assert runs is not None and runs.how.startswith("ahead") and runs.covers(jobs)
        torch.set_num_threads(1)  # the child's thread count: same kernels, same bits
        with torch.inference_mode():
            for job in jobs[:: max(1, len(jobs) // 6)]:
                x = job.make_input()
                assert np.array_equal(runs.input_of(job), x)
                assert runs.input_sha256[job.key] == input_sha256(x)
                want = as_arrays(model(torch.from_numpy(x)))
                assert all(np.array_equal(a, b) for a, b in zip(runs.outputs[job.key], want))
                assert runs.seconds[job.key] > 0
    finally:
        ahead.close()
    assert not any(p.exists() for p in runs.inputs.values())  # close() removed the shared inputs


def test_validate_uses_runs_that_cover_its_matrix_and_recomputes_otherwise(deit, tmp_path):
    model, onnx_path = deit
    ahead = _ahead(model, plan_jobs([PROFILE], model.size_rule, seed=0))
    try:
        runs = ahead.result()
        calls = []
        hook = model.register_forward_hook(lambda *a: calls.append(1))
        try:
            used = validate_onnx(model, onnx_path, [PROFILE], reference=runs, out_dir=tmp_path / "ahead")
            assert calls == [] and used.passed  # PyTorch did not run in validate
            assert used.timing["reference"].startswith("ahead") and used.timing["threads"]["pytorch"] == 1
            other_seed = validate_onnx(model, onnx_path, [PROFILE], reference=runs, seed=1)
            assert calls and other_seed.passed  # not its matrix: PyTorch ran here
            assert other_seed.timing["reference"] == "in validate, beside ONNX Runtime"
        finally:
            hook.remove()
        plain = validate_onnx(model, onnx_path, [PROFILE], out_dir=tmp_path / "plain")
    finally:
        ahead.close()
    assert [(c.name, c.input) for c in used.cases] == [(c.name, c.input) for c in plain.cases]
    # the same reference set either way: same recipes, input hashes and PyTorch outputs
    for name in ("reference.json", "reference.npz"):
        a, b = (tmp_path / "ahead" / name), (tmp_path / "plain" / name)
        if name.endswith(".npz"):
            with np.load(a) as x, np.load(b) as y:
                assert sorted(x.files) == sorted(y.files)
                assert all(np.array_equal(x[k], y[k]) for k in x.files)
        else:
            import json

            ca, cb = json.loads(a.read_text())["cases"], json.loads(b.read_text())["cases"]
            assert ca == cb


class _Fails(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError(f"no forward at {tuple(x.shape)}")


class _Slow(torch.nn.Module):
    def forward(self, x):
        time.sleep(30)
        return x


def test_a_failing_child_reports_why_and_a_closed_one_is_gone(deit):
    model, _ = deit
    jobs = plan_jobs([PROFILE], model.size_rule)
    failing = _ahead(_Fails(), jobs)
    assert failing.result() is None and "no forward at" in failing.failure
    failing.close()
    slow = _ahead(_Slow(), jobs)
    workdir = Path(slow._dir)
    t0 = time.monotonic()
    slow.close()  # a build that fails before validate: the child is killed, not waited for
    assert time.monotonic() - t0 < 5 and not workdir.exists() and slow.failure == "cancelled"
