"""Deployment bundle: everything a Jetson (or any TensorRT host) needs to build and run the engine *there*.

Plans do not move across platforms/TensorRT versions (research §1.8), so the bundle ships the ONNX files, the
plan (profiles), trtexec lines, manifest, calibration artifacts and two device-side tools:

* ``build_engine.sh`` - detects TensorRT (python3 -c 'import tensorrt', dpkg, trtexec banner) and JetPack
  (/etc/nv_tegra_release), verifies SHA256SUMS, and builds with TensorRT 10 flags or TensorRT 11 ONNX precision.
* ``run_engine.py``  - runs the engine with only tensorrt + numpy + cuda-python (no torch).

What goes in is verified first: the source directory's status.json must say PASSED (``allow_unverified``
overrides that, and is recorded in the bundle's ``bundle.json``), plan.json and manifest.json must match their
schemas, and every file packed must still match the sha256 that status.json and manifest.json recorded.

Safety: ``verify_bundle`` and ``extract_bundle`` read the archive as a stream of headers and never hold a
member in memory. They reject absolute paths, ``..`` components, symlinks, hardlinks, devices and duplicate
names, and bound the expansion (per member, in total, and as a ratio to the archive's size: a decompression
bomb is refused from its header, before its data is read), *before* anything is written; then every file is
re-verified against SHA256SUMS. The archive is written atomically.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Iterator

from resvit_export.errors import InvalidArtifactError, OutputDirError, UsageError
from resvit_export.io import atomic_path, sha256_file
from resvit_export.layout import BuildLayout

__all__ = ["create_bundle", "verify_bundle", "extract_bundle", "collect_bundle_files", "BundleInfo", "SUMS_NAME",
           "DEVICE_FILES", "profiles_env", "ExtractLimits", "BUNDLE_INFO_NAME"]

SUMS_NAME = "SHA256SUMS"
BUNDLE_INFO_NAME = "bundle.json"  # where the bundle came from and whether its status was verified
DEVICE_FILES = ("build_engine.sh", "run_engine.py", "profile_select.py", "README.txt")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExtractLimits:
    """How far an archive may expand. The largest real bundles hold multi-GB ONNX weights, which gzip hardly
    shrinks (about 1.1x), so a large ratio only comes from a crafted archive (zeros compress ~1000x)."""

    max_member_bytes: int = 32 << 30
    max_total_bytes: int = 64 << 30
    max_ratio: float = 100.0  # uncompressed / archive bytes, once past ratio_floor_bytes
    ratio_floor_bytes: int = 64 << 20  # small text-only bundles may compress well; never a risk below this

    def check(self, member: tarfile.TarInfo, total: int, archive_bytes: int, path) -> None:
        if member.size > self.max_member_bytes:
            raise InvalidArtifactError(f"unsafe bundle {path}: member {member.name!r} would expand to "
                                       f"{member.size / (1 << 30):.1f} GiB (limit {self.max_member_bytes >> 30} GiB)")
        if total > self.max_total_bytes:
            raise InvalidArtifactError(f"unsafe bundle {path}: members would expand to {total / (1 << 30):.1f} GiB "
                                       f"in total (limit {self.max_total_bytes >> 30} GiB)")
        if total > self.ratio_floor_bytes and total > self.max_ratio * max(archive_bytes, 1):
            raise InvalidArtifactError(f"unsafe bundle {path}: a {archive_bytes / (1 << 20):.1f} MiB archive would "
                                       f"expand to {total / (1 << 30):.1f} GiB (member {member.name!r}); a "
                                       f"decompression bomb, not a resvit-export bundle")


DEFAULT_LIMITS = ExtractLimits()
_CALIB_RE = re.compile(r"(calib|calibration|amax|quant).*\.(cache|bin|npz|json|calib|txt)$|\.calib$", re.I)
_EXEC = {"build_engine.sh", "trtexec.sh", "run_engine.py"}

# engine parity on the device (issue #9): the check and the numpy-only modules it imports
DEVICE_FILES += ("check_engine.py", "parity_core.py", "parity_inputs.py", "reference_set.py")
_EXEC |= {"check_engine.py"}


@dataclass
class BundleInfo:
    path: Path
    files: list[str]
    precisions: list[str]
    origin: dict | None = None  # what bundle.json says about the source directory

    def to_dict(self) -> dict:
        return {"path": str(self.path), "files": self.files, "precisions": self.precisions, "origin": self.origin}


def _precision_of(onnx_name: str) -> str:
    from resvit_export.layout import precision_of_onnx

    return precision_of_onnx(onnx_name)


def collect_bundle_files(src_dir: str | os.PathLike) -> dict[str, Path]:
    """archive name -> source path for what DIR holds (ONNX + external data, plan.json, trtexec.sh, manifests,
    calibration artifacts, timing caches). Symlinked sources are refused."""
    src = Path(src_dir)
    if not src.is_dir():
        raise UsageError(f"{src} is not a directory; give the output directory of `resvit-export build`/`plan`")
    out: dict[str, Path] = {}
    layout = BuildLayout(src)  # the reference set validate writes, for the device's engine check
    reference_set = {layout.reference_set.name, layout.reference_outputs.name, layout.reference_inputs.name}
    for p in sorted(src.iterdir()):
        if p.is_symlink():
            raise InvalidArtifactError(f"{p} is a symlink; the bundle only takes regular files (copy it in place)")
        if not p.is_file():
            continue
        n = p.name
        if (n.endswith(".onnx") or n.endswith(".onnx.data") or n in ("plan.json", "trtexec.sh", "manifest.json")
                or n.endswith(".manifest.json") or _CALIB_RE.search(n) or n.endswith("timing.cache")
                or n in reference_set):
            out[n] = p
    if not any(n.endswith(".onnx") for n in out):
        raise UsageError(f"{src} holds no .onnx file; export first (`resvit-export export -o {src}`)")
    if "plan.json" not in out:
        raise UsageError(f"{src} has no plan.json; bundle the output directory of `resvit-export build`")
    return out


def profiles_env(plan: dict) -> str:
    """Shell-sourceable profile description for build_engine.sh (generated; the script itself is static)."""
    from resvit_export.trt.planner import EnginePlan
    from resvit_export.trt.trtexec import shape_arg

    ep = EnginePlan.from_dict(plan)
    args = []
    for p in ep.profiles:
        s = p.shapes()
        if len(ep.profiles) > 1:
            args.append(f"--profile={p.index}")
        args += [f"--minShapes={shape_arg(ep.input_name, s['min'])}", f"--optShapes={shape_arg(ep.input_name, s['opt'])}",
                 f"--maxShapes={shape_arg(ep.input_name, s['max'])}"]
    if not re.fullmatch(r"[A-Za-z_][\w.\-]*", ep.input_name):
        raise UsageError(f"input name {ep.input_name!r} is not safe to put in a shell script")
    return (f"# generated by resvit-export bundle from plan.json\nPRECISION={ep.precision}\n"
            f"INPUT_NAME={ep.input_name}\nNUM_PROFILES={len(ep.profiles)}\nPROFILE_ARGS=\"{' '.join(args)}\"\n")


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o755 if name in _EXEC else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _verified_source(src: Path, files: dict[str, Path], allow_unverified: bool) -> dict:
    """Refuse a source directory whose verdict is not PASSED or whose files changed since; return what
    bundle.json records about it."""
    from resvit_export.schemas import PLAN, read_json_document
    from resvit_export.status import require_passed
    from resvit_export.trt.manifest import read_manifest, verify_artifacts

    status = require_passed(src, allow_unverified, consumes=sorted(files))
    read_json_document(files["plan.json"], PLAN)
    if "manifest.json" in files:
        problems = verify_artifacts(read_manifest(files["manifest.json"]), src)
        if problems:
            raise InvalidArtifactError(f"{src}: {problems[0]}")
    clean = status is not None and status.passed
    return {"source": str(src), "source_status": status.describe() if status else "no status.json",
            "verified": clean, "allow_unverified": bool(allow_unverified and not clean)}


def create_bundle(src_dir: str | os.PathLike, out_path: str | os.PathLike, *, force: bool = False,
                  allow_unverified: bool = False) -> BundleInfo:
    """Write ``out_path`` (tar.gz) atomically from the verified ``src_dir``; returns what went in.

    Files are streamed into the archive and hashed from disk, never read whole into memory.
    """
    import json

    from resvit_export.trt.planner import EnginePlan  # noqa: F401 - profiles_env needs it; fail early if broken

    out_path = Path(out_path)
    if out_path.exists() and (out_path.is_dir() or not force):
        raise OutputDirError(f"{out_path} exists" + ("" if out_path.is_dir() else "; pass --force to overwrite it"))
    src = Path(src_dir)
    files = collect_bundle_files(src)
    origin = _verified_source(src, files, allow_unverified)
    status_file = src / "status.json"
    if status_file.is_file():
        files["status.json"] = status_file
    plan = json.loads(files["plan.json"].read_text())
    generated = {"profiles.env": profiles_env(plan).encode(),
                 BUNDLE_INFO_NAME: (json.dumps(origin, indent=2) + "\n").encode()}
    device = resources.files("resvit_export.bundle") / "device"
    for n in DEVICE_FILES:
        generated[n] = (device / n).read_bytes()
    digests = {n: sha256_file(p) for n, p in files.items()}
    digests.update({n: hashlib.sha256(data).hexdigest() for n, data in generated.items()})
    generated[SUMS_NAME] = "".join(f"{digests[n]}  {n}\n" for n in sorted(digests)).encode()
    with atomic_path(out_path) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            for n in sorted(set(files) | set(generated)):
                if n in files:
                    with open(files[n], "rb") as fh:
                        tar.addfile(_tar_info(n, os.fstat(fh.fileno()).st_size), fh)
                else:
                    tar.addfile(_tar_info(n, len(generated[n])), io.BytesIO(generated[n]))
    precisions = sorted({_precision_of(n) for n in files if n.endswith(".onnx")})
    return BundleInfo(out_path, sorted(set(files) | set(generated)), precisions, origin)


def _check_member(m: tarfile.TarInfo, seen: set[str]) -> str | None:
    name = m.name
    if not name or "\x00" in name or "\\" in name:
        return f"member {name!r} has an invalid name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"member {name!r} is an absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return f"member {name!r} escapes the destination (..)"
    if m.issym() or m.islnk():
        return f"member {name!r} is a {'symlink' if m.issym() else 'hardlink'} (to {m.linkname!r})"
    if not (m.isreg() or m.isdir()):
        return f"member {name!r} is not a regular file"
    norm = str(PurePosixPath(*parts)) if parts else name
    if norm in seen:
        return f"member {name!r} appears twice"
    seen.add(norm)
    return None


def _parse_sums(text: str) -> dict[str, str]:
    sums = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
        if not m:
            raise InvalidArtifactError(f"{SUMS_NAME} has a malformed line {line!r}")
        sums[m.group(2)] = m.group(1)
    return sums


def _open(path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as err:
        raise InvalidArtifactError(f"{path} is not a readable bundle archive ({err})") from err


def _stream_sha256(fh) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: fh.read(_CHUNK), b""):
        h.update(block)
    return h.hexdigest()


def _members(tar: tarfile.TarFile, path, limits: ExtractLimits) -> "Iterator[tarfile.TarInfo]":
    """The archive's members in order, each checked from its header (name, type, size limits) before its
    data is touched."""
    archive_bytes = os.path.getsize(path)
    seen: set[str] = set()
    total = 0
    while True:
        try:
            m = tar.next()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise InvalidArtifactError(f"{path} is not a readable bundle archive ({err})") from None
        if m is None:
            return
        bad = _check_member(m, seen)
        if bad:
            raise InvalidArtifactError(f"unsafe bundle {path}: {bad}")
        total += m.size
        limits.check(m, total, archive_bytes, path)
        yield m


def verify_bundle(path: str | os.PathLike, limits: ExtractLimits = DEFAULT_LIMITS) -> list[str]:
    """Check an archive without extracting it: safe member names/types, bounded sizes and every file's
    sha256 against SHA256SUMS. Streams the archive; returns the file names; raises InvalidArtifactError."""
    problems: list[str] = []
    digests: dict[str, str] = {}
    sums_text = None
    with _open(path) as tar:
        for m in _members(tar, path, limits):
            if m.isdir():
                continue
            try:
                with tar.extractfile(m) as fh:
                    if m.name == SUMS_NAME:
                        sums_text = fh.read(1 << 20).decode("utf-8", "replace")
                    else:
                        digests[m.name] = _stream_sha256(fh)
            except (tarfile.TarError, OSError, EOFError) as err:
                raise InvalidArtifactError(f"{path} is truncated or corrupt at {m.name!r} ({err})") from None
    if sums_text is None:
        raise InvalidArtifactError(f"bundle {path} has no {SUMS_NAME}; it was not made by `resvit-export bundle`")
    sums = _parse_sums(sums_text)
    for name, digest in sorted(digests.items()):
        if name not in sums:
            problems.append(f"{name} is not listed in {SUMS_NAME} (added after bundling)")
        elif sums[name] != digest:
            problems.append(f"{name} was modified: sha256 {digest[:12]}... != {sums[name][:12]}... (tampered or corrupted)")
    for name in sorted(set(sums) - set(digests)):
        problems.append(f"{name} is listed in {SUMS_NAME} but missing from the archive")
    if problems:
        raise InvalidArtifactError(f"bundle {path} failed verification: " + "; ".join(problems))
    return sorted(digests) + [SUMS_NAME]


def _verify_tree(root: Path) -> None:
    sums = _parse_sums((root / SUMS_NAME).read_text())
    problems = []
    for name, digest in sums.items():
        p = root / name
        if p.is_symlink() or not p.is_file():
            problems.append(f"{name} missing after extraction")
        elif sha256_file(p) != digest:
            problems.append(f"{name} differs from {SUMS_NAME} after extraction")
    if problems:
        raise InvalidArtifactError("; ".join(problems))


def extract_bundle(path: str | os.PathLike, dest: str | os.PathLike, limits: ExtractLimits = DEFAULT_LIMITS) -> Path:
    """Verify, then extract into ``dest`` (must be absent or empty), then verify the extracted files again.

    Extraction streams member by member and re-checks every header (the archive could change between the
    two passes); regular files only, created exclusively, never following a link."""
    from resvit_export.io import disk_full_error
    from resvit_export.errors import is_disk_full

    verify_bundle(path, limits)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise OutputDirError(f"extraction target {dest} exists and is not empty; choose an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
    try:
        with _open(path) as tar:
            for m in _members(tar, path, limits):
                if not m.isreg():
                    continue
                target = tmp / m.name
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with tar.extractfile(m) as src, open(target, "xb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                except OSError as err:
                    raise (disk_full_error(dest / m.name, err) if is_disk_full(err) else err) from err
                target.chmod(0o755 if m.mode & 0o100 else 0o644)
        _verify_tree(tmp)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
