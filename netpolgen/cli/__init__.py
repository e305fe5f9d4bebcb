"""The ``netpolgen`` command: thin wrappers that parse options and call one library function.

Exit codes: 0 success; 1 error (bad input, named with file and line); 2 usage; 3 ``verify`` found
observed flows that the policies deny. Policies and reports go to standard output or the output
directory; progress, summaries and warnings go to standard error.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

import netpolgen
from netpolgen._memory import tune_allocator
from netpolgen.cli.progress import IngestProgress, show_progress, verbosity_options
from netpolgen.ingest.accounting import require_usable_flows, summary_json
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES

EXIT_ERROR = 1


class _Group(click.Group):
    """The one place where library errors become clean messages (exit code 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except netpolgen.NetpolgenError as error:
            raise click.ClickException(str(error)) from None


def _debug_requested() -> bool:
    return "--debug" in sys.argv or os.environ.get("NETPOLGEN_DEBUG") == "1"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(netpolgen.__version__, prog_name="netpolgen")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for internal errors.")
def cli(debug: bool) -> None:
    """Least-privilege Kubernetes NetworkPolicies from observed network flows.

    \b
    Exit codes: 0 success, 1 error, 2 usage error, 3 verify found denied flows.
    """


def input_limit_options(command: Any) -> Any:
    """``--max-line-bytes`` and ``--summary``: shared by the commands that read flows."""
    command = click.option(
        "--summary", type=click.Choice(["text", "json"]), default="text", show_default=True,
        help="How to print the accounting on standard error (records read = used + skipped + "
             "filtered, by reason); json is one machine-readable line, printed even with -q.",
    )(command)  # fmt: skip
    return click.option(
        "--max-line-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_LINE_BYTES,
        show_default=True,
        help="Skip (and count) longer lines of line-based formats without reading them whole.",
    )(command)  # fmt: skip


def _echo_report(
    report: netpolgen.IngestReport,
    warnings: list[str],
    quiet: bool,
    verbose: int = 0,
    *,
    summary: bool = True,
) -> None:
    if quiet:
        return
    if verbose:
        for name, fmt in report.formats.items():
            click.echo(f"read {name} as {fmt}", err=True)
    for message in report.messages:
        click.echo(f"warning: {message}", err=True)
    for message in warnings:
        click.echo(f"warning: {message}", err=True)
    if summary or verbose:
        click.echo(report.summary(), err=True)


F = Any  # a click-decorated function


def engine_options(command: F) -> F:
    """``--engine``, ``--scheduler`` and ``--workers``: how the flows are read and reduced.

    Shared by the commands that stream flows, so they all scale the same way.
    """
    command = click.option(
        "--workers", type=click.IntRange(min=0), default=0, show_default="0: one per core",
        help="Processes that parse big flow files in parallel (1: off). By default big Hubble "
        "JSON files are cut into parts for N processes, and a big AWS VPC file is read by one "
        "process while this one works on its chunks; from-flows also splits a big CSV file "
        "when N is given (~300 MB more memory per process; on 2 cores the default, which "
        "parses CSV on a second thread, is faster).",
    )(command)  # fmt: skip
    return dask_options(command)


def dask_options(command: F) -> F:
    """``--engine`` and ``--scheduler``: read the flows in this process or on Dask."""
    command = click.option(
        "--scheduler", metavar="ADDRESS", default=None,
        help="With --engine dask: a Dask scheduler (tcp://host:8786); default a local cluster.",
    )(command)  # fmt: skip
    return click.option(
        "--engine", type=click.Choice(["pandas", "dask"]), default="pandas", show_default=True,
        help="pandas: stream the files in this process; dask: read them on a Dask cluster, "
             "one task per file (many files, globs, fsspec URLs; from-flows also reduces them "
             "there; pip install 'netpolgen[dask]').",
    )(command)  # fmt: skip


def _progress_names(inputs: Sequence[str], engine: str) -> list[str]:
    """The files a progress bar counts: the inputs, or with Dask what their globs expand to."""
    if engine != "dask":
        return list(inputs)
    from netpolgen.engine.dask import named_inputs

    return [name for name, _ in named_inputs(inputs)]


# Shared options. from-flows keeps -f/--format from the contract; the commands that also print a
# report use --format for the report, so their flow format is -f/--flow-format.
_flow_format_option = click.option(
    "-f", "--flow-format", "flow_format", default="auto", show_default=True,
    type=click.Choice(["auto", *netpolgen.FORMATS]), help="Flow-log format; auto sniffs content.",
)  # fmt: skip
_inventory_option = click.option(
    "-i", "--inventory", "inventories", multiple=True, type=click.Path(),
    help="kubectl get pods,services,namespaces,nodes -A -o json; repeat for snapshots "
         "(or give a directory of them).",
)  # fmt: skip


@cli.command("from-flows")
@click.argument("flows", nargs=-1, required=True)
@click.option(
    "-f", "--format", "flow_format", default="auto", show_default=True,
    type=click.Choice(["auto", *netpolgen.FORMATS]), help="Flow-log format; auto sniffs content.",
)  # fmt: skip
@_inventory_option
@click.option(
    "-o", "--output", default="-", show_default=True,
    help="A directory (one file per policy, <namespace>/<name>.yaml) or - for standard output.",
)  # fmt: skip
@click.option("--ingress/--no-ingress", default=True, show_default=True,
              help="Write <workload>-access-ingress policies.")  # fmt: skip
@click.option("--egress/--no-egress", default=True, show_default=True,
              help="Write <workload>-access-egress policies.")  # fmt: skip
@click.option("--allow-dns/--no-allow-dns", default=True, show_default=True,
              help="Allow egress to kube-dns on UDP/TCP 53 in every egress policy.")  # fmt: skip
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Write policies only for this namespace (repeatable).")  # fmt: skip
@click.option("--min-count", type=click.IntRange(min=1), default=1, show_default=True,
              help="Ignore connections seen fewer times than this.")  # fmt: skip
@click.option("--include-denied", is_flag=True, help="Treat denied flows as wanted traffic.")
@click.option("--default-deny", is_flag=True,
              help="Also emit default-deny-ingress/-egress per namespace (not system "
                   "ones).")  # fmt: skip
@click.option("--cidr-prefix-min", type=click.IntRange(0, 32), default=32, show_default=True,
              help="Widen outside IPv4 peers to this prefix length (32: exact; adjacent addresses "
                   "are always merged exactly). Cluster addresses stay excepted.")  # fmt: skip
@click.option("--cidr6-prefix-min", type=click.IntRange(0, 128), default=128, show_default=True,
              help="The same for IPv6 peers.")  # fmt: skip
@click.option("--port-range-min", type=click.IntRange(min=0), default=0, show_default=True,
              help="Collapse runs of at least N consecutive observed ports into one endPort "
                   "range (0: never).")  # fmt: skip
@click.option("--group-ips", is_flag=True,
              help="Group addresses without labels or inventory by behaviour (scikit-learn) and "
                   "list each group's blocks in an annotation.")  # fmt: skip
@click.option("--named-ports", is_flag=True,
              help="Write ports by the name the destination's containers give them, where all "
                   "its pods in the inventory agree (needs -i).")  # fmt: skip
@click.option("--ip-group-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Jaccard distance at which --group-ips groups stop merging.")  # fmt: skip
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--flavor", type=click.Choice(netpolgen.FLAVORS), default="k8s", show_default=True,
              help="Policy API: k8s NetworkPolicy, cilium CiliumNetworkPolicy, calico-staged "
                   "StagedKubernetesNetworkPolicy (audit before enforcing).")  # fmt: skip
@click.option("--cluster-policies", is_flag=True,
              help="Also write a Baseline-tier ClusterNetworkPolicy default deny for the "
                   "namespaces generated (policy.networking.k8s.io/v1alpha2).")  # fmt: skip
@verbosity_options
@engine_options
@input_limit_options
def from_flows(
    flows: tuple[str, ...],
    flow_format: str,
    inventories: tuple[str, ...],
    output: str,
    ingress: bool,
    egress: bool,
    allow_dns: bool,
    namespaces: tuple[str, ...],
    min_count: int,
    include_denied: bool,
    default_deny: bool,
    cidr_prefix_min: int,
    cidr6_prefix_min: int,
    port_range_min: int,
    group_ips: bool,
    named_ports: bool,
    ip_group_threshold: float,
    strict: bool,
    force: bool,
    flavor: str,
    cluster_policies: bool,
    quiet: bool,
    verbose: int,
    engine: str,
    scheduler: str | None,
    workers: int,
    max_line_bytes: int,
    summary: str,
) -> None:
    """Generate policies that allow exactly the traffic seen in FLOWS.

    FLOWS are flow-log files (.gz read transparently) or - for standard input.
    Files are streamed: memory depends on distinct connections, not on file size.

    \b
    Example:
        netpolgen from-flows sample_flows/three-tier.csv --no-egress
        netpolgen from-flows hubble.jsonl.gz -o policies/
        netpolgen from-flows vpc-flows.log.gz -i pods-0900.json -i pods-1000.json
        netpolgen from-flows 'logs/*.jsonl' --engine dask -o policies/
    """
    options = netpolgen.GenerateOptions(
        ingress=ingress,
        egress=egress,
        allow_dns=allow_dns,
        namespaces=namespaces,
        min_count=min_count,
        include_denied=include_denied,
        default_deny=default_deny,
        cidr_prefix_v4=cidr_prefix_min,
        cidr_prefix_v6=cidr6_prefix_min,
        port_range_min=port_range_min,
        group_ips=group_ips,
        ip_group_threshold=ip_group_threshold,
        named_ports=named_ports,
    )
    progress = IngestProgress(_progress_names(flows, engine), enabled=show_progress(quiet))
    with progress as on_chunk:
        result = netpolgen.generate_from_files(
            flows, options, format=flow_format, strict=strict, inventory=inventories,
            workers=workers or None, max_line_bytes=max_line_bytes, on_chunk=on_chunk,
            engine=engine, scheduler=scheduler,
        )  # fmt: skip
    # Nothing usable is an error, checked before anything is written (see README).
    with _summary_on_error(result.report, result.warnings, summary, quiet):
        require_usable_flows(result.report)
    dns = netpolgen.read_dns_map(flows) if engine == "pandas" else None  # Hubble DNS answers
    if output == "-":
        text = netpolgen.flavor_yaml(
            result.policies, flavor, dns=dns, cluster_policies=cluster_policies
        )
        click.echo(text, nl=False)
    else:
        written = netpolgen.write_flavor_dir(
            result.policies, output, flavor, force=force, dns=dns,
            cluster_policies=cluster_policies,
        )  # fmt: skip
        if not quiet and summary == "text":
            click.echo(f"wrote {len(written)} policies to {output}", err=True)
    if summary == "json":
        click.echo(
            summary_json(result.report, result.warnings, policies=len(result.policies),
                         output=output),
            err=True,
        )  # fmt: skip
    else:
        _echo_report(result.report, result.warnings, quiet, verbose)


@contextmanager
def _summary_on_error(
    report: netpolgen.IngestReport, warnings: list[str], summary: str, quiet: bool
) -> Iterator[None]:
    """On an input error, still print what was read: the skip messages explain the error."""
    try:
        yield
    except netpolgen.NetpolgenError as error:
        if summary == "json":
            click.echo(summary_json(report, warnings, error=str(error)), err=True)
        elif not quiet:
            for message in report.messages:
                click.echo(f"warning: {message}", err=True)
        raise


@cli.command("inspect")
@click.argument("flows", nargs=-1, required=True)
@_flow_format_option
@_inventory_option
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
    progress = IngestProgress(_progress_names(flows, engine), enabled=show_progress(quiet))
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
    _echo_report(summary.report, summary.warnings, quiet, verbose, summary=False)


EXIT_DENIED = 3
REPORT_FORMATS = click.Choice(["table", "json", "markdown"])


def _echo_warnings(warnings: list[str], quiet: bool) -> None:
    if not quiet:
        for message in warnings:
            click.echo(f"warning: {message}", err=True)


@cli.command("verify")
@click.argument("more_flows", nargs=-1, metavar="[FLOWS]...")
@click.option("--flows", "flows", multiple=True, help="A flow file (repeatable; more may follow).")
@click.option("--policies", "policies", required=True, type=click.Path(exists=True),
              help="A policy file or a directory of them (YAML, JSON, List).")  # fmt: skip
@_inventory_option
@_flow_format_option
@click.option("--format", "report_format", type=REPORT_FORMATS, default="table",
              show_default=True, help="Report format.")  # fmt: skip
@click.option("--over-permissive/--no-over-permissive", default=True, show_default=True,
              help="Also list allowed connections between known workloads that no flow "
                   "used.")  # fmt: skip
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@engine_options
@verbosity_options
@input_limit_options
def verify_command(
    more_flows: tuple[str, ...],
    flows: tuple[str, ...],
    policies: str,
    inventories: tuple[str, ...],
    flow_format: str,
    report_format: str,
    over_permissive: bool,
    strict: bool,
    engine: str,
    scheduler: str | None,
    workers: int,
    quiet: bool,
    verbose: int,
    max_line_bytes: int,
    summary: str,
) -> None:
    """Replay observed flows against policies; exit 3 if any observed flow is denied.

    Reports flows and distinct edges allowed and denied, the denied ones by workload pair and
    port with the policies that isolate each end, and allowed-but-unused connections between
    known workloads (over-permissiveness). Replies and flows the network denied are not checked.

    \b
    Example:
        netpolgen verify --flows hubble.jsonl --policies policies/ -i inventory.json
        netpolgen verify --flows a.csv b.csv --policies live.yaml --format markdown
    """
    sources = [*flows, *more_flows]
    if not sources:
        raise click.UsageError("give at least one flow file with --flows")
    progress = IngestProgress(_progress_names(sources, engine), enabled=show_progress(quiet))
    with progress as on_chunk:
        report = netpolgen.verify_files(
            sources, policies, inventories, format=flow_format, strict=strict,
            over_permissive=over_permissive, max_line_bytes=max_line_bytes, on_chunk=on_chunk,
            workers=workers or None, engine=engine, scheduler=scheduler,
        )  # fmt: skip
    if report.ingest is not None:
        # Verifying nothing would pass vacuously: no usable flow is an error here too.
        with _summary_on_error(report.ingest, [], summary, quiet):
            require_usable_flows(report.ingest)
    click.echo(netpolgen.format_report(report, report_format), nl=False)
    if report.ingest is not None and summary == "json":
        click.echo(summary_json(report.ingest, report.warnings, ok=report.ok), err=True)
    elif report.ingest is not None:
        _echo_report(report.ingest, [], quiet, verbose)  # report warnings are in the report
    if not report.ok:
        sys.exit(EXIT_DENIED)


@cli.command("diff")
@click.argument("old", type=click.Path(exists=True))
@click.argument("new", type=click.Path(exists=True))
@_inventory_option
@click.option("--format", "report_format", type=REPORT_FORMATS, default="table",
              show_default=True, help="Report format.")  # fmt: skip
@verbosity_options
def diff_command(
    old: str, new: str, inventories: tuple[str, ...], report_format: str, quiet: bool,
    verbose: int,
) -> None:  # fmt: skip
    """Show which connections between known workloads OLD allows and NEW does not, and back.

    OLD and NEW are policy files or directories. Workloads come from the inventory (or, without
    one, are guessed from the policies' selectors). Behaviour is compared, not text.

    \b
    Example:
        netpolgen diff live/ generated/ -i inventory.json
    """
    diff = netpolgen.diff_files(old, new, inventories)
    click.echo(netpolgen.format_diff(diff, report_format), nl=False)
    if verbose and not quiet:
        # The report (stdout) already lists the warnings; say where the workloads came from.
        click.echo(f"workloads compared: {diff.workloads} ({diff.workload_source})", err=True)


@cli.command("migrate")
@click.argument("flows", nargs=-1, required=True)
@click.option("--policies", "policies", type=click.Path(exists=True), default=None,
              help="The policies in force today (file or directory); none if omitted.")  # fmt: skip
@_inventory_option
@_flow_format_option
@click.option("-o", "--output", required=True, help="Directory for the staged plan.")
@click.option("--include-system", is_flag=True,
              help="Stage kube-system and other system namespaces too.")  # fmt: skip
@click.option("--allow-dns/--no-allow-dns", default=True, show_default=True,
              help="Allow egress to kube-dns on UDP/TCP 53 in every egress policy.")  # fmt: skip
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--flavor", type=click.Choice(netpolgen.FLAVORS), default="k8s", show_default=True,
              help="Policy API of the stages; calico-staged writes each stage staged, then "
                   "enforced.")  # fmt: skip
@verbosity_options
@input_limit_options
def migrate_command(
    flows: tuple[str, ...],
    policies: str | None,
    inventories: tuple[str, ...],
    flow_format: str,
    output: str,
    include_system: bool,
    allow_dns: bool,
    strict: bool,
    force: bool,
    flavor: str,
    quiet: bool,
    verbose: int,
    max_line_bytes: int,
    summary: str,
) -> None:
    """Plan the move to default-deny in stages that break no observed flow.

    Writes one folder per stage (namespace and direction, least risky first) with the allow
    policies, the default-deny policy and a rollback list, and a README.md to review.

    \b
    Example:
        netpolgen migrate flows.csv --policies live/ -i inventory.json -o plan/
    """
    options = netpolgen.MigrationOptions(
        include_system=include_system, generate=netpolgen.GenerateOptions(allow_dns=allow_dns)
    )
    with IngestProgress(flows, enabled=show_progress(quiet)) as on_chunk:
        plan = netpolgen.plan_migration_from_files(
            flows, policies, inventories, options, format=flow_format, strict=strict,
            max_line_bytes=max_line_bytes, on_chunk=on_chunk,
        )  # fmt: skip
    if plan.ingest is not None:
        # A plan from no flows would stage default-deny for traffic nobody looked at.
        with _summary_on_error(plan.ingest, plan.warnings, summary, quiet):
            require_usable_flows(plan.ingest)
    if flavor == "k8s":
        netpolgen.write_plan(plan, output, force=force)
    else:
        from netpolgen.check.migrate_flavors import write_plan_flavor

        write_plan_flavor(plan, output, flavor, force=force)
    if plan.ingest is not None and summary == "json":
        click.echo(
            summary_json(plan.ingest, plan.warnings, stages=len(plan.stages), output=output),
            err=True,
        )
        return
    if not quiet:
        click.echo(
            f"wrote {len(plan.stages)} stages for {len(plan.namespaces)} namespaces to {output} "
            f"(left out: {', '.join(plan.left_out) or 'none'})",
            err=True,
        )
    if plan.ingest is not None:
        _echo_report(plan.ingest, plan.warnings, quiet, verbose)


def main() -> None:
    """Console entry point: run the CLI; an unexpected error leaves a crash report, not a trace."""
    tune_allocator()  # chunk after chunk of big arrays: see netpolgen._memory
    try:
        cli.main(prog_name="netpolgen")
    except Exception:  # the one boundary for bugs: a short message plus a report for issues
        if _debug_requested():
            raise
        with tempfile.NamedTemporaryFile(
            "w", prefix="netpolgen-crash-", suffix=".txt", delete=False
        ) as handle:
            traceback.print_exc(file=handle)
        click.echo(
            f"Error: internal error in netpolgen; details in {handle.name} "
            "(rerun with --debug to see them here)",
            err=True,
        )
        sys.exit(EXIT_ERROR)
