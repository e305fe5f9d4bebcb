"""``netpolgen inspect``: summary tables (and a graph) before writing policies."""

from __future__ import annotations

import shutil
import sys

import click

import netpolgen
from netpolgen.cli.options import (
    DEFAULT_MAX_LINE_BYTES,
    dask_options,
    echo_report,
    flow_format_option,
    inventory_option,
    progress_names,
)
from netpolgen.cli.progress import IngestProgress, show_progress, verbosity_options


@click.command("inspect")
@click.argument("flows", nargs=-1, required=True)
@flow_format_option
@inventory_option
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True,
              help="Terminal tables, CSV sections (# name) or one JSON document.")  # fmt: skip
@click.option("--graph", "graph", type=click.Path(dir_okay=False), default=None,
              help="Also write the communication graph: .svg, .png or .pdf (needs the notebook "
                   "extra) or .dot (Graphviz text).")  # fmt: skip
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many endpoints the top-talker table lists.")  # fmt: skip
@click.option("--include-denied", is_flag=True, help="Count denied flows as traffic.")
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@click.option(
    "--max-line-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_LINE_BYTES,
    show_default=True,
    help="Skip (and count) longer lines of line-based formats without reading them whole.",
)  # fmt: skip
@dask_options
@verbosity_options
def inspect(
    flows: tuple[str, ...],
    flow_format: str,
    inventories: tuple[str, ...],
    output_format: str,
    graph: str | None,
    top: int,
    include_denied: bool,
    strict: bool,
    max_line_bytes: int,
    engine: str,
    scheduler: str | None,
    quiet: bool,
    verbose: int,
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
        netpolgen inspect hubble.jsonl --format json > summary.json
        netpolgen inspect sample_flows/online-shop.csv --graph shop.svg -q
    """
    progress = IngestProgress(progress_names(flows, engine), enabled=show_progress(quiet))
    with progress as on_chunk:
        summary = netpolgen.inspect_flows(
            flows, flow_format, inventory=inventories, strict=strict,
            include_denied=include_denied, top=top, on_chunk=on_chunk,
            max_line_bytes=max_line_bytes, engine=engine, scheduler=scheduler,
        )  # fmt: skip
    width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else 120
    click.echo(netpolgen.format_summary(summary, output_format, width=width), nl=False)
    if graph is not None:
        netpolgen.write_graph(summary.edges_table, graph)
        if not quiet:
            click.echo(f"wrote the communication graph to {graph}", err=True)
    echo_report(summary.report, summary.warnings, quiet, verbose, summary=False)
