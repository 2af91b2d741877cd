"""The engine's sidecar manifest (manifest.json) - never a header inside the plan file.

A plan file is TensorRT's own format; anything prepended to it breaks ``deserialize_cuda_engine`` and tools
such as trtexec/Polygraphy (the lesson of Ultralytics #22910/#19423). The manifest sits next to it and records
what is needed to decide, *before deserializing*, whether the plan can load on this host, and to verify that
no artifact was swapped or corrupted (sha256 of ONNX, engine, timing cache, calibration artifacts).

``host_info()`` is best effort and needs neither TensorRT nor a GPU: unknown fields are None.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from resvit_export.errors import InvalidArtifactError
from resvit_export.io import sha256_file, write_json_atomic
from resvit_export.layout import BuildLayout

from .versions import jetpack_for_l4t, parse_version, version_str

__all__ = ["MANIFEST_SCHEMA", "HostInfo", "host_info", "parse_nv_tegra_release", "build_manifest", "artifact_entry",
           "write_manifest", "write_build_manifest", "read_manifest", "find_manifest", "verify_artifacts",
           "check_manifest_against_host",
           "sm_of", "parse_nvinfer_version_header"]

MANIFEST_SCHEMA = "resvit-export/engine-manifest@1"
ARTIFACT_ROLES = ("onnx", "engine", "timing_cache", "calibration", "plan", "reference", "other")


@dataclass(frozen=True)
class HostInfo:
    tensorrt: str | None = None
    cuda: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None  # "8.7"
    jetpack: str | None = None
    l4t: str | None = None
    machine: str | None = None  # platform.machine(): x86_64 / aarch64

    def to_dict(self) -> dict:
        return asdict(self)


def sm_of(cc: str | None) -> str:
    return "sm_" + cc.replace(".", "") if cc else "an unknown GPU"


def parse_nv_tegra_release(text: str) -> str | None:
    """'# R36 (release), REVISION: 4.0, GCID: ...' -> '36.4.0'; None when the text is not an L4T release line."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text or "")
    return f"{m.group(1)}.{m.group(2)}" if m else None


_NVINFER_VERSION_HEADERS = ("/usr/include/aarch64-linux-gnu/NvInferVersion.h",
                            "/usr/include/x86_64-linux-gnu/NvInferVersion.h", "/usr/include/NvInferVersion.h")
_DEFINE_RE = re.compile(r"^\s*#\s*define\s+(\w+)\s+(\w+)", re.M)


def parse_nvinfer_version_header(text: str) -> str | None:
    """'10.13.0' from the text of NvInferVersion.h; None when the version macros are absent.

    Up to 10.12 the header spells the numbers (``#define NV_TENSORRT_MAJOR 10``); from 10.13 on it points at
    another macro (``#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE`` + ``#define TRT_MAJOR_ENTERPRISE 10``;
    NVIDIA/TensorRT include/NvInferVersion.h, release/10.13 and release/11.1 lines 26-32), so each macro is
    followed until it names a number.
    """
    defines = dict(_DEFINE_RE.findall(text or ""))

    def resolve(name: str) -> str | None:
        value = defines.get(name)
        for _ in range(4):  # a chain of aliases, never a loop
            if value is None or value.isdigit():
                return value
            value = defines.get(value)
        return None

    parts = [resolve(f"NV_TENSORRT_{k}") for k in ("MAJOR", "MINOR", "PATCH")]
    return None if None in parts else ".".join(str(p) for p in parts)


def _tensorrt_version() -> str | None:
    # Distribution metadata first: importing tensorrt would load libnvinfer (seconds, and fails without the libs).
    # JetPack's apt python3-libnvinfer may install no dist-info (not verified, research K9), hence the header.
    from importlib import metadata

    for dist in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt_libs", "tensorrt-cu12-libs"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    for header in _NVINFER_VERSION_HEADERS:
        try:
            found = parse_nvinfer_version_header(Path(header).read_text(errors="replace"))
        except OSError:
            continue
        if found:
            return found
    return None


def _gpu() -> tuple[str | None, str | None, str | None]:
    """(name, compute capability, CUDA version) via nvidia-smi, then torch; Nones when there is no GPU."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10).stdout.strip().splitlines()
            if out:
                name, cc = [s.strip() for s in out[0].split(",")[:2]]
                head = subprocess.run([smi], capture_output=True, text=True, timeout=10).stdout
                m = re.search(r"CUDA Version:\s*([\d.]+)", head)
                return name, cc, m.group(1) if m else None
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return torch.cuda.get_device_name(0), f"{major}.{minor}", torch.version.cuda
    except Exception:  # noqa: BLE001 - best effort
        pass
    return None, None, None


def host_info(root: str | os.PathLike = "/", probe_gpu: bool = True) -> HostInfo:
    """What this machine has (best effort). ``root`` lets tests point at a fake /etc."""
    l4t = None
    try:
        l4t = parse_nv_tegra_release(Path(root, "etc/nv_tegra_release").read_text(errors="replace"))
    except OSError:
        pass
    name, cc, cuda = _gpu() if probe_gpu else (None, None, None)
    return HostInfo(tensorrt=_tensorrt_version(), cuda=cuda, gpu_name=name, compute_capability=cc,
                    jetpack=jetpack_for_l4t(l4t) if l4t else None, l4t=l4t, machine=platform.machine() or None)


def artifact_entry(path: str | os.PathLike, role: str, base: str | os.PathLike) -> dict:
    if role not in ARTIFACT_ROLES:
        raise ValueError(f"unknown artifact role {role!r}")
    p = Path(path)
    rel = os.path.relpath(p, base)
    return {"role": role, "path": Path(rel).as_posix(), "sha256": sha256_file(p), "bytes": p.stat().st_size}


def build_manifest(
    plan,
    artifacts: dict[str, list[str | os.PathLike] | str | os.PathLike],
    base_dir: str | os.PathLike,
    *,
    host: HostInfo | None = None,
    fp32_nodes: list[str] | None = None,
    onnx_precision: str | None = None,
    parity: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """The manifest dict. ``artifacts`` maps role -> path(s) (relative paths are stored against ``base_dir``).
    ``host`` is the *build* host (TensorRT/CUDA/GPU the engine was built with)."""
    host = host or HostInfo()
    entries = []
    for role, paths in artifacts.items():
        for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths):
            entries.append(artifact_entry(p, role, base_dir))
    plan_dict = plan.to_dict() if hasattr(plan, "to_dict") else dict(plan)
    return {
        "schema": MANIFEST_SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": plan_dict.get("model"), "family": plan_dict.get("family"),
        "build_host": host.to_dict(),
        "tensorrt": host.tensorrt, "cuda": host.cuda,
        "gpu": {"name": host.gpu_name, "compute_capability": host.compute_capability},
        "jetpack": host.jetpack, "l4t": host.l4t, "platform": host.machine,
        "precision": {"mode": plan_dict.get("precision"), "onnx_precision": onnx_precision,
                      "fp32_nodes": list(fp32_nodes or [])},
        "input_name": plan_dict.get("input_name"),
        "profiles": [{k: p[k] for k in ("index", "min", "opt", "max", "batch", "shapes")} for p in plan_dict["profiles"]],
        "plan": plan_dict,
        "artifacts": entries,
        "parity": parity,
        **(extra or {}),
    }


def write_manifest(manifest: dict, path: str | os.PathLike) -> Path:
    return write_json_atomic(path, manifest)


def read_manifest(path: str | os.PathLike) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidArtifactError(f"cannot read manifest {path}: {err}; rebuild the engine to regenerate it") from err
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        raise InvalidArtifactError(f"{path} is not a resvit-export engine manifest (schema {MANIFEST_SCHEMA!r} expected)")
    from resvit_export.schemas import MANIFEST, check_document

    return check_document(data, MANIFEST, path)


def find_manifest(path: str | os.PathLike) -> Path:
    """manifest.json itself, a build dir containing one, or a plan file with ``<stem>.manifest.json`` or
    ``manifest.json`` beside it."""
    p = Path(path)
    if not p.exists():
        raise InvalidArtifactError(f"{p} does not exist; give a plan file, a build directory or a manifest.json")
    if p.is_dir():
        cand = [p / "manifest.json"]
    elif p.suffix == ".json":
        return p
    else:
        cand = [p.with_name(p.name + ".manifest.json"), p.with_name(p.stem + ".manifest.json"), p.parent / "manifest.json"]
    for c in cand:
        if c.is_file():
            return c
    raise InvalidArtifactError(f"no sidecar manifest for {p} (looked for {', '.join(c.name for c in cand)}); "
                               "the plan's origin cannot be verified - rebuild it with `resvit-export build`")


def verify_artifacts(manifest: dict, base_dir: str | os.PathLike) -> list[str]:
    """Problems (missing/tampered artifacts); empty when every recorded sha256 matches."""
    base = Path(base_dir).resolve()
    problems = []
    for a in manifest.get("artifacts", []):
        rel = a.get("path", "")
        target = (base / rel).resolve()
        if Path(rel).is_absolute() or base not in target.parents:
            problems.append(f"{a.get('role')} {rel}: path leaves the artifact directory; manifest rejected")
            continue
        if not target.is_file():
            problems.append(f"{a.get('role')} {rel} is missing")
            continue
        digest = sha256_file(target)
        if digest != a.get("sha256"):
            problems.append(f"{a.get('role')} {rel} was modified: sha256 {digest[:12]}... != recorded "
                            f"{str(a.get('sha256'))[:12]}... (tampered or corrupted; rebuild or re-copy it)")
    return problems


def check_manifest_against_host(manifest: dict, host: HostInfo) -> list[str]:
    """Why the manifest's plan will not load (or not run as built) on ``host``. Empty = compatible.

    TensorRT plans are tied to the exact TensorRT version, the GPU's compute capability and the platform
    (research §1.8: "Serialized engines are not portable across platforms"; no Jetson cross-build exists).
    """
    out: list[str] = []
    built_trt = manifest.get("tensorrt")
    gpu = manifest.get("gpu") or {}
    built_cc = gpu.get("compute_capability")
    built = f"TensorRT {version_str(built_trt, 3) if built_trt else 'unknown'} on {sm_of(built_cc)}"
    here = f"{version_str(host.tensorrt, 3) if host.tensorrt else 'no TensorRT'} on {sm_of(host.compute_capability)}"
    if host.tensorrt is None:
        out.append(f"built with {built}; this host has no TensorRT: the plan cannot be loaded here - copy the "
                   "bundle to the device and build/run there")
    elif built_trt and parse_version(built_trt)[:3] != parse_version(host.tensorrt)[:3]:
        out.append(f"built with {built}; this host has {here}: plans only load on the TensorRT version that "
                   "built them - rebuild on the device")
    if host.compute_capability is None:
        out.append(f"built for {sm_of(built_cc)}; this host has no visible CUDA GPU: run it on the device")
    elif built_cc and built_cc != host.compute_capability:
        out.append(f"built with {built}; this host has {here}: engines are compiled for one compute capability - "
                   "rebuild on the device")
    elif gpu.get("name") and host.gpu_name and gpu["name"] != host.gpu_name:
        out.append(f"built on {gpu['name']}; this host has {host.gpu_name} (same {sm_of(built_cc)}): it loads, but "
                   "tactics were timed on the other GPU - rebuild for best speed")
    bplat, hplat = manifest.get("platform"), host.machine
    if bplat and hplat and bplat != hplat:
        out.append(f"built on {bplat}; this host is {hplat}: plans do not move across platforms - rebuild on the device")
    bjp, hjp = manifest.get("jetpack"), host.jetpack
    if bjp and hjp and bjp != hjp:
        out.append(f"built on JetPack {bjp} (L4T {manifest.get('l4t')}); this host runs JetPack {hjp} "
                   f"(L4T {host.l4t}): the TensorRT/CUDA stack differs - rebuild on this device")
    elif bjp and not hjp and hplat:
        out.append(f"built on a Jetson (JetPack {bjp}); this host is not a Jetson: rebuild on the target")
    elif hjp and not bjp and manifest.get("l4t") is None and bplat:
        out.append(f"built on a non-Jetson host ({bplat}); this host is a Jetson (JetPack {hjp}): rebuild on this device")
    bcuda, hcuda = manifest.get("cuda"), host.cuda
    if bcuda and hcuda and parse_version(bcuda)[0] != parse_version(hcuda)[0]:
        out.append(f"built against CUDA {bcuda}; this host has CUDA {hcuda} (different major): rebuild on the device")
    return out


def _calibration_files(out_dir: Path) -> list[Path]:
    from resvit_export.bundle.bundle import _CALIB_RE

    return [p for p in sorted(out_dir.iterdir()) if p.is_file() and not p.is_symlink() and _CALIB_RE.search(p.name)]


def write_build_manifest(out_dir: str | os.PathLike, *, plan, deploy_onnx: Path | None, precision_onnx: Path | None,
                         precision: str, kept_fp32_nodes: list[str], parity: dict, engines: list[Path],
                         model_name: str, overrides: dict, seed: int | None,
                         steps: list[tuple[str, str]]) -> Path:
    """manifest.json for a ``build`` run (called by the pipeline's manifest step).

    Engines built here carry their build host (TensorRT/CUDA/GPU); when the engine step was deferred the
    TensorRT fields are None and ``engine`` artifacts are absent, which ``inspect`` reports as "build on the
    device". Records ONNX/engine/timing-cache/calibration hashes, FP32-kept nodes and the parity summary.
    ``steps`` are (name, status) pairs.
    """
    from resvit_export import __version__

    out = Path(out_dir)
    host = getattr(engines, "build_host", None) or HostInfo(machine=platform.machine() or None)
    if not engines:  # nothing was built: do not claim this host's CUDA/GPU as the engine's
        host = HostInfo(machine=None)
    artifacts: dict[str, list] = {"onnx": [], "plan": []}
    for p in (deploy_onnx, precision_onnx):
        if p and Path(p).is_file() and Path(p) not in artifacts["onnx"]:
            artifacts["onnx"].append(Path(p))
    for name in ("plan.json", "trtexec.sh"):
        if (out / name).is_file():
            artifacts["plan"].append(out / name)
    if engines:
        artifacts["engine"] = [Path(e) for e in engines]
    cache = getattr(engines, "timing_cache_path", None) or (out / "timing.cache")
    if engines and Path(cache).is_file():
        artifacts["timing_cache"] = [Path(cache)]
    calib = _calibration_files(out)
    if calib:
        artifacts["calibration"] = calib
    layout = BuildLayout(out)  # the reference set the device's engine check reads (validate/reference.py)
    reference = [p for p in (layout.reference_set, layout.reference_outputs, layout.reference_inputs) if p.is_file()]
    if reference:
        artifacts["reference"] = reference
    artifacts = {k: v for k, v in artifacts.items() if v}
    onnx_prec = precision if precision_onnx else "fp32"
    plan_dict = plan.to_dict() if plan is not None else {"profiles": [], "precision": precision}
    manifest = build_manifest(
        plan_dict, artifacts, out, host=host, fp32_nodes=list(kept_fp32_nodes), onnx_precision=onnx_prec,
        parity=parity,
        extra={"resvit_export": __version__, "model_name": model_name, "overrides": dict(overrides or {}),
               "seed": seed,
               "engine_status": "built" if engines else "deferred: build on the target (bundle + build_engine.sh)",
               "steps": [{"name": name, "status": status} for name, status in steps]},
    )
    return write_manifest(manifest, out / "manifest.json")
