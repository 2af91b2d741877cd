"""The export record (``export.json`` next to the ONNX) and recreating the PyTorch reference from it.

The record holds everything needed to rebuild the exact reference model the ONNX came from (name, config
overrides, seed, weights file + sha256), the profiles the graph was exported for, and the proof data
(requested vs exported ranges). ``validate`` uses :func:`load_reference_model`.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Sequence

from resvit_export import __version__
from resvit_export.errors import CheckpointError, InvalidArtifactError
from resvit_export.io import sha256_file, write_json_atomic
from resvit_export.profiles import ResolutionProfile, profile_from_dict  # noqa: F401 - re-exported

__all__ = ["RECORD_NAME", "RECORD_SCHEMA", "build_record", "write_record", "write_export_record", "read_record",
           "load_reference_model", "profile_from_dict"]

RECORD_NAME = "export.json"
RECORD_SCHEMA = 1


def build_record(result, *, model: str, family: str, overrides: dict | None = None, seed: int | None = 0,
                 weights: str | os.PathLike | None = None, profiles: Sequence[ResolutionProfile] = (),
                 entry: str = "image", extra: dict | None = None) -> dict[str, Any]:
    """The export.json dict for an :class:`~resvit_export.export.ExportResult`."""
    import onnx
    import torch

    weights_path = Path(weights).resolve() if weights else None
    rec = {
        "schema": RECORD_SCHEMA,
        "resvit_export": __version__,
        "model": model,
        "family": family,
        "entry": entry,  # "image": forward(pixels) ; "packed": PackedNaViT
        "overrides": {k: v for k, v in (overrides or {}).items()},
        "seed": seed,
        "weights": str(weights_path) if weights_path else None,
        "weights_sha256": sha256_file(weights_path) if weights_path else None,
        "profiles": [p.to_dict() for p in profiles],
        "profile_strings": [str(p) for p in profiles],
        **result.to_dict(),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "python": platform.python_version()},
    }
    if extra:
        rec.update(extra)
    return rec


def write_record(export_dir: str | os.PathLike, record: dict) -> Path:
    """Write ``export.json`` atomically into ``export_dir``."""
    return write_json_atomic(Path(export_dir) / RECORD_NAME, record)


def write_export_record(export_dir: str | os.PathLike, result, *, model_name: str, overrides: dict | None = None,
                        seed: int | None = 0, weights: str | os.PathLike | None = None,
                        profiles: Sequence[ResolutionProfile] = (), opset: int | None = None,
                        entry: str | None = None, extra: dict | None = None) -> Path:
    """build_record + write_record in one call (the pipeline's form); family comes from the registry.

    ``opset`` is taken from ``result`` (it is what the file holds); a different value is a caller bug.
    """
    from resvit_export.models import get_entry

    if opset is not None and opset != result.opset:
        raise ValueError(f"write_export_record: opset {opset} differs from the exported opset {result.opset}")
    if entry is None:
        entry = "packed" if result.input_names and result.input_names[0] == "patches" else "image"
    rec = build_record(result, model=model_name, family=get_entry(model_name).family, overrides=overrides,
                       seed=seed, weights=weights, profiles=profiles, entry=entry, extra=extra)
    return write_record(export_dir, rec)


def read_record(export_dir: str | os.PathLike) -> dict:
    """Read and sanity-check ``export.json`` (InvalidArtifactError with a one-line message otherwise)."""
    path = Path(export_dir)
    if path.is_file():
        path = path.parent if path.name != RECORD_NAME else path
        if path.is_dir():
            path = path / RECORD_NAME
    else:
        path = path / RECORD_NAME
    if not path.is_file():
        raise InvalidArtifactError(f"{path} is missing; is {path.parent} an export directory "
                                   f"(made by `resvit-export export`)?")
    from resvit_export.schemas import EXPORT_RECORD, read_json_document

    return read_json_document(path, EXPORT_RECORD)


def _check_onnx(export_dir: Path, rec: dict) -> Path:
    onnx_path = export_dir / str(rec["onnx"])
    if not onnx_path.is_file():
        raise InvalidArtifactError(f"ONNX file {onnx_path} named in {RECORD_NAME} is missing")
    digest = sha256_file(onnx_path)
    if digest != rec["onnx_sha256"]:
        raise InvalidArtifactError(f"{onnx_path.name} sha256 {digest[:12]}… does not match {RECORD_NAME} "
                                   f"({str(rec['onnx_sha256'])[:12]}…); the file was changed after export")
    import onnx

    try:
        onnx.load(str(onnx_path), load_external_data=False)
    except Exception as err:  # protobuf DecodeError and friends
        raise InvalidArtifactError(f"{onnx_path} is not a readable ONNX model ({type(err).__name__})") from None
    return onnx_path


def load_reference_model(export_dir: str | os.PathLike, *, check_onnx: bool = True):
    """Recreate the PyTorch reference an export came from: ``(model, record)``.

    ``create_model(name, seed=seed, **overrides)`` then ``load_weights`` when a weights file was used (its
    sha256 must match the record). For a packed-NaViT export the model is wrapped in ``PackedNaViT``.

    Raises:
        InvalidArtifactError: export.json missing/corrupt, ONNX missing/not ONNX/changed since export.
        CheckpointError: the weights file is gone or differs from the one used at export.
    """
    from resvit_export.models import create_model, load_weights

    export_dir = Path(export_dir)
    rec = read_record(export_dir)
    if check_onnx:
        _check_onnx(export_dir, rec)
    model = create_model(rec["model"], seed=rec.get("seed"), **(rec.get("overrides") or {}))
    if rec.get("weights"):
        wpath = Path(rec["weights"])
        if not wpath.is_file():
            raise CheckpointError(f"weights file {wpath} used for this export no longer exists")
        digest = sha256_file(wpath)
        if rec.get("weights_sha256") and digest != rec["weights_sha256"]:
            raise CheckpointError(f"weights file {wpath} changed since export (sha256 {digest[:12]}… vs "
                                  f"{str(rec['weights_sha256'])[:12]}… in {RECORD_NAME})")
        load_weights(model, wpath)
    if rec.get("entry") == "packed":
        from resvit_export.models.navit import PackedNaViT

        model = PackedNaViT(model).eval()
    return model, rec
