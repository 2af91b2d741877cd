"""``resvit-export inspect``: read an engine's sidecar manifest, verify hashes and explain host mismatches
BEFORE any deserialization (TensorRT is never imported)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import final_line, handle_errors
from .options import allow_unverified_option


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--strict", is_flag=True, help="Exit 8 when the plan cannot load on this host.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@allow_unverified_option
@handle_errors
def inspect(path, strict, as_json, allow_unverified):
    """Explain whether the engine at PATH (plan file, build directory or manifest.json) can run on this host,
    and what its parity check recorded (engine parity: PASSED n/n, FAILED, or not checked).

    Exit 6 when the directory's status.json is not PASSED, or an artifact does not match its recorded sha256
    (tampered or corrupted)."""
    import json

    from resvit_export.bundle.device.check_engine import describe_record, device_sidecar
    from resvit_export.errors import EngineBuildError, InvalidArtifactError
    from resvit_export.io import sha256_file
    from resvit_export.status import require_passed
    from resvit_export.trt.manifest import (check_manifest_against_host, find_manifest, host_info, read_manifest,
                                            verify_artifacts)

    started = time.monotonic()
    mpath = find_manifest(path)
    status = require_passed(mpath.parent, allow_unverified, consumes=[mpath.name])
    manifest = read_manifest(mpath)
    problems = verify_artifacts(manifest, mpath.parent)
    engines = [a for a in manifest.get("artifacts", []) if a.get("role") == "engine"]
    plans = [path] if path.is_file() and path.suffix != ".json" else sorted(mpath.parent.glob("*.plan"))
    device_built = {p.name: side for p in plans if (side := device_sidecar(p)) is not None}  # build_engine.sh's
    if path.is_file() and path.suffix != ".json":
        digest = sha256_file(path)
        if not any(a.get("sha256") == digest for a in engines) and path.name not in device_built:
            problems.append(f"{path.name} is not the engine this manifest describes (its sha256 matches no recorded "
                            "engine): it was rebuilt or replaced")
    host = host_info()
    mismatches = check_manifest_against_host(manifest, host) if engines else []
    findings = {"manifest": str(mpath), "model": manifest.get("model"),
                "precision": (manifest.get("precision") or {}).get("mode"),
                "tensorrt": manifest.get("tensorrt"), "gpu": manifest.get("gpu"), "jetpack": manifest.get("jetpack"),
                "profiles": manifest.get("profiles"), "engine_status": "built" if engines else "deferred",
                "host": host.to_dict(), "tampered": problems, "host_mismatches": mismatches,
                "status": status.describe() if status else "no status.json",
                "verified": bool(status and status.passed),
                "device_built": device_built, "engine_parity": {p.name: describe_record(str(p)) for p in plans}}
    if as_json:
        click.echo(json.dumps(findings, indent=2))
    else:
        gpu = manifest.get("gpu") or {}
        click.echo(f"manifest: {mpath}")
        if not findings["verified"]:
            click.echo(f"UNVERIFIED: {findings['status']} (--allow-unverified)")
        click.echo(f"model {manifest.get('model')} ({manifest.get('family')}), precision {findings['precision']}, "
                   f"{len(manifest.get('profiles') or [])} profile(s)")
        for p in manifest.get("profiles") or []:
            s = p.get("shapes", {})
            click.echo(f"  profile {p['index']}: min {s.get('min')} opt {s.get('opt')} max {s.get('max')}")
        if engines:
            click.echo(f"built with TensorRT {manifest.get('tensorrt')} on {gpu.get('name')} "
                       f"(compute {gpu.get('compute_capability')}), JetPack {manifest.get('jetpack') or '-'}")
        elif not device_built:
            click.echo("no engine recorded: the engine step was deferred - build on the device "
                       "(`resvit-export bundle` + build_engine.sh)")
        for name, side in device_built.items():
            click.echo(f"{name}: built on this device by {side.get('built_by')} from {side.get('onnx')} with "
                       f"TensorRT {side.get('tensorrt') or '?'}, JetPack {side.get('jetpack') or '-'}")
        for name, line in findings["engine_parity"].items():
            click.echo(f"{name}: {line}")
        fp32 = (manifest.get("precision") or {}).get("fp32_nodes") or []
        if fp32:
            click.echo(f"{len(fp32)} node(s) kept in FP32")
        click.echo(f"artifacts: {len(manifest.get('artifacts', []))} recorded, "
                   f"{'all hashes match' if not problems else str(len(problems)) + ' problem(s)'}")
        for p in problems:
            click.echo(f"  TAMPERED: {p}")
        for msg in mismatches:
            click.echo(f"  HOST: {msg}")
    if problems:
        raise InvalidArtifactError(f"{len(problems)} artifact(s) failed verification: {problems[0]}")
    if mismatches and strict:
        raise EngineBuildError(mismatches[0])
    if not as_json:
        detail = "artifacts verified; " + (f"{len(mismatches)} host mismatch(es): rebuild on the device" if mismatches
                                            else ("loadable on this host" if engines else
                                                  "engine built on the device" if device_built else "engine deferred"))
        final_line(True, "inspect", started, detail)
