"""PyTorch -> dynamic-axis ONNX with ``torch.onnx.export(dynamo=True)``, proven not to narrow the size range.

Design decisions (see also research tensorrt.md §5):

* Dims are declared with named ``torch.export.Dim`` objects, so the ONNX ``dim_param`` values are exactly
  ``batch``, ``height``, ``width`` (and ``seqs``, ``tokens``, ``images`` for packed NaViT); if an exporter
  version names them differently, the graph inputs/outputs are renamed before saving.
* Batch is always dynamic, ``Dim("batch", min=1)`` with **no upper bound**, even for a profile whose batch is
  fixed at 1. ONNX cannot store bounds anyway, the models are batch-independent, and a bounded batch would
  only let the exporter specialize on it silently. The range check still requires the exported batch range
  to cover the profile's batch range. The TensorRT profile (not the ONNX) fixes the engine's batch range.
* The example input has batch 2 (never 0/1, which torch.export specializes) and a *non-square* size inside
  the range (height = resolved opt, width = a different patch multiple), so height and width can never be
  tied to each other or to a constant by duck-sizing.
* Output is written atomically: a temp directory next to the target, ``onnx.checker`` (full check) and
  shape inference there, then the ``.onnx.data`` sidecar (when weights are external: >1.8 GB, or asked
  for) and finally the ``.onnx`` are renamed into place. A failed export leaves nothing that looks complete.
* The exporter's chatter (progress lines, warnings, torch logging) is captured at file-descriptor level and
  shown only on failure (in the error) or with ``verbose=True``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch

from resvit_export import __version__
from resvit_export.errors import ExportError, RangeNarrowedError
from resvit_export.io import atomic_path, sha256_file
from resvit_export.profiles import BatchRange, ResolutionProfile

from .range_check import DimRequest, check_export, check_onnx_dims, rename_onnx_dims

__all__ = ["ExportResult", "export_onnx", "export_packed_navit", "union_profile", "captured_output",
           "INPUT_NAME", "OUTPUT_NAME", "PACKED_INPUT_NAMES", "EXTERNAL_DATA_THRESHOLD"]

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"
PACKED_INPUT_NAMES = ("patches", "coords", "grid_hw", "image_ids", "image_valid")
EXTERNAL_DATA_THRESHOLD = int(1.8 * 2**30)  # below protobuf's 2 GiB limit with headroom for the graph
_LOG_TAIL = 1500


@dataclass
class ExportResult:
    """What an export produced. Paths are final (already renamed into place)."""

    onnx_path: Path
    data_path: Path | None  # external-data sidecar, if written
    input_names: list[str]
    output_names: list[str]
    requested: dict[str, list]  # dim -> [min, max] (max None = unbounded)
    range_constraints: dict[str, list]  # dim -> [lo, hi] as exported (hi None = unbounded)
    opset: int
    seconds: float
    onnx_sha256: str
    metadata: dict[str, str] = field(default_factory=dict)
    log: str = ""  # the exporter's captured output
    assumptions: list[str] = field(default_factory=list)  # e.g. "images != 1" (torch's size-oblivious broadcast)

    def to_dict(self) -> dict:
        return {
            "onnx": self.onnx_path.name,
            "onnx_data": self.data_path.name if self.data_path else None,
            "onnx_sha256": self.onnx_sha256,
            "input_names": list(self.input_names),
            "output_names": list(self.output_names),
            "requested_ranges": self.requested,
            "range_constraints": self.range_constraints,
            "range_assumptions": list(self.assumptions),
            "opset": self.opset,
            "seconds": round(self.seconds, 3),
        }


# -- quiet exporter ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def captured_output(verbose: bool = False) -> Iterator[io.StringIO]:
    """Capture everything the exporter prints (stdout/stderr at fd level, warnings, torch logging).

    Yields a StringIO that holds the text after the block (also when it raised). With ``verbose`` nothing
    is captured and the text passes through.
    """
    buf = io.StringIO()
    if verbose:
        yield buf
        return
    saved_fds = []
    tmp = tempfile.TemporaryFile(mode="w+b")
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        with contextlib.suppress(Exception):
            stream.flush()
        try:
            saved_fds.append((fd, os.dup(fd)))
            os.dup2(tmp.fileno(), fd)
        except OSError:  # no real fd (embedded interpreter): Python-level capture only
            pass
    old_out, old_err = sys.stdout, sys.stderr
    py_buf = io.StringIO()
    sys.stdout = sys.stderr = py_buf
    # torch/onnxscript logging handlers keep the stream they were created with (maybe a CliRunner or pytest
    # stream, which the fd redirect does not reach): point every stream handler at the buffer meanwhile.
    swapped = []
    loggers = [logging.getLogger()] + [lg for name, lg in logging.Logger.manager.loggerDict.items()
                                       if isinstance(lg, logging.Logger)
                                       and name.split(".")[0] in ("torch", "onnxscript", "onnx_ir", "onnx")]
    for lg in loggers:
        for h in lg.handlers:
            if type(h) is logging.StreamHandler or (isinstance(h, logging.StreamHandler)
                                                    and not isinstance(h, logging.FileHandler)):
                # Save the stream itself: setStream() returns None when unchanged, and handlers that
                # override it (pytest 9.2's LogCaptureHandler) need not return the old stream at all.
                swapped.append((h, h.stream))
                h.setStream(py_buf)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield buf
            finally:
                for w in caught:
                    py_buf.write(f"{w.category.__name__}: {w.message}\n")
    finally:
        for h, old_stream in swapped:
            with contextlib.suppress(Exception):
                h.setStream(old_stream)
            if h.stream is not old_stream:
                h.stream = old_stream
        sys.stdout, sys.stderr = old_out, old_err
        for fd, saved in reversed(saved_fds):
            with contextlib.suppress(Exception):
                os.dup2(saved, fd)
                os.close(saved)
        tmp.seek(0)
        fd_text = tmp.read().decode("utf-8", "replace")
        tmp.close()
        buf.write(fd_text + py_buf.getvalue())


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    tail = " / ".join(lines[-6:])
    return tail[-_LOG_TAIL:]


# -- profile helpers --------------------------------------------------------------------------------------------
def union_profile(profiles: Sequence[ResolutionProfile]) -> ResolutionProfile:
    """One profile covering all: min of mins, max of maxes (per side), batch range likewise.

    The opt point is kept only when a single profile is given.
    """
    if not profiles:
        raise ValueError("union_profile needs at least one profile")
    if len(profiles) == 1:
        return profiles[0]
    lo = (min(p.min[0] for p in profiles), min(p.min[1] for p in profiles))
    hi = (max(p.max[0] for p in profiles), max(p.max[1] for p in profiles))
    bmin = min(p.batch.min for p in profiles)
    bmax = max(p.batch.max for p in profiles)
    bopt = min(max(profiles[0].batch.opt, bmin), bmax)
    return ResolutionProfile(lo, hi, None, BatchRange(bmin, bopt, bmax))


def _example_hw(profile: ResolutionProfile, patch: int) -> tuple[int, int]:
    """Example size for tracing: inside the range, non-square and *not* a multiple of the patch size.

    A multiple of the patch makes the tracer take shortcuts that only hold for multiples (e.g. the floor-rule
    crop ``x[..., :gh*p]`` becomes a no-op and is guarded by ``W % p == 0``), which the range check then
    rightly rejects. Odd, non-multiple sizes trace the general path.
    """
    oh, ow = profile.resolved_opt(patch)

    def pick(opt, lo, hi, offsets):
        for off in offsets:
            v = opt + off
            if lo <= v <= hi and v % patch and v % 2:
                return v
        return min(max(opt, lo), hi)

    h = pick(oh, profile.min[0], profile.max[0], (3, -3, 5, -5, 1, -1, 7, -7))
    w = pick(ow, profile.min[1], profile.max[1], (patch + 5, -patch - 5, patch + 3, -patch - 3, 9, -9, 11, -11))
    if h == w:
        w = pick(ow, profile.min[1], profile.max[1], (13, -13, 15, -15, 17, -17))
    return h, w


# -- core -------------------------------------------------------------------------------------------------------
def _metadata(model, extra: dict | None = None) -> dict[str, str]:
    rule = getattr(model, "size_rule", None)
    inner = getattr(model, "model", None)  # PackedNaViT wraps a NaViT
    if rule is None and inner is not None:
        rule = getattr(inner, "size_rule", None)
    base = inner if (inner is not None and not hasattr(model, "family")) else model
    meta = {
        "resvit_export.model": str(getattr(base, "model_name", type(base).__name__)),
        "resvit_export.family": str(getattr(base, "family", "") or ""),
        "resvit_export.version": __version__,
        "resvit_export.torch": torch.__version__.split("+")[0],
    }
    if rule is not None:
        meta.update({
            "resvit_export.patch_size": str(rule.patch_size),
            "resvit_export.min_side": str(rule.min_side),
            "resvit_export.max_side": str(rule.max_side),
        })
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    return meta


def _write_onnx(onnx_program, out_path: Path, external_data: bool | None) -> tuple[Path | None, object]:
    """Save, check, shape-infer in a temp dir next to ``out_path``; rename data then ONNX into place."""
    import onnx

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    data_final = out_path.with_name(out_path.name + ".data")
    tmpdir = Path(tempfile.mkdtemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmpdir"))
    try:
        tmp_onnx = tmpdir / out_path.name
        size = sum(v.const_value.nbytes for v in onnx_program.model.graph.initializers.values()
                   if v.const_value is not None)
        use_external = bool(external_data) if external_data is not None else size > EXTERNAL_DATA_THRESHOLD
        onnx_program.save(tmp_onnx, external_data=use_external)
        tmp_data = tmpdir / data_final.name
        wrote_data = tmp_data.exists()
        try:
            onnx.checker.check_model(str(tmp_onnx), full_check=True)
            onnx.shape_inference.infer_shapes_path(str(tmp_onnx), str(tmp_onnx), strict_mode=True, data_prop=True)
        except Exception as err:  # onnx raises ValidationError / InferenceError / RuntimeError
            raise ExportError(f"exported ONNX failed onnx.checker/shape inference: {str(err).strip().splitlines()[0]}") from err
        proto = onnx.load(str(tmp_onnx), load_external_data=False)
        if wrote_data:
            with atomic_path(data_final) as tmp:
                os.replace(tmp_data, tmp)
        elif data_final.exists():
            data_final.unlink()  # a stale sidecar from an earlier export would be wrong
        with atomic_path(out_path) as tmp:
            os.replace(tmp_onnx, tmp)
        return (data_final if wrote_data else None), proto
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _run_export(model, args: tuple, dynamic_shapes, input_names, output_names, requests: list[DimRequest],
                out_path, opset: int, metadata: dict, verbose: bool, external_data: bool | None) -> ExportResult:
    started = time.monotonic()
    model = model.eval()
    onnx_program = None
    with captured_output(verbose) as log:
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                onnx_program = torch.onnx.export(
                    model, args, dynamo=True, opset_version=opset, dynamic_shapes=dynamic_shapes,
                    input_names=list(input_names), output_names=list(output_names), verbose=False,
                    report=False, optimize=True,
                )
        except Exception as err:  # the exporter raises many types; all mean "export failed"
            failure = err
        else:
            failure = None
    text = log.getvalue()
    if failure is not None:
        first = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
        raise ExportError(f"torch.onnx.export failed: {type(failure).__name__}: {first} (exporter log tail: "
                          f"{_tail(text)})") from failure
    if onnx_program is None:
        raise ExportError("torch.onnx.export returned nothing")
    ir_model = onnx_program.model
    # Rename symbolic dims if this exporter version did not use our Dim names.
    rename = {}
    for value in ir_model.graph.inputs:
        for req in requests:
            for inp, axis in req.axes:
                if inp == value.name and value.shape is not None and axis < len(value.shape):
                    d = value.shape[axis]
                    name = getattr(d, "value", None)
                    if isinstance(name, str) and name != req.name:
                        rename[name] = req.name
    rename_onnx_dims(ir_model, requests, rename)
    for key, val in metadata.items():
        ir_model.metadata_props[key] = val
    # Range check before anything is written: a narrowed graph must never look like a finished artifact.
    try:
        assumptions: list[str] = []
        exported = check_export(onnx_program, ir_model, requests, input_names, assumptions)
    except RangeNarrowedError as err:
        hint = ""
        for line in text.splitlines():
            if "generated guard" in line or "specialized value" in line:
                hint = f" (exporter said: {line.strip()[:300]})"
                break
        raise RangeNarrowedError(f"{err}{hint}") from None
    data_path, proto = _write_onnx(onnx_program, Path(out_path), external_data)
    check_onnx_dims(proto, requests)  # (b) again on the file as written
    return ExportResult(
        onnx_path=Path(out_path),
        data_path=data_path,
        input_names=list(input_names),
        output_names=list(output_names),
        requested={r.name: [r.min, r.max] for r in requests},
        range_constraints=exported,
        opset=opset,
        seconds=time.monotonic() - started,
        onnx_sha256=sha256_file(out_path),
        metadata=dict(metadata),
        log=text,
        assumptions=sorted(set(assumptions)),
    )


def export_onnx(model: torch.nn.Module, out_path, profile: ResolutionProfile, opset: int = 18, *,
                verbose: bool = False, external_data: bool | None = None,
                metadata: dict | None = None) -> ExportResult:
    """Export ``model`` ([B,3,H,W] -> logits) to ONNX with dynamic batch/height/width over ``profile``.

    Input ``pixels`` [batch, 3, height, width], output ``logits`` [batch, classes]. Height and width are
    dynamic over [profile.min, profile.max]; batch over [1, inf) (see module docstring). After export the
    range check runs (:mod:`.range_check`); on success the file is checked, shape-inferred and written
    atomically, with metadata_props: model, family, patch_size, min/max side, profile, version.

    Raises:
        InputSizeError: the profile leaves the model's SizeRule.
        ExportError: the exporter failed or the ONNX fails onnx.checker.
        RangeNarrowedError: the exporter narrowed or specialized a dim (nothing is written then).
    """
    rule = getattr(model, "size_rule", None)
    patch = rule.patch_size if rule is not None else 16
    if rule is not None:
        profile.check_against(rule)
    batch = torch.export.Dim("batch", min=1)
    height = torch.export.Dim("height", min=profile.min[0], max=profile.max[0])
    width = torch.export.Dim("width", min=profile.min[1], max=profile.max[1])
    h, w = _example_hw(profile, patch)
    channels = rule.channels if rule is not None else 3
    x = torch.randn(2, channels, h, w, generator=torch.Generator().manual_seed(0))
    requests = [
        DimRequest("batch", profile.batch.min, profile.batch.max, ((INPUT_NAME, 0),)),
        DimRequest("height", profile.min[0], profile.max[0], ((INPUT_NAME, 2),)),
        DimRequest("width", profile.min[1], profile.max[1], ((INPUT_NAME, 3),)),
    ]
    meta = _metadata(model, {"resvit_export.profile": str(profile),
                             "resvit_export.input": f"{INPUT_NAME}[batch,{channels},height,width]",
                             **(metadata or {})})
    return _run_export(model, (x,), ({0: batch, 2: height, 3: width},), [INPUT_NAME], [OUTPUT_NAME], requests,
                       out_path, opset, meta, verbose, external_data)


def export_packed_navit(model: torch.nn.Module, out_path, opset: int = 18, *, verbose: bool = False,
                        external_data: bool | None = None, metadata: dict | None = None) -> ExportResult:
    """Export ``models.navit.PackedNaViT`` (or a NaViT, which gets wrapped) with dynamic seqs/tokens/images.

    Inputs (names = the PackedNaViT argument names): patches [seqs, tokens, P*P*3] float, coords
    [seqs, tokens, 2] int64, grid_hw [seqs, tokens, 2] int64, image_ids [seqs, tokens] int64,
    image_valid [seqs, images] bool; output ``logits`` [seqs, images, classes]. All three dims are dynamic over
    [1, inf); the example packs 3+1 images of different aspect ratios into 2 sequences of 31 tokens, so no
    dim is 0/1 or equal to another.
    """
    from resvit_export.models.navit import NaViT, PackedNaViT, pack_images

    if isinstance(model, NaViT):
        model = PackedNaViT(model)
    if not isinstance(model, PackedNaViT):
        raise ExportError(f"export_packed_navit needs a NaViT or PackedNaViT, got {type(model).__name__}")
    p = model.model.cfg.patch_size
    gen = torch.Generator().manual_seed(0)
    # token counts 12, 15, 4 (one sequence of 31) and 24 (second sequence): S=2, N=31, E=3
    sizes = [(4 * p, 3 * p), (3 * p, 5 * p), (2 * p, 2 * p), (6 * p, 4 * p)]
    images = [torch.randn(3, hh, ww, generator=gen) for hh, ww in sizes]
    batch = pack_images(images, patch_size=p, max_seq_len=31)
    args = batch.inputs()
    seqs, tokens, slots = (torch.export.Dim("seqs", min=1), torch.export.Dim("tokens", min=1),
                           torch.export.Dim("images", min=1))
    dyn = ({0: seqs, 1: tokens}, {0: seqs, 1: tokens}, {0: seqs, 1: tokens}, {0: seqs, 1: tokens},
           {0: seqs, 1: slots})
    names = list(PACKED_INPUT_NAMES)
    requests = [
        DimRequest("seqs", 1, None, tuple((n, 0) for n in names)),
        DimRequest("tokens", 1, None, tuple((n, 1) for n in names[:4])),
        DimRequest("images", 1, None, (("image_valid", 1),)),
    ]
    meta = _metadata(model, {"resvit_export.entry": "packed",
                             "resvit_export.input": "patches[seqs,tokens,P*P*3],coords[seqs,tokens,2],"
                                                    "grid_hw[seqs,tokens,2],image_ids[seqs,tokens],"
                                                    "image_valid[seqs,images]",
                             **(metadata or {})})
    return _run_export(model, args, dyn, names, [OUTPUT_NAME], requests, out_path, opset, meta, verbose,
                       external_data)
