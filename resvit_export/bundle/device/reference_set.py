"""The reference set: what the device needs to repeat the parity matrix without PyTorch (numpy + stdlib).

Written on the workstation by ``resvit_export.validate.reference`` during validate (and so build):

* ``reference.json``: for each case x input kind its recipe (name, kind, input kind, batch, H, W, seed) and
  the sha256 of the input it produced (``parity_inputs.input_sha256``), the model, profiles, tolerances
  used per precision, the input generator's version and the sha256 of the array files;
* ``reference.npz``: PyTorch's FP32 outputs, ``case{i}_out{k}`` = case i, output k (no pickle);
* ``reference.inputs.npz`` (only when the inputs are shipped instead of regenerated): ``case{i}``.

The device regenerates every input from its recipe with the shipped ``parity_inputs.py`` and refuses an
input whose hash differs (``ReferenceError``, exit 6): a mismatch is an error, never a silent pass.
Works with Python >= 3.8 and numpy >= 1.17.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, List, Optional

import numpy as np

try:  # imported as resvit_export.bundle.device.reference_set on the workstation
    from . import parity_inputs
except ImportError:  # run from the extracted bundle on the device
    import parity_inputs

__all__ = ["FORMAT", "FORMAT_VERSION", "ReferenceError", "ReferenceSet", "output_key", "input_key", "sha256_of"]

FORMAT = "resvit-export reference set"
FORMAT_VERSION = 1
_CASE_FIELDS = ("name", "kind", "input", "batch", "h", "w", "tokens", "seed", "input_sha256")


class ReferenceError(Exception):
    """The reference set is missing, malformed, tampered with, or does not reproduce here (exit 6)."""

    exit_code = 6


def output_key(case_index: int, output_index: int) -> str:
    return f"case{case_index}_out{output_index}"


def input_key(case_index: int) -> str:
    return f"case{case_index}"


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ReferenceSet:
    """A verified reference set. Construction checks the files and their hashes (nothing is run);
    ``input(i)`` regenerates case i's input and checks its hash, ``outputs(i)`` gives PyTorch's outputs."""

    def __init__(self, path: str):
        self.path = str(path)
        self.root = os.path.dirname(os.path.abspath(self.path))
        meta = self._read_json()
        self.meta = meta
        self.cases: List[dict] = meta["cases"]
        self.output_names: List[str] = meta["output_names"]
        with np.load(self._verified(meta["outputs_file"], meta["outputs_sha256"]), allow_pickle=False) as data:
            self._outputs = {k: data[k] for k in data.files}
        # shipped inputs can be large: verified now, read one case at a time
        self._inputs_path = (self._verified(meta["inputs_file"], meta["inputs_sha256"])
                             if meta.get("inputs_file") else None)
        self.files = [os.path.basename(self.path), meta["outputs_file"]] + (
            [meta["inputs_file"]] if meta.get("inputs_file") else [])
        for i in range(len(self.cases)):
            for k in range(len(self.output_names)):
                if output_key(i, k) not in self._outputs:
                    raise ReferenceError(f"{meta['outputs_file']} lacks {output_key(i, k)}; the reference set is "
                                         f"incomplete: re-run `resvit-export validate` and re-bundle")

    def _read_json(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise ReferenceError(f"{self.path} does not exist; the bundle has no reference set (build or validate "
                                 f"with resvit-export >= this version, then re-bundle)") from None
        except (OSError, ValueError) as err:
            raise ReferenceError(f"{self.path} is not readable JSON ({err})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ReferenceError(f"{self.path} is not a resvit-export reference set")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ReferenceError(f"{self.path} has format version {meta.get('format_version')}, this check reads "
                                 f"{FORMAT_VERSION}; use the check_engine.py shipped in the same bundle")
        if meta.get("inputs_file") is None and meta.get("generator_version") != parity_inputs.GENERATOR_VERSION:
            raise ReferenceError(f"{self.path} was made by input generator version {meta.get('generator_version')}, "
                                 f"the shipped parity_inputs.py is version {parity_inputs.GENERATOR_VERSION}; "
                                 f"re-bundle so both come from the same resvit-export")
        cases = meta.get("cases")
        if not isinstance(cases, list) or not cases or not isinstance(meta.get("output_names"), list):
            raise ReferenceError(f"{self.path} lists no cases or outputs")
        for c in cases:
            missing = [f for f in _CASE_FIELDS if f not in c]
            if missing:
                raise ReferenceError(f"{self.path}: case {c.get('name', '?')} lacks {', '.join(missing)}")
        return meta

    def _verified(self, name: str, digest: str) -> str:
        path = os.path.join(self.root, os.path.basename(name))
        if not os.path.isfile(path):
            raise ReferenceError(f"{path} is missing; copy the whole bundle directory")
        actual = sha256_of(path)
        if actual != digest:
            raise ReferenceError(f"{os.path.basename(path)} was modified: sha256 {actual[:12]}... != recorded "
                                 f"{str(digest)[:12]}... (tampered or corrupted; re-copy the bundle)")
        return path

    def label(self, i: int) -> str:
        c = self.cases[i]
        return f"{c['name']} [{c['input']}]"

    def input(self, i: int) -> np.ndarray:
        """Case i's input: regenerated from its recipe (or the shipped array), checked against its sha256."""
        c = self.cases[i]
        if self._inputs_path is not None:
            with np.load(self._inputs_path, allow_pickle=False) as data:
                x = data[input_key(i)]
        else:
            x = parity_inputs.make_inputs(c["input"], c["batch"], c["h"], c["w"], c["seed"])
        digest = parity_inputs.input_sha256(x)
        if digest != c["input_sha256"]:
            how = "the shipped array" if self._inputs_path is not None else f"regenerated on this machine (numpy {np.__version__})"
            raise ReferenceError(
                f"input of {self.label(i)} {how} has sha256 {digest[:12]}... but the reference recorded "
                f"{c['input_sha256'][:12]}...; the outputs cannot be compared (re-bundle with shipped inputs if "
                f"this machine cannot reproduce them)")
        return x

    def outputs(self, i: int) -> Dict[str, np.ndarray]:
        return {n: self._outputs[output_key(i, k)] for k, n in enumerate(self.output_names)}

    def tolerances(self, precision: str) -> Optional[dict]:
        """The tolerances the workstation validated this precision with (None: not validated there)."""
        return (self.meta.get("tolerances") or {}).get(precision)
