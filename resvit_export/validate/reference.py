"""Write the reference set: PyTorch's outputs and the input recipes the device repeats the parity matrix with.

validate (and so build) calls :func:`write_reference_set` after its runs, with what it already has: each
case x input kind's recipe, the input (hashed, not stored: the device regenerates it bit for bit) and
PyTorch's FP32 outputs. The format and its reader live in ``bundle/device/reference_set.py`` (shipped);
file names come from :class:`~resvit_export.layout.BuildLayout`.

The set is small: outputs only (vitar_s 224-1792: 42 case x input entries of 1000 logits, about 0.2 MB,
against 48 MB for its FP16 ONNX). ``ship_inputs`` adds the inputs themselves (hundreds of MB at 1792 px) for
a device that cannot reproduce the generator; the default regenerates.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from resvit_export.bundle.device import reference_set as fmt
from resvit_export.bundle.device.parity_inputs import GENERATOR_VERSION, input_sha256
from resvit_export.io import atomic_path, sha256_file, write_json_atomic
from resvit_export.layout import BuildLayout

__all__ = ["ReferenceEntry", "ReferenceSetInfo", "write_reference_set"]


@dataclass(frozen=True)
class ReferenceEntry:
    """One case x input kind as validate ran it."""

    name: str
    kind: str  # the matrix rule (min, edge, offgrid, ...)
    input: str  # the input kind (gaussian | synthetic)
    batch: int
    h: int
    w: int
    tokens: int  # patch tokens (the x axis of the report's plot)
    seed: int
    x: np.ndarray  # the input (hashed; stored only with ship_inputs)
    outputs: Sequence[np.ndarray]  # PyTorch's outputs, in output_names order
    x_sha256: str | None = None  # input_sha256(x) when the process that made x computed it already


@dataclass(frozen=True)
class ReferenceSetInfo:
    files: list[Path]
    bytes: int

    def describe(self) -> str:
        return f"reference set {self.bytes / 1e6:.2f} MB ({', '.join(p.name for p in self.files)})"

    def to_dict(self) -> dict:
        return {"files": [p.name for p in self.files], "bytes": self.bytes}


def write_reference_set(out_dir: str | os.PathLike, entries: Sequence[ReferenceEntry], *, model: str,
                        profiles: Sequence[str], input_name: str, output_names: Sequence[str], seed: int,
                        precision: str, tolerances: dict, merged: Sequence[dict] = (), torch_version: str = "",
                        reference_device: str = "cpu", ship_inputs: bool = False) -> ReferenceSetInfo:
    """Write reference.json + reference.npz (+ reference.inputs.npz with ``ship_inputs``) into ``out_dir``.

    ``reference_device`` is the torch device type that computed ``outputs`` (validate runs PyTorch on the CPU,
    beside ONNX Runtime CPU); it is recorded, and every engine-parity report repeats it.

    A set with the same cases and bit-identical outputs is kept as it is, only gaining this precision's
    tolerances: validating fp32 and then fp16 records both, and a later ``validate`` of the same build does
    not change the files the manifest hashed.
    """
    layout = BuildLayout(out_dir)
    cases = [{"name": e.name, "kind": e.kind, "input": e.input, "batch": e.batch, "h": e.h, "w": e.w,
              "tokens": e.tokens, "seed": e.seed, "input_sha256": e.x_sha256 or input_sha256(e.x)} for e in entries]
    outputs = {fmt.output_key(i, k): np.asarray(o, dtype=np.float32)
               for i, e in enumerate(entries) for k, o in enumerate(e.outputs)}
    meta = _same_set(layout, cases, outputs, ship_inputs)
    if meta is None:
        meta = {
            "format": fmt.FORMAT,
            "format_version": fmt.FORMAT_VERSION,
            "generator_version": GENERATOR_VERSION,
            "model": model,
            "profiles": list(profiles),
            "input_name": input_name,
            "output_names": list(output_names),
            "reference": f"PyTorch {torch_version} eager FP32 on {reference_device}".replace("  ", " "),
            "reference_device": reference_device,  # torch device type the outputs were computed on (cpu, cuda)
            "seed": seed,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(),
            "tolerances": {},
            **_write_arrays(layout, entries, outputs, ship_inputs),
            "cases": cases,
            "merged": list(merged),
        }
    if meta["tolerances"].get(precision) != tolerances:
        meta["tolerances"][precision] = tolerances
        write_json_atomic(layout.reference_set, meta)
    files = [layout.reference_set, layout.reference_outputs] + ([layout.reference_inputs] if ship_inputs else [])
    return ReferenceSetInfo(files, sum(p.stat().st_size for p in files))


def _write_arrays(layout: BuildLayout, entries, outputs: dict, ship_inputs: bool) -> dict:
    """The .npz files, and the JSON fields that name and hash them."""
    with atomic_path(layout.reference_outputs) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a bare temp name
            np.savez(f, **outputs)
    fields = {"outputs_file": layout.reference_outputs.name, "outputs_sha256": sha256_file(layout.reference_outputs),
              "inputs_file": None, "inputs_sha256": None}
    if ship_inputs:
        with atomic_path(layout.reference_inputs) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{fmt.input_key(i): np.asarray(e.x, dtype=np.float32) for i, e in enumerate(entries)})
        fields.update(inputs_file=layout.reference_inputs.name, inputs_sha256=sha256_file(layout.reference_inputs))
    elif layout.reference_inputs.exists():
        layout.reference_inputs.unlink()  # a stale shipped-input file would contradict the new set
    return fields


def _same_set(layout: BuildLayout, cases: list[dict], outputs: dict, ship_inputs: bool) -> dict | None:
    """The existing set's metadata when it holds these cases and bit-identical outputs, else None."""
    try:
        old = json.loads(layout.reference_set.read_text())
        if (not isinstance(old, dict) or old.get("format_version") != fmt.FORMAT_VERSION or old.get("cases") != cases
                or bool(old.get("inputs_file")) != ship_inputs
                or sha256_file(layout.reference_outputs) != old.get("outputs_sha256")):
            return None
        with np.load(layout.reference_outputs, allow_pickle=False) as data:
            same = set(data.files) == set(outputs) and all(np.array_equal(data[k], v) for k, v in outputs.items())
    except (OSError, ValueError):
        return None
    return old if same else None
