"""Where the real TensorRT wheels come from and how one is made importable (used by conftest.py and the tests).

The conformance tier: the project's TensorRT-facing code against NVIDIA's real bindings, trtexec's real option
parser rules and onnx-tensorrt's operator matrices. It proves names, signatures, flags and op support; it builds
nothing (there is no TensorRT library and no GPU here, and the stubs below make every factory return NULL).

Each TensorRT version runs in its own child process: PYTHONPATH = its unpacked wheel (``make install`` downloads
the exact wheels named in wheels/*.txt with their sha256), LD_LIBRARY_PATH = stub libraries compiled here from
nvinfer_stub.c. The versions are the three the project targets: JetPack 6 (10.3), JetPack 7 (10.13), TensorRT 11.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
WHEEL_DIR = REPO / ".cache" / "conformance" / "wheels"

# version -> its requirement file (exact version + sha256); the stubs are named after the major (libnvinfer.so.10)
VERSIONS = tuple(sorted((re.match(r"tensorrt-(.+)\.txt$", p.name).group(1) for p in (HERE / "wheels").glob("*.txt")),
                        key=lambda v: tuple(int(x) for x in v.split("."))))


@dataclass(frozen=True)
class Bindings:
    """One unpacked TensorRT wheel and the environment that imports it."""

    version: str
    site: Path  # holds tensorrt_bindings/
    stubs: Path  # holds libnvinfer.so.N, libnvonnxparser.so.N, libnvinfer_plugin.so.N

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.site), str(REPO), str(HERE)])
        env["LD_LIBRARY_PATH"] = str(self.stubs)
        env.pop("PYTHONSTARTUP", None)
        return env

    def run(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], env=self.env(), cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)


def unsupported_reason() -> str | None:
    if sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64" or not sys.platform.startswith("linux"):
        return ("the pinned TensorRT wheels are CPython 3.11 x86-64 Linux builds; this interpreter is "
                f"{sys.version_info[0]}.{sys.version_info[1]} {platform.machine()} {sys.platform}")
    if shutil.which("gcc") is None:
        return "gcc is needed to compile the stub libraries (apt install gcc)"
    return None


def find_wheel(version: str) -> Path:
    found = sorted(WHEEL_DIR.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
    if not found:
        pytest.skip(f"TensorRT {version} bindings wheel not downloaded: run `make conformance-wheels` "
                    "(part of `make install`)")
    return found[0]


def compile_stubs(dest: Path, major: str) -> Path:
    out = dest / f"stubs-{major}"
    out.mkdir(parents=True, exist_ok=True)
    for part, lib in ((1, "libnvinfer"), (2, "libnvonnxparser"), (3, "libnvinfer_plugin")):
        soname = f"{lib}.so.{major}"
        subprocess.run(["gcc", "-shared", "-fPIC", "-O0", f"-DSTUB_LIB={part}", f"-Wl,-soname,{soname}",
                        "-o", str(out / soname), str(HERE / "nvinfer_stub.c")], check=True, capture_output=True)
    return out


_DEF_LINE = re.compile(r"^(\s*)def (\w+)\(")


def write_type_stubs(b: Bindings, dest: Path) -> Path:
    """Type stubs of the real module by pybind11-stubgen, importable as ``tensorrt``; returns the MYPYPATH dir.

    Two repairs, both in plugin/layer APIs the project never calls: pybind11 signatures with a parameter named
    ``in`` (a Python keyword) and one with a required parameter after defaults (add_scale_nd) do not parse as
    Python, so those ``def`` lines become ``(self, *args: Any, **kwargs: Any) -> Any``.
    """
    import ast

    raw = dest / f"raw-{b.version}"
    proc = b.run("-m", "pybind11_stubgen", "tensorrt_bindings", "-o", str(raw))
    if proc.returncode != 0:
        raise RuntimeError(f"pybind11-stubgen failed on TensorRT {b.version}:\n{proc.stderr[-3000:]}")
    out = dest / f"stubs-{b.version}"
    (out / "tensorrt").mkdir(parents=True, exist_ok=True)
    for src in (raw / "tensorrt_bindings").glob("*.pyi"):
        lines = []
        for line in src.read_text().replace("tensorrt_bindings", "tensorrt").splitlines():
            m = _DEF_LINE.match(line)
            if m and line.rstrip().endswith(":"):
                try:
                    ast.parse(line.strip() + " ...")
                except SyntaxError:
                    line = f"{m.group(1)}def {m.group(2)}(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:"
            lines.append(line)
        (out / "tensorrt" / src.name).write_text("\n".join(lines) + "\n")
    return out
