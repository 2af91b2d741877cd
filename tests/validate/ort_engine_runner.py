"""ONNX Runtime behind the device runner's interface: the tests' stand-in for the TensorRT engine.

It is copied into the extracted bundle and named with ``check_engine.py --runner ort_engine_runner:OrtEngineRunner``,
the only line that differs from the device. Like the engine runner it has the optimization profiles of the
bundle's plan.json and picks one with the bundle's ``profile_select.select_profile`` (ValueError outside them).
It imports numpy, onnxruntime and that file only (on the workstation: the same file from resvit_export).

It runs an ONNX file: the path it is given, or, given a plan file (build_engine.sh's output, which the tests'
stand-in trtexec writes as a placeholder), the ONNX that plan's ``.device.json`` sidecar says it was built
from. It never reads a plan file's bytes as an engine.

Fault injection for the tests, through the environment (the runner runs in the device's subprocess):
    RESVIT_TEST_PERTURB=CASE_H      add 0.5 to output[0, 3] of every input with that height
    RESVIT_TEST_OOM_ABOVE=PIXELS    raise MemoryError for inputs with more pixels per image
"""

import json
import os

import numpy as np
import onnxruntime as ort
try:
    from profile_select import select_profile  # the bundle's file, beside this one on the "device"
except ImportError:  # on the workstation (validate DIR --engine, the pipeline step)
    from resvit_export.bundle.device.profile_select import select_profile


class OrtEngineRunner:
    def __init__(self, plan_path):
        plan_path = str(plan_path)
        if not plan_path.endswith(".onnx"):
            with open(plan_path + ".device.json", encoding="utf-8") as f:
                plan_path = os.path.join(os.path.dirname(os.path.abspath(plan_path)), json.load(f)["onnx"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        self._sess = ort.InferenceSession(plan_path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self._sess.get_inputs()[0].name
        with open(os.path.join(os.path.dirname(os.path.abspath(plan_path)), "plan.json"), encoding="utf-8") as f:
            plan = json.load(f)
        self.profiles = [tuple(tuple(p["shapes"][k]) for k in ("min", "opt", "max")) for p in plan["profiles"]]
        self._names = [o.name for o in self._sess.get_outputs()]

    def infer(self, x):
        self.last_profile = select_profile(self.profiles, x.shape)
        oom = os.environ.get("RESVIT_TEST_OOM_ABOVE")
        if oom and x.shape[2] * x.shape[3] > int(oom):
            raise MemoryError(f"out of memory allocating activations for {x.shape}")
        out = dict(zip(self._names, self._sess.run(None, {self.input_name: x})))
        if os.environ.get("RESVIT_TEST_PERTURB") == str(x.shape[2]):
            out[self._names[0]] = out[self._names[0]].copy()
            out[self._names[0]][0, 3] += np.float32(0.5)
        return out

    def close(self):
        self._sess = None
