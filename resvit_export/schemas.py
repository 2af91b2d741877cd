"""JSON Schemas of the files resvit-export writes and later reads back, and the one check that applies them.

A file that parses as JSON but has the wrong shape (a list where an object belongs, a string for an int) is
refused with one line naming the file and the field, exit 6 - never a TypeError deep inside a command.
The schemas list the fields that readers use; writers may add more (additionalProperties stays open).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import InvalidArtifactError

__all__ = ["STATUS", "EXPORT_RECORD", "PLAN", "MANIFEST", "check_document", "read_json_document"]

_INT = {"type": "integer"}
_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_HW = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2}
_OPT_HW = {"oneOf": [_HW, {"type": "null"}]}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 4, "maxItems": 4}
_BATCH = {"type": "object", "required": ["min", "opt", "max"],
          "properties": {k: {"type": "integer", "minimum": 1} for k in ("min", "opt", "max")}}
_PROFILE = {"type": "object", "required": ["min", "max"],
            "properties": {"min": _HW, "max": _HW, "opt": _OPT_HW, "batch": _BATCH, "input_name": _OPT_STR}}

STATUS: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "command", "status", "exit_code", "files"],
    "properties": {
        "schema": {"const": "resvit-export/status@1"},
        "command": {"enum": ["build", "export", "validate", "calibrate"]},
        "status": {"enum": ["RUNNING", "PASSED", "FAILED"]},
        "exit_code": {"type": ["integer", "null"]},
        "error": _OPT_STR,
        "allow_unverified": {"type": "boolean"},
        "details": {"type": "object"},
        "files": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        "seconds": {"type": "number"},
        "previous": {"oneOf": [{"$ref": "#"}, {"type": "null"}]},
    },
}

EXPORT_RECORD: dict[str, Any] = {
    "type": "object",
    "required": ["model", "seed", "overrides", "onnx", "onnx_sha256", "input_names", "output_names"],
    "properties": {
        "model": _STR, "family": _STR, "entry": {"enum": ["image", "packed"]},
        "seed": {"type": ["integer", "null"]},
        "overrides": {"type": "object"},
        "weights": _OPT_STR, "weights_sha256": _OPT_STR,
        "onnx": _STR, "onnx_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "input_names": {"type": "array", "items": _STR}, "output_names": {"type": "array", "items": _STR},
        "profiles": {"type": "array", "items": _PROFILE},
        "opset": _INT,
    },
}

PLAN: dict[str, Any] = {
    "type": "object",
    "required": ["precision", "input_name", "profiles"],
    "properties": {
        "model": _STR, "family": _STR, "precision": {"enum": ["fp32", "fp16", "int8"]},
        "input_name": {"type": "string", "pattern": r"^[A-Za-z_][\w.\-]*$"}, "patch_size": {"type": "integer", "minimum": 1},
        "layout": {"enum": ["nested", "disjoint"]}, "budget_bytes": {"type": ["integer", "null"]},
        "device": {"type": ["object", "null"]},
        "warnings": {"type": "array", "items": _STR}, "notes": {"type": "array", "items": _STR},
        "profiles": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["index", "min", "opt", "max", "batch", "tokens"],
            "properties": {"index": _INT, "min": _HW, "opt": _HW, "max": _HW, "batch": _BATCH,
                           "tokens": {"type": "array", "items": _INT, "minItems": 2, "maxItems": 2},
                           "memory": {"type": ["object", "null"]}, "fits": {"type": ["boolean", "null"]}}}},
    },
}

MANIFEST: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "profiles", "artifacts"],
    "properties": {
        "schema": {"const": "resvit-export/engine-manifest@1"},
        "model": _OPT_STR, "family": _OPT_STR, "tensorrt": _OPT_STR, "cuda": _OPT_STR, "jetpack": _OPT_STR,
        "l4t": _OPT_STR, "platform": _OPT_STR,
        "gpu": {"type": ["object", "null"], "properties": {"name": _OPT_STR, "compute_capability": _OPT_STR}},
        "precision": {"type": ["object", "null"], "properties": {
            "mode": _OPT_STR, "fp32_nodes": {"type": "array", "items": _STR}}},
        "profiles": {"type": "array", "items": {
            "type": "object", "required": ["index", "shapes"],
            "properties": {"index": _INT, "shapes": {"type": "object", "properties": {
                k: _SHAPE for k in ("min", "opt", "max")}}}}},
        "artifacts": {"type": "array", "items": {
            "type": "object", "required": ["role", "path", "sha256"],
            "properties": {"role": _STR, "path": _STR, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                           "bytes": _INT}}},
    },
}


def _field(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def check_document(data: Any, schema: dict, source: str | os.PathLike) -> Any:
    """Return ``data`` if it matches ``schema``; else raise InvalidArtifactError naming ``source`` and the field."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is None:
        return data
    message = error.message if len(error.message) <= 120 else error.message[:117] + "..."
    raise InvalidArtifactError(f"{source}: field {_field(error.absolute_path)}: {message}; the file is damaged or "
                               "was edited - regenerate it with resvit-export")


def read_json_document(path: str | os.PathLike, schema: dict) -> Any:
    """Read a JSON file and check it against ``schema`` (InvalidArtifactError, one line, on any problem)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidArtifactError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidArtifactError(f"{path} is not valid JSON ({str(err).splitlines()[0]}); regenerate it "
                                   "with resvit-export") from None
    return check_document(data, schema, path)
