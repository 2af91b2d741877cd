"""``resvit-export lint``: check an ONNX graph against TensorRT ONNX parser versions (no TensorRT needed)."""

from __future__ import annotations

import contextlib
import sys
import time

import click

from .common import final_line, handle_errors
from .options import target_option


@click.command()
@click.argument("onnx_path", type=click.Path(exists=True, dir_okay=False))
@target_option("Parser to lint for (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also write the report as JSON.")
@handle_errors
def lint(onnx_path, targets, as_json, output):
    """Lint ONNX_PATH for TensorRT targets; exit 5 when any target has errors."""
    import json

    from resvit_export.graph.lint import lint_onnx
    from resvit_export.io import write_json_atomic

    started = time.monotonic()
    _require_graph(onnx_path)
    reports = [lint_onnx(onnx_path, t) for t in (targets or (None,))]
    data = {"model": onnx_path, "passed": all(reports), "reports": [r.to_dict() for r in reports]}
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print_tables(reports)
    if output:
        write_json_atomic(output, data)
    n_err = sum(len(r.errors) for r in reports)
    # With --json stdout stays pure JSON: the closing line goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        final_line(n_err == 0, "lint", started, f"{n_err} error(s), {sum(len(r.warnings) for r in reports)} "
                                                f"warning(s) for {', '.join(r.target for r in reports)}")
    if n_err:
        raise click.exceptions.Exit(5)


def _require_graph(onnx_path: str) -> None:
    """An empty or graph-less file parses as an empty ModelProto, and nothing in it breaks a rule: refuse it
    (exit 6) rather than call it PASSED."""
    import onnx

    from resvit_export.errors import InvalidArtifactError

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise InvalidArtifactError(f"{onnx_path} is not a readable ONNX model ({type(err).__name__})") from None
    if not model.graph.node or not model.graph.output:
        raise InvalidArtifactError(f"{onnx_path} holds no graph (0 nodes or no outputs): nothing to lint; pass the "
                                   "model.onnx / model.rewritten.onnx a build wrote")


def _print_tables(reports) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    for r in reports:
        table = Table(title=str(r), show_lines=False)
        for col in ("rule", "severity", "node", "op", "message", "fix"):
            table.add_column(col, overflow="fold")
        for f in r.findings:
            table.add_row(f.rule_id, f.severity, f.node, f.op, f.message, f.fix)
        console.print(table)
