"""Multi-resolution INT8 calibration: the calibration set, the cached activation ranges, the TensorRT cache.

Activation ranges of a ViT shift with the token count (NVIDIA/Model-Optimizer#565), so one calibration set holds
the *same* images at several resolutions (by default the profile's min, opt and max) and ranges are collected
over all of them.

Files (all generated; see calibration/README.md):

    calibration/<name>/calib.npz       one array per resolution, key ``x_<H>x<W>``: [N, 3, H, W] float32,
                                       ImageNet-normalised model inputs
    calibration/<name>/calib.json      sidecar: name, resolutions, count, source, sha256 (of the array contents,
                                       not of the zip file, so it is stable across numpy versions/time stamps)
    calibration/cache/<onnx>-<set>-<method>.json
                                       activation ranges keyed by (ONNX sha256, calibration-set sha256, method);
                                       a later run with the same key reuses them and logs "cache hit"
    <out>/calib.cache                  the ranges as a TensorRT calibration cache (classic TRT<=10 implicit INT8)

The TensorRT cache text is ``TRT-<version>-EntropyCalibration2`` then one ``tensor: <hex>`` line per tensor, the
hex being the big-endian IEEE-754 float32 of scale = amax / 127. It was NOT executed against TensorRT here (no
TensorRT on this machine); TensorRT 11 removed implicit calibration entirely -- use the Q/DQ ONNX from
:func:`resvit_export.precision.int8.make_int8_onnx` there.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from resvit_export.errors import InvalidArtifactError, UsageError
from resvit_export.io import atomic_path, sha256_file, write_json_atomic
from resvit_export.profiles import parse_sizes

from .policy import INT8_OP_TYPES

__all__ = [
    "CALIB_METHODS",
    "CalibrationSet",
    "CalibrationRanges",
    "parse_resolutions",
    "resolutions_from_profile",
    "calibration_resolutions",
    "calibration_set_for_build",
    "BUILTIN_CALIB",
    "parse_calib_data",
    "onnx_sha256",
    "compute_ranges",
    "write_trt_calibration_cache",
    "read_trt_calibration_cache",
    "trt_version_number",
]

log = logging.getLogger(__name__)

CALIB_METHODS = ("entropy", "minmax", "percentile")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
ARRAY_SUFFIXES = (".npy", ".npz")
_KEY_RE = re.compile(r"^x_(\d+)x(\d+)$")
NO_DATA_HINT = "INT8 needs calibration data: pass --calib-data DIR or --calib-synthetic N"
# `--calib-data builtin`: the permissively licensed photos installed wheels ship (resvit_export.data.photos)
BUILTIN_CALIB = "builtin"


def parse_calib_data(text: str | os.PathLike) -> str | Path:
    """``--calib-data``: the word ``builtin`` (the shipped photos) or a path that exists (folder or calib.npz)."""
    if str(text) == BUILTIN_CALIB:
        return BUILTIN_CALIB
    path = Path(text)
    if not path.exists():
        raise UsageError(f"--calib-data {path} does not exist (give a folder, a calib.npz, or 'builtin')")
    return path


# ------------------------------------------------------------------------------------------ resolutions

def parse_resolutions(text: str | Iterable) -> list[tuple[int, int]]:
    """'224,512,1024' or '224x320,512' -> [(224, 224), ...]; also accepts a list of ints/pairs.

    Strings go through the one size-list parser (:func:`resvit_export.profiles.parse_sizes`); calibration
    adds its own floor of 16 px per side.
    """
    if isinstance(text, str):
        items: list = parse_sizes(text)
    else:
        items = [(int(i[0]), int(i[1])) if isinstance(i, (tuple, list)) else (int(i), int(i)) for i in text]
    out: list[tuple[int, int]] = []
    for hw in items:
        if hw[0] < 16 or hw[1] < 16:
            raise UsageError(f"calibration resolution {hw[0]}x{hw[1]} is too small (sides must be >= 16 px)")
        if hw not in out:
            out.append(hw)
    if not out:
        raise UsageError("no calibration resolutions given; use e.g. --calib-resolutions 224,512,1024")
    return out


def resolutions_from_profile(profile, patch_size: int = 16) -> list[tuple[int, int]]:
    """The profile's min, opt (planner's choice when unset) and max: where TensorRT will actually run."""
    pts = [tuple(profile.min), tuple(profile.resolved_opt(patch_size)), tuple(profile.max)]
    return list(dict.fromkeys(pts))


# Calibration runs the augmented FP32 graph on CPU and holds every calibrated activation of one batch at once;
# attention probabilities grow with tokens squared (DeiT-S at 1792 px: ~3.8 GB per layer per image), so sizes
# above this are calibrated at this size instead (logged). Raise it where the machine has the memory.
MAX_CALIB_SIDE = 1024


def calibration_resolutions(profiles, size_rule=None, max_side: int = MAX_CALIB_SIDE) -> list[tuple[int, int]]:
    """min/opt/max of every profile (patch-aligned opt), clamped to ``max_side`` keeping the aspect ratio."""
    patch = getattr(size_rule, "patch_size", 16) or 16
    out: list[tuple[int, int]] = []
    for p in profiles:
        for h, w in resolutions_from_profile(p, patch):
            if max(h, w) > max_side:
                s = max_side / max(h, w)
                hw = (max(patch, int(h * s) // patch * patch), max(patch, int(w * s) // patch * patch))
                log.warning("calibrating %dx%d at %dx%d (MAX_CALIB_SIDE=%d bounds calibration memory)",
                            h, w, *hw, max_side)
                h, w = hw
            if size_rule is not None:
                h, w = max(h, size_rule.min_side), max(w, size_rule.min_side)
            if (h, w) not in out:
                out.append((h, w))
    return out


def calibration_set_for_build(profiles, size_rule, *, calib_data: str | os.PathLike | None = None,
                              calib_synthetic: int | None = None, seed: int = 0) -> "CalibrationSet":
    """The calibration set for ``build --int8``: ``calib_data`` (a folder, or a saved calib.npz) or
    ``calib_synthetic`` (N images) at the profiles' min/opt/max (see :func:`calibration_resolutions`).
    Neither, or both -> UsageError (``build`` checks this before any work; see resvit_export.preflight)."""
    if calib_data is not None and calib_synthetic is not None:
        raise UsageError("--calib-data and --calib-synthetic conflict: pass one of them")
    if calib_data is None and calib_synthetic is None:
        raise UsageError(NO_DATA_HINT)
    res = calibration_resolutions(profiles or [], size_rule)
    if not res:
        raise UsageError("INT8 calibration needs at least one --profile to pick calibration resolutions")
    if str(calib_data) == BUILTIN_CALIB:
        return CalibrationSet.builtin(res)
    if calib_data is not None:
        data = Path(calib_data)
        if data.is_file() and data.suffix == ".npz" and data.name == "calib.npz":
            return CalibrationSet.load(data)
        if data.is_file():
            raise UsageError(f"--calib-data {data} must be a folder of images/arrays or a saved calib.npz")
        return CalibrationSet.from_folder(data, res)
    return CalibrationSet.synthetic(int(calib_synthetic), res, seed=seed or 0)


# ------------------------------------------------------------------------------------------ hashing

def onnx_sha256(path: str | os.PathLike) -> str:
    """sha256 over the ONNX file *and* its external-data files (weights live there for the dynamo exporter)."""
    import onnx

    path = Path(path)
    h = hashlib.sha256(sha256_file(path).encode())
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001
        raise InvalidArtifactError(f"{path} is not a readable ONNX model ({err})") from err
    locations = sorted({e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"})
    for loc in locations:
        f = path.parent / loc
        if not f.is_file():
            raise InvalidArtifactError(f"{path} references external data {loc} that does not exist next to it")
        h.update(loc.encode() + sha256_file(f).encode())
    return h.hexdigest()


def _arrays_sha256(arrays: dict[tuple[int, int], np.ndarray]) -> str:
    h = hashlib.sha256()
    for (hh, ww) in sorted(arrays):
        a = np.ascontiguousarray(arrays[(hh, ww)], dtype=np.float32)
        h.update(f"x_{hh}x{ww}|{a.shape}|float32|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ the set

def _normalise(img01: np.ndarray) -> np.ndarray:
    """[..., 3, H, W] in [0, 1] -> ImageNet-normalised float32."""
    from resvit_export.validate.inputs import IMAGENET_MEAN, IMAGENET_STD

    return ((img01 - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]).astype(np.float32)


def _resize_chw(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize [N, C, H0, W0] float32 to [N, C, h, w] (bilinear, antialiased when shrinking)."""
    import torch
    import torch.nn.functional as F

    if x.shape[-2:] == (h, w):
        return x.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True).numpy()


def _load_array_file(f: Path) -> list[np.ndarray]:
    """An .npy/.npz file -> list of [N, 3, H, W] float32 *normalised* arrays.

    uint8 data is raw pixels (HWC, NHWC, CHW or NCHW; 0..255) and gets normalised; float data is taken to be
    model input already (NCHW or CHW, ImageNet-normalised) and is only resized.
    """
    try:
        if f.suffix == ".npz":
            with np.load(f) as z:
                arrays = [z[k] for k in z.files]
        else:
            arrays = [np.load(f)]
    except Exception as err:  # noqa: BLE001
        raise UsageError(f"cannot read calibration array file {f}: {err}") from err
    out = []
    for a in arrays:
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4:
            raise UsageError(f"{f}: array of shape {a.shape} is not an image batch (N,3,H,W / N,H,W,3 / 3,H,W)")
        if a.shape[1] != 3 and a.shape[-1] == 3:
            a = a.transpose(0, 3, 1, 2)
        if a.shape[1] != 3:
            raise UsageError(f"{f}: array of shape {a.shape} has no 3-channel axis")
        if a.dtype == np.uint8:
            a = _normalise(a.astype(np.float32) / 255.0)
        out.append(a.astype(np.float32))
    return out


@dataclass
class CalibrationSet:
    """The same calibration images at several resolutions: ``arrays[(H, W)]`` is [N, 3, H, W] float32."""

    name: str
    arrays: dict[tuple[int, int], np.ndarray]
    source: dict = field(default_factory=dict)
    _sha: str | None = field(default=None, repr=False)

    def __post_init__(self):
        counts = {a.shape[0] for a in self.arrays.values()}
        if not self.arrays or 0 in counts:
            raise UsageError(f"calibration set {self.name!r} is empty; {NO_DATA_HINT}")
        if len(counts) != 1:
            raise UsageError(f"calibration set {self.name!r} has different image counts per resolution: {counts}")

    @property
    def resolutions(self) -> list[tuple[int, int]]:
        return sorted(self.arrays, key=lambda hw: (hw[0] * hw[1], hw))

    @property
    def count(self) -> int:
        return next(iter(self.arrays.values())).shape[0]

    @property
    def sha256(self) -> str:
        if self._sha is None:
            self._sha = _arrays_sha256(self.arrays)
        return self._sha

    def batches(self, batch_size: int = 4) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
        """(resolution, [b, 3, H, W]) batches, one resolution at a time (smallest first)."""
        for hw in self.resolutions:
            a = self.arrays[hw]
            for i in range(0, a.shape[0], batch_size):
                yield hw, a[i:i + batch_size]

    def sidecar(self) -> dict:
        return {"name": self.name, "resolutions": [list(hw) for hw in self.resolutions], "count": self.count,
                "source": self.source, "sha256": self.sha256, "dtype": "float32", "layout": "NCHW",
                "normalisation": "ImageNet mean/std"}

    # --- constructors ---------------------------------------------------------------------------------

    @classmethod
    def synthetic(cls, n: int, resolutions: Sequence[tuple[int, int]], seed: int = 0,
                  name: str = "synthetic") -> "CalibrationSet":
        """Deterministic real-image-like images (validate.inputs.synthetic_images), one seed per resolution."""
        from resvit_export.validate.inputs import synthetic_images

        if int(n) < 1:
            raise UsageError(f"--calib-synthetic needs at least 1 image, got {n}")
        arrays = {tuple(hw): synthetic_images(int(n), hw[0], hw[1], seed) for hw in parse_resolutions(resolutions)}
        return cls(name, arrays, {"kind": "synthetic", "generator": "resvit_export.validate.inputs.synthetic_images",
                                  "n": int(n), "seed": seed})

    @classmethod
    def builtin(cls, resolutions: Sequence[tuple[int, int]], name: str = "builtin-photos") -> "CalibrationSet":
        """The builtin photographs (resvit_export.data.photos: nine CC0/public-domain photos shipped inside
        scikit-image and matplotlib) at every resolution, aspect kept by a centre crop."""
        from resvit_export.data.photos import BUILTIN_PHOTOS, builtin_photos

        arrays = {tuple(hw): builtin_photos(hw[0], hw[1]) for hw in parse_resolutions(resolutions)}
        return cls(name, arrays, {"kind": "builtin photos", "module": "resvit_export.data.photos",
                                  "photos": {p.name: p.licence for p in BUILTIN_PHOTOS}})

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, resolutions: Sequence[tuple[int, int]],
                    limit: int | None = None, name: str | None = None) -> "CalibrationSet":
        """Images (PNG/JPEG/... via Pillow) and/or .npy/.npz arrays from ``folder`` (sorted, recursive),
        each resized to every resolution and ImageNet-normalised."""
        folder = Path(folder)
        if not folder.is_dir():
            raise UsageError(f"--calib-data {folder} is not a directory; {NO_DATA_HINT}")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + ARRAY_SUFFIXES)
        if not files:
            raise UsageError(f"--calib-data {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) "
                             f"or arrays (.npy/.npz)")
        res = parse_resolutions(resolutions)
        per_res: dict[tuple[int, int], list[np.ndarray]] = {hw: [] for hw in res}
        used: list[str] = []
        total = 0
        for f in files:
            if limit is not None and total >= limit:
                break
            if f.suffix.lower() in ARRAY_SUFFIXES:
                batches = _load_array_file(f)
            else:
                batches = [cls._read_image(f)]
            for b in batches:
                if limit is not None:
                    b = b[: max(limit - total, 0)]
                if not len(b):
                    continue
                total += b.shape[0]
                for hw in res:
                    per_res[hw].append(_resize_chw(b, *hw))
            used.append(str(f.relative_to(folder)))
        arrays = {hw: np.concatenate(v) for hw, v in per_res.items()}
        return cls(name or folder.name, arrays, {"kind": "folder", "path": str(folder), "files": len(used),
                                                 "first_files": used[:5]})

    @staticmethod
    def _read_image(f: Path) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(f) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        except Exception as err:  # noqa: BLE001 - Pillow raises many types
            raise UsageError(f"cannot read calibration image {f}: {err}") from err
        return _normalise(rgb.transpose(2, 0, 1))[None]

    # --- persistence ----------------------------------------------------------------------------------

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write ``calib.npz`` and the ``calib.json`` sidecar into ``out_dir`` (atomically); return the npz."""
        out_dir = Path(out_dir)
        npz = out_dir / "calib.npz"
        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{f"x_{h}x{w}": self.arrays[(h, w)] for (h, w) in self.resolutions})
        write_json_atomic(out_dir / "calib.json", self.sidecar())
        return npz

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CalibrationSet":
        """Load a saved set (its directory or its calib.npz); the content hash must match the sidecar."""
        path = Path(path)
        npz = path / "calib.npz" if path.is_dir() else path
        side = npz.with_name("calib.json")
        if not npz.is_file():
            raise InvalidArtifactError(f"no calibration set at {path} (expected {npz}); build one with "
                                       f"`resvit-export calibrate DIR_OR_ONNX --calib-synthetic 32`")
        meta = json.loads(side.read_text()) if side.is_file() else {}
        arrays = {}
        with np.load(npz) as z:
            for k in z.files:
                m = _KEY_RE.match(k)
                if not m:
                    raise InvalidArtifactError(f"{npz}: unexpected array {k!r} (keys are x_<H>x<W>)")
                arrays[(int(m.group(1)), int(m.group(2)))] = z[k].astype(np.float32)
        cs = cls(meta.get("name", npz.parent.name), arrays, meta.get("source", {}))
        if meta.get("sha256") and meta["sha256"] != cs.sha256:
            raise InvalidArtifactError(f"calibration set {npz} does not match its sidecar hash "
                                       f"({cs.sha256[:12]} != {meta['sha256'][:12]}); it was modified -- rebuild it")
        return cs


# ------------------------------------------------------------------------------------------ ranges

@dataclass
class CalibrationRanges:
    """Activation ranges from ORT's calibrator, plus where they came from."""

    method: str
    ranges: dict[str, tuple[float, float]]  # tensor -> (lowest, highest)
    key: dict
    cache_path: Path | None
    cache_hit: bool
    ort_payload: dict  # onnxruntime TensorsData.to_dict(), fed back to quantize_static
    seconds: float = 0.0

    def amax(self) -> dict[str, float]:
        return {k: max(abs(lo), abs(hi)) for k, (lo, hi) in self.ranges.items()}


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    m = str(method).lower()
    if m not in CALIB_METHODS:
        raise UsageError(f"unknown --calib-method {method!r}; choose one of {', '.join(CALIB_METHODS)}")
    return {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile}[m]


def _tensors_data_ranges(td) -> dict[str, tuple[float, float]]:
    out = {}
    for name, d in td.items():
        lo, hi = (d.range_value if hasattr(d, "range_value") else d)
        out[name] = (float(np.asarray(lo).min()), float(np.asarray(hi).max()))
    return out


def _cache_file(cache_dir: Path, key: dict) -> Path:
    return cache_dir / f"{key['onnx_sha256'][:16]}-{key['calib_sha256'][:16]}-{key['method']}.json"


def compute_ranges(onnx_path: str | os.PathLike, calib: CalibrationSet, method: str = "entropy",
                   cache_dir: str | os.PathLike | None = "calibration/cache", batch_size: int = 4,
                   op_types: Sequence[str] = INT8_OP_TYPES, percentile: float = 99.999) -> CalibrationRanges:
    """Activation ranges of the inputs/outputs of ``op_types`` nodes over every resolution of ``calib``.

    Uses onnxruntime.quantization's calibrators on the FP32 graph (CPU). Batches are fed one at a time and
    one resolution at a time (the calibrators merge ranges/histograms across calls), so memory stays bounded
    and differently-sized activations never have to be stacked. Symmetric ranges (TensorRT INT8 is symmetric).
    With ``cache_dir``, ranges are cached under (ONNX sha256, set sha256, method, op types) and reused.
    """
    from onnxruntime.quantization import CalibrationDataReader, create_calibrator
    from onnxruntime.quantization.calibrate import TensorsData

    ort_method = _ort_method(method)
    method = str(method).lower()
    if calib is None:
        raise UsageError(NO_DATA_HINT)
    onnx_path = Path(onnx_path)
    key = {"onnx_sha256": onnx_sha256(onnx_path), "calib_sha256": calib.sha256, "method": method,
           "op_types": sorted(op_types), "percentile": percentile if method == "percentile" else None,
           "symmetric": True}
    cache_path = _cache_file(Path(cache_dir), key) if cache_dir is not None else None
    if cache_path is not None and cache_path.is_file():
        try:
            payload = json.loads(cache_path.read_text())
            if payload.get("key") == key:
                td = TensorsData.from_dict(payload["ort_tensors_data"])
                log.info("calibration cache hit: %s", cache_path)
                return CalibrationRanges(method, _tensors_data_ranges(td), key, cache_path, True,
                                         payload["ort_tensors_data"])
            log.warning("calibration cache %s has a different key; recomputing", cache_path)
        except (ValueError, KeyError, TypeError) as err:
            log.warning("calibration cache %s is unreadable (%s); recomputing", cache_path, err)

    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise InvalidArtifactError(f"{onnx_path} has inputs {inputs}; calibration expects one image input")

    from .fp16 import static_batch

    fixed = static_batch(model)  # a graph with a fixed batch is fed exactly that many per run

    class _OneBatch(CalibrationDataReader):
        def __init__(self, x):
            self._items = [{inputs[0]: x}]

        def get_next(self):
            return self._items.pop() if self._items else None

    started = time.monotonic()
    extra = {"symmetric": True, "num_bins": 2048 if method == "percentile" else 128}
    if method == "percentile":
        extra["percentile"] = percentile
    with tempfile.TemporaryDirectory(prefix="resvit-calib-") as tmp:
        calibrator = create_calibrator(onnx_path, list(op_types),
                                       augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=ort_method, use_external_data_format=True,
                                       providers=["CPUExecutionProvider"], extra_options=extra)
        n = 0
        with contextlib.redirect_stdout(io.StringIO()):  # ORT's calibrators print progress lines
            for hw in calib.resolutions:
                for batch in _batches_for(calib.arrays[hw], batch_size, fixed):
                    calibrator.collect_data(_OneBatch(batch))
                    n += batch.shape[0]
            td = calibrator.compute_data()
        del calibrator
    payload = json.loads(json.dumps(td.to_dict(), cls=_NumpyEncoder))
    ranges = _tensors_data_ranges(td)
    seconds = time.monotonic() - started
    log.info("calibrated %d tensors with %s over %d images at %s in %.1fs", len(ranges), method, n,
             ", ".join(f"{h}x{w}" for h, w in calib.resolutions), seconds)
    if cache_path is not None:
        write_json_atomic(cache_path, {"key": key, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                       "onnx": str(onnx_path), "calibration_set": calib.sidecar(),
                                       "amax": {k: max(abs(a), abs(b)) for k, (a, b) in ranges.items()},
                                       "ort_tensors_data": payload})
    return CalibrationRanges(method, ranges, key, cache_path, False, payload, seconds)


def _batches_for(a: np.ndarray, batch_size: int, fixed: int | None) -> Iterator[np.ndarray]:
    """Batches of ``a`` ([N, 3, H, W]) for one calibration run each.

    The augmented calibration graph returns every calibrated activation at once, and attention tensors grow
    with tokens squared, so the batch shrinks with resolution (``batch_size`` at 224x224, 1 from ~448x448 up
    for batch_size 4). A graph with a fixed batch gets exactly that many images per run (the last batch is
    topped up with the set's first images, deterministically).
    """
    if fixed:
        idx = np.arange(int(np.ceil(a.shape[0] / fixed)) * fixed) % a.shape[0]
        for i in range(0, len(idx), fixed):
            yield a[idx[i:i + fixed]]
        return
    h, w = a.shape[-2:]
    b = max(1, min(batch_size, (batch_size * 224 * 224) // (h * w)))
    for i in range(0, a.shape[0], b):
        yield a[i:i + b]


class _NumpyEncoder(json.JSONEncoder):
    def default(self, o):
        try:
            from onnxruntime.quantization.calibrate import CalibrationCacheEncoder

            return CalibrationCacheEncoder().default(o)
        except (ImportError, TypeError):
            pass
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        return super().default(o)


# ------------------------------------------------------------------------------------------ TensorRT cache

def trt_version_number(version: str | int) -> int:
    """'10.3.0' -> 100300 (TRT >= 10: major*10000 + minor*100 + patch); '8.6.1' -> 8601 (TRT 8 encoding)."""
    if isinstance(version, int):
        return version
    parts = [int(p) for p in re.findall(r"\d+", str(version))[:3]] + [0, 0]
    major, minor, patch = parts[:3]
    if not major:
        raise UsageError(f"bad TensorRT version {version!r}; use e.g. 10.3.0")
    return major * 10000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch


def write_trt_calibration_cache(amax: dict[str, float], path: str | os.PathLike, trt_version: str | int = "10.3.0",
                                algorithm: str = "EntropyCalibration2") -> Path:
    """Write a classic TensorRT calibration cache (scale = amax / 127 as big-endian float32 hex).

    TensorRT rejects a cache whose header does not match its own version/algorithm and recalibrates, so pass the
    target's version (JetPack 6 = 10.3.0). Unexecuted against TensorRT here; TRT 11 has no implicit INT8.
    """
    lines = [f"TRT-{trt_version_number(trt_version)}-{algorithm}"]
    for name in sorted(amax):
        scale = float(amax[name]) / 127.0
        if not np.isfinite(scale) or scale <= 0:
            scale = 1.0 / 127.0  # a constant-zero tensor: any positive scale is exact
        lines.append(f"{name}: {struct.pack('>f', scale).hex()}")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def read_trt_calibration_cache(path: str | os.PathLike) -> tuple[str, dict[str, float]]:
    """(header, {tensor: scale}) from a TensorRT calibration cache text file."""
    text = Path(path).read_text().splitlines()
    if not text or not re.fullmatch(r"TRT-\d+-\w+", text[0].strip()):
        raise InvalidArtifactError(f"{path} is not a TensorRT calibration cache (header {text[:1]})")
    scales = {}
    for line in text[1:]:
        if not line.strip():
            continue
        name, sep, hexval = line.rpartition(": ")
        if not sep or not re.fullmatch(r"[0-9a-fA-F]{8}", hexval.strip()):
            raise InvalidArtifactError(f"{path}: bad cache line {line!r}")
        scales[name] = struct.unpack(">f", bytes.fromhex(hexval.strip()))[0]
    return text[0].strip(), scales
