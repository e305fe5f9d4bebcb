"""``netpolgen inspect``: summary tables (and a graph) before writing policies."""

from __future__ import annotations

import os
import shutil
import sys

import click

import netpolgen
from netpolgen.cli.options import (
    dask_options,
    echo_report,
    emit,
    flow_format_option,
    global_options,
    input_limit_options,
    inventory_option,
    progress_names,
    report_output_option,
    summary_json,
)
from netpolgen.cli.progress import IngestProgress, show_progress

GRAPH_SUFFIXES = (".svg", ".png", ".pdf", ".dot", ".gv")


def check_graph_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--graph`` with a name write_graph cannot write is a usage error before any work."""
    if value is not None and not value.lower().endswith(GRAPH_SUFFIXES):
        suffix = os.path.splitext(value)[1] or "(none)"
        raise click.BadParameter(
            f"unknown graph file type {suffix!r}: name the file .svg, .png, .pdf or .dot"
        )
    return value


@click.command("inspect")
@click.argument("flows", nargs=-1, required=True, type=click.Path(allow_dash=True))
@flow_format_option
@inventory_option
@click.option("-F", "--format", "report_format", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True,
              help="Tables (aligned on a terminal, tab-separated otherwise), CSV sections "
                   "(# name) or one JSON document.")  # fmt: skip
@report_output_option
@click.option("--graph", "graph", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              callback=check_graph_name,
              help="Also write the communication graph: .svg, .png or .pdf (needs the notebook "
                   "extra) or .dot/.gv (Graphviz text).")  # fmt: skip
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many endpoints the top-talker table lists.")  # fmt: skip
@click.option("--include-denied", is_flag=True, help="Count denied flows as traffic.")
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@dask_options
@global_options
@input_limit_options
def inspect(
    flows: tuple[str, ...],
    flow_format: str,
    inventories: tuple[str, ...],
    report_format: str,
    output: str,
    graph: str | None,
    top: int,
    include_denied: bool,
    strict: bool,
    max_line_bytes: int,
    engine: str,
    scheduler: str | None,
    quiet: bool,
    verbose: int,
    summary: str,
) -> None:
    """Summarise FLOWS before writing policies: who talks to whom, on which ports, how much.

    Prints the records read, used and skipped, the top talkers, protocols and ports, the
    workloads with their selectors, every edge with its ports and flow count, and the addresses
    nothing identified. Replies and denied flows are left out of the tables, as from-flows
    leaves them out of the policies.

    \b
    Example:
        netpolgen inspect sample_flows/online-shop.csv
        netpolgen inspect vpc-flows.log.gz -i inventory.json
        netpolgen inspect hubble.jsonl -F json -o summary.json
        netpolgen inspect sample_flows/online-shop.csv --graph shop.svg -q
    """
    progress = IngestProgress(progress_names(flows, engine), enabled=show_progress(quiet))
    with progress as on_chunk:
        result = netpolgen.inspect_flows(
            flows, flow_format, inventory=inventories, strict=strict,
            include_denied=include_denied, top=top, on_chunk=on_chunk,
            max_line_bytes=max_line_bytes, engine=engine, scheduler=scheduler,
        )  # fmt: skip
    # Boxes fitted to the terminal on a terminal; in a pipe or a file, tab-separated lines,
    # which never wrap in the middle of a name.
    terminal = output == "-" and sys.stdout.isatty()
    width = shutil.get_terminal_size((120, 24)).columns if terminal else None
    text = netpolgen.format_summary(result, report_format, width=width, plain=not terminal)
    emit(text, output)
    if graph is not None:
        netpolgen.write_graph(result.edges_table, graph)
        if not quiet:
            click.echo(f"wrote the communication graph to {graph}", err=True)
    if summary == "json":
        click.echo(summary_json(result.report, result.warnings), err=True)
    else:
        echo_report(result.report, result.warnings, quiet, verbose, summary=False)
