"""``resvit-export bundle``: pack a build directory for on-device engine building, or verify/extract a bundle."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import final_line, handle_errors
from .options import allow_unverified_option


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Archive to write (default ./bundle.tar.gz) when SOURCE is a directory.")
@click.option("--extract-to", type=click.Path(path_type=Path), default=None,
              help="SOURCE is an archive: verify, then extract it into this (empty) directory.")
@click.option("--force", is_flag=True, help="Overwrite an existing archive.")
@allow_unverified_option
@handle_errors
def bundle(source, out_path, extract_to, force, allow_unverified):
    """Pack SOURCE (a PASSED build directory) into a verified tar.gz for the device; or, when SOURCE is an
    archive, verify its SHA256SUMS and safety (and extract with --extract-to).

    Exit 6 on a directory that is not PASSED or was modified since, and on a tampered or unsafe bundle."""
    from resvit_export.bundle.bundle import create_bundle, extract_bundle, verify_bundle
    from resvit_export.errors import OutputDirError, UsageError

    started = time.monotonic()
    if source.is_dir():
        if extract_to is not None:
            raise UsageError("--extract-to takes an archive as SOURCE, not a directory")
        info = create_bundle(source, out_path or Path("bundle.tar.gz"), force=force, allow_unverified=allow_unverified)
        verify_bundle(info.path)
        if info.origin and info.origin["allow_unverified"]:
            click.echo(f"UNVERIFIED: {source} ({info.origin['source_status']}) bundled with --allow-unverified; "
                       "recorded in bundle.json", err=True)
        click.echo(f"wrote {info.path} ({len(info.files)} files; ONNX precisions: {', '.join(info.precisions)})")
        for name in info.files:
            click.echo(f"  {name}")
        click.echo("on the device: tar xzf bundle.tar.gz -C DIR && DIR/build_engine.sh")
        final_line(True, "bundle", started, f"{info.path.name}, {len(info.files)} files, hashes verified")
        return
    if out_path is not None:
        raise UsageError("-o is for packing a directory; to unpack an archive use --extract-to DIR")
    if extract_to is not None and extract_to.exists() and not extract_to.is_dir():
        raise OutputDirError(f"extraction target {extract_to} exists and is not a directory; choose another")
    names = verify_bundle(source)
    click.echo(f"{source}: {len(names)} files, safe member names, every sha256 matches SHA256SUMS")
    if extract_to is not None:
        dest = extract_bundle(source, extract_to)
        click.echo(f"extracted into {dest}")
    final_line(True, "bundle", started, "verified" + (f" and extracted to {extract_to}" if extract_to else ""))
