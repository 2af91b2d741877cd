"""trtexec's accepted flags and forms per TensorRT version, as data, and a checker that applies trtexec's own
parsing rules to a command line. Facts from NVIDIA/TensorRT samples/common/sampleOptions.cpp (``SO``) and
samples/trtexec/trtexec.cpp of each release branch: release/10.3 (5b990f0a), release/10.13 (b8db91e1) and
release/11.1 (90536162, the newest branch reachable; the "11" column stands for 11.x up to the 11.4 the project
targets, which was not reachable). Line numbers are given as 10.3 / 10.13 / 11.1.

Parsing rules mirrored (SO argsToArgumentsMap 10.3:937-954, getAndDelOptionBehind 10.3:395-414,
getOptimizationProfiles 10.3:691-735, BuildOptions::parse 10.3:1070-1105; trtexec.cpp 10.3:230-249 / 11.1:366-385):
* every argument is ``--name`` or ``--name=value`` (split at the first '='); an argument left over after all
  option parsers ran is "Unknown option" and trtexec fails;
* ``--profile=N`` takes the shape flags at the positions right behind it (up to one each of min/opt/max); a
  ``--profile`` with none behind it throws "Found invalid or missing shape spec at profile index N", as does a
  gap in the indices; a repeated index throws "Optimization profile index cannot be the same";
* without ``--profile``, each of --minShapes/--optShapes/--maxShapes may appear once ("Multiple ... without
  --profile are not allowed");
* ``--profile`` is a BUILD option even on a ``--loadEngine`` line: inference selects with ``--useProfile``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

VERSIONS = ("10.3", "10.13", "11")

_SHAPE = r"[A-Za-z_][\w.:/\-]*:\d+(?:x\d+)*"
VALUE_FORMS = {
    "none": None,  # a bare switch; the project never gives these a value
    "file": r".+",
    "int": r"\d+",
    "shapes": rf"{_SHAPE}(?:,{_SHAPE})*",
    # pool:size with an optional unit (default M): SO 10.3:1124-1170 ("workspace", "dlaSRAM", "dlaLocalDRAM",
    # "dlaGlobalDRAM", "tacticSharedMem"; addDefaultUnitSuffixIfNotSpecified(..., 'M'))
    "mempool": r"(?:workspace|dlaSRAM|dlaLocalDRAM|dlaGlobalDRAM|tacticSharedMem):\d+(?:\.\d+)?[KMG]?"
               r"(?:,(?:workspace|dlaSRAM|dlaLocalDRAM|dlaGlobalDRAM|tacticSharedMem):\d+(?:\.\d+)?[KMG]?)*",
}


@dataclass(frozen=True)
class Flag:
    name: str
    form: str  # key of VALUE_FORMS
    versions: tuple[str, ...]  # where trtexec accepts it
    source: str


FLAGS: tuple[Flag, ...] = (
    Flag("--onnx", "file", VERSIONS, "SO getAndDelOption(arguments, \"--onnx\", model) 977/1006/1012"),
    Flag("--saveEngine", "file", VERSIONS, "SO 1353/1408/1279"),
    Flag("--loadEngine", "file", VERSIONS, "SO 1347/1401/1272"),
    Flag("--minShapes", "shapes", VERSIONS, "SO getShapesBuild 1076/1106/1099; behind --profile 699/723/669"),
    Flag("--optShapes", "shapes", VERSIONS, "SO getShapesBuild 1077/1107/1100; behind --profile 709/733/679"),
    Flag("--maxShapes", "shapes", VERSIONS, "SO getShapesBuild 1078/1108/1101; behind --profile 704/728/674"),
    Flag("--profile", "int", VERSIONS, "SO getOptimizationProfiles(..., \"--profile\") 1070/1100/1093"),
    Flag("--useProfile", "int", VERSIONS, "SO InferenceOptions getAndDelOption(..., \"--useProfile\") 1630/1708/1811"),
    Flag("--shapes", "shapes", VERSIONS, "SO getShapesInference(arguments, shapes, \"--shapes\") 1629/1707/1810"),
    Flag("--stronglyTyped", "none", VERSIONS, "SO 1231/1258/1214 (11.1 help: deprecated no-op, always on)"),
    Flag("--fp16", "none", ("10.3", "10.13"), "SO 1226/1253; absent from 11.1 BuildOptions::parse"),
    Flag("--int8", "none", ("10.3", "10.13"), "SO 1228/1255; 11.1 only in SafeBuilderOptions (trtSafeExec) 2065"),
    Flag("--calib", "file", ("10.3", "10.13"), "SO 1302/1357; absent from 11.1 BuildOptions::parse"),
    Flag("--memPoolSize", "mempool", VERSIONS, "SO 1124/1151/1124, pool names 1147-1170/1174-1197/1147-1170"),
    Flag("--builderOptimizationLevel", "int", VERSIONS, "SO 1448/1505/1367 (help: 0 to 5)"),
    Flag("--timingCacheFile", "file", VERSIONS, "SO 1434/1491/1353"),
    Flag("--skipInference", "none", VERSIONS, "SO 1259/1311/1226"),
)

_BY_NAME = {f.name: f for f in FLAGS}
_SHAPE_FLAGS = ("--minShapes", "--optShapes", "--maxShapes")


def version_column(trt_version: str) -> str:
    """'10.3.0' -> '10.3', '10.13.3' -> '10.13', '11.4.0' -> '11'."""
    parts = trt_version.split(".")
    return "11" if parts[0] == "11" else ".".join(parts[:2])


def check_line(line: str, version: str) -> list[str]:
    """Why trtexec ``version`` ('10.3', '10.13', '11') would reject this command line; empty when it accepts it."""
    args = shlex.split(line)
    if args and not args[0].startswith("--"):
        args = args[1:]  # the binary: trtexec, /usr/src/tensorrt/bin/trtexec or "$TRTEXEC"
    problems: list[str] = []
    parsed: list[tuple[str, str | None]] = []
    for arg in args:
        name, eq, value = arg.partition("=")
        flag = _BY_NAME.get(name)
        if flag is None or version not in flag.versions:
            problems.append(f"Unknown option: {arg} (trtexec {version})")
            parsed.append((name, value if eq else None))
            continue
        form = VALUE_FORMS[flag.form]
        if form is None and eq:
            problems.append(f"{name} takes no value, got {arg!r}")
        elif form is not None and not (eq and re.fullmatch(form, value)):
            problems.append(f"{name} needs a {flag.form} value, got {arg!r}")
        parsed.append((name, value if eq else None))

    # optimization profiles: --profile=N followed by its shape flags
    consumed: set[int] = set()
    indices: list[int] = []
    for pos, (name, value) in enumerate(parsed):
        if name != "--profile" or value is None or not value.isdigit():
            continue
        index = int(value)
        if index in indices:
            problems.append("Optimization profile index cannot be the same.")
        indices.append(index)
        seen: set[str] = set()
        for nxt in range(pos + 1, min(pos + 4, len(parsed))):
            if parsed[nxt][0] in _SHAPE_FLAGS and parsed[nxt][0] not in seen:
                seen.add(parsed[nxt][0])
                consumed.add(nxt)
            else:
                break
        if not seen:
            problems.append(f"Found invalid or missing shape spec at profile index {index}.")
    for expected, index in enumerate(sorted(indices)):
        if index != expected:
            problems.append(f"Found invalid or missing shape spec at profile index {expected}.")
            break
    leftover = [name for pos, (name, _v) in enumerate(parsed) if name in _SHAPE_FLAGS and pos not in consumed]
    if indices and leftover:
        problems.append("Multiple --minShapes/--optShapes/--maxShapes without --profile are not allowed.")
    elif any(leftover.count(f) > 1 for f in _SHAPE_FLAGS):
        problems.append("Multiple --minShapes/--optShapes/--maxShapes without --profile are not allowed.")
    return problems
