"""Target-device presets and memory-size parsing (pure; no TensorRT, no GPU).

Jetson boards have *unified* memory: the CPU, the OS, the desktop and TensorRT share one pool. The usable budget
of a preset is 75% of the board's memory - the same fraction TensorRT itself assumes on embedded devices for
``MemoryPoolType.TACTIC_DRAM`` (NvInfer.h, TensorRT 10.x/11.1: "defaults to 75% of totalGlobalMem on embedded
devices"), leaving the rest to the OS and the application. Pass ``--memory-budget`` to override.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resvit_export.errors import UsageError

__all__ = ["DevicePreset", "DEVICE_PRESETS", "get_device", "parse_memory_size", "format_bytes", "EMBEDDED_USABLE_FRACTION"]

EMBEDDED_USABLE_FRACTION = 0.75
GiB = 1 << 30


@dataclass(frozen=True)
class DevicePreset:
    name: str
    label: str
    memory_bytes: int
    compute_capability: str  # "8.7" -> sm_87
    dla_cores: int
    jetpacks: tuple[str, ...]
    unified_memory: bool = True

    @property
    def budget_bytes(self) -> int:
        return int(self.memory_bytes * EMBEDDED_USABLE_FRACTION)

    @property
    def sm(self) -> str:
        return "sm_" + self.compute_capability.replace(".", "")

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "memory_bytes": self.memory_bytes,
                "budget_bytes": self.budget_bytes, "compute_capability": self.compute_capability,
                "dla_cores": self.dla_cores, "jetpacks": list(self.jetpacks)}


# Orin = Ampere-class iGPU sm_87; Thor = Blackwell-class sm_110 (CUDA 13 numbering), no DLA.
# DLA core counts: AGX Orin / Orin NX 16GB have 2, Orin Nano none (research §2, "from memory, unverified").
DEVICE_PRESETS: dict[str, DevicePreset] = {
    "orin-nano": DevicePreset("orin-nano", "Jetson Orin Nano 8GB", 8 * GiB, "8.7", 0, ("6.1", "6.2")),
    "orin-nx-16": DevicePreset("orin-nx-16", "Jetson Orin NX 16GB", 16 * GiB, "8.7", 2, ("6.1", "6.2")),
    "agx-orin-32": DevicePreset("agx-orin-32", "Jetson AGX Orin 32GB", 32 * GiB, "8.7", 2, ("6.1", "6.2", "7.2")),
    "agx-orin-64": DevicePreset("agx-orin-64", "Jetson AGX Orin 64GB", 64 * GiB, "8.7", 2, ("6.1", "6.2", "7.2")),
    "thor": DevicePreset("thor", "Jetson AGX Thor 128GB", 128 * GiB, "11.0", 0, ("7.0", "7.1", "7.2")),
}


def get_device(name: str) -> DevicePreset:
    key = str(name).strip().lower()
    if key not in DEVICE_PRESETS:
        raise UsageError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_PRESETS)} "
                         "or give --memory-budget (e.g. 6G)")
    return DEVICE_PRESETS[key]


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_memory_size(text: str | int) -> int:
    """'6G', '6GiB', '6GB', '512M', '1.5g', '1048576' -> bytes. Units are binary (like trtexec --memPoolSize)."""
    if isinstance(text, int):
        if text <= 0:
            raise UsageError(f"memory size must be positive, got {text}")
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text).lower())
    if not m:
        raise UsageError(f"bad memory size {text!r}; write e.g. 6G, 512M or 1.5GiB (binary units)")
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if value < 1:
        raise UsageError(f"memory size {text!r} must be positive")
    return int(value)


def format_bytes(n: float) -> str:
    n = float(n)
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"
