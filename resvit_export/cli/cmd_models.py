"""``resvit-export models``: the registry with parameter counts and FLOPs."""

from __future__ import annotations

import click

from .common import handle_errors


@click.command()
@click.option("--family", default=None, help="Only this family (vitar, resformer, navit, rivit, deit).")
@click.option("--resolution", default=224, show_default=True, type=click.IntRange(16, 4096),
              help="Square input size for the FLOP count.")
@click.option("--no-flops", is_flag=True, help="Skip FLOP counting (faster).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handle_errors
def models(family, resolution, no_flops, as_json):
    """List registered models with parameters and GFLOPs at a resolution."""
    import json

    from resvit_export.models import create_model, get_entry, list_models
    from resvit_export.models.flops import count_flops, count_params

    rows = []
    for name in list_models(family):
        entry = get_entry(name)
        model = create_model(name)
        rule = model.size_rule
        flops = None if no_flops or resolution < rule.min_side else count_flops(model, resolution)
        rows.append({"name": name, "family": entry.family, "params_m": count_params(model) / 1e6,
                     "gflops": None if flops is None else flops / 1e9, "min_side": rule.min_side,
                     "description": entry.description})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"resvit-export models (GFLOPs at {resolution}x{resolution}, 2 FLOPs per MAC)")
    for col, justify in (("name", "left"), ("family", "left"), ("params (M)", "right"), ("GFLOPs", "right"),
                         ("min side", "right"), ("description", "left")):
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(r["name"], r["family"], f"{r['params_m']:.2f}",
                      "-" if r["gflops"] is None else f"{r['gflops']:.2f}", str(r["min_side"]), r["description"])
    Console(width=120).print(table)
