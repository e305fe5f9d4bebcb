"""``netpolgen update`` and ``netpolgen report``: keeping a reviewed policy set current.

Registered on the main group by :mod:`netpolgen.cli` (one line at its end); thin wrappers over
:mod:`netpolgen.check.update` and :mod:`netpolgen.explore.report`.
"""

from __future__ import annotations

from pathlib import Path

import click

from netpolgen.cli.check import plain_tables
from netpolgen.cli.options import FLOW_FORMATS as FORMATS
from netpolgen.cli.options import POLICY_FLAVORS, global_options

__all__ = ["REVIEW_COMMANDS", "report_command", "update_command"]

_flow_format = click.option(
    "-f",
    "--flow-format",
    "flow_format",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", *FORMATS]),
    help="Flow-log format; auto sniffs content.",
)
_inventory = click.option(
    "-i",
    "--inventory",
    "inventories",
    multiple=True,
    type=click.Path(),
    help="kubectl get pods,services,namespaces,nodes -A -o json; repeat for snapshots.",
)


@click.command("update")
@click.argument("flows", nargs=-1, required=True)
@click.option(
    "--policies",
    "policies",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="The policy directory to update (edited in place unless -o).",
)
@_inventory
@_flow_format
@click.option(
    "-o", "--output", default=None, help="Write the updated directory here instead of in place."
)
@click.option(
    "--prune-after",
    default=None,
    metavar="DURATION",
    help="Also remove rules whose last evidence is older than this (30d, 12h, 2w) "
    "before the newest flow; never by default.",
)
@click.option(
    "--isolate-new",
    is_flag=True,
    help="Also write policies for workloads that no policy isolates yet (this removes "
    "their traffic that the flows do not show: give flows covering all of it).",
)
@click.option("--ingress/--no-ingress", default=True, show_default=True, help="Add ingress rules.")
@click.option("--egress/--no-egress", default=True, show_default=True, help="Add egress rules.")
@click.option(
    "--allow-dns/--no-allow-dns",
    default=True,
    show_default=True,
    help="New egress policies allow DNS to the cluster resolver.",
)
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Only update policies in this namespace (repeatable).",
)
@click.option(
    "--min-count",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Ignore connections seen fewer times.",
)
@click.option("--include-denied", is_flag=True, help="Treat denied flows as wanted traffic.")
@click.option(
    "--format",
    "report_format",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
    help="Format of the summary (that of netpolgen diff).",
)
@click.option(
    "--flavor",
    type=click.Choice(POLICY_FLAVORS),
    default="k8s",
    show_default=True,
    help="Policy API of the directory: k8s NetworkPolicies, or calico-staged (Calico staged "
    "policies are edited too, new ones written staged); cilium cannot be updated.",
)
@click.option("--dry-run", is_flag=True, help="Print the summary; write nothing.")
@click.option("--force", is_flag=True, help="Replace a non-empty -o directory.")
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@global_options
def update_command(
    flows: tuple[str, ...],
    policies: str,
    inventories: tuple[str, ...],
    flow_format: str,
    output: str | None,
    prune_after: str | None,
    isolate_new: bool,
    ingress: bool,
    egress: bool,
    allow_dns: bool,
    namespaces: tuple[str, ...],
    min_count: int,
    include_denied: bool,
    report_format: str,
    flavor: str,
    dry_run: bool,
    force: bool,
    strict: bool,
    quiet: bool,
    verbose: int,
) -> None:
    """Merge newly observed traffic into an existing (hand-edited) policy directory.

    Adds only the rules new traffic needs, into the workload's existing policy where there is
    one; never widens a rule; keeps hand-written rules, comments and annotations; refreshes the
    evidence annotations. Prints what `netpolgen diff BEFORE AFTER` would print. Running it
    twice on the same flows changes nothing the second time.

    \b
    Example:
        netpolgen update today.jsonl --policies policies/ -i inventory.json
        netpolgen update week.csv --policies policies/ --prune-after 30d -o proposed/
    """
    if flavor == "cilium":
        raise click.UsageError(
            "update edits k8s and calico-staged policy directories, not CiliumNetworkPolicies: "
            "update the k8s policies and write them again with from-flows --flavor cilium"
        )
    # The pipeline is imported when the command runs, not for --help (cli/__init__.py).
    from netpolgen.check.diff import format_diff
    from netpolgen.check.update import format_update, parse_duration, update_files, write_update
    from netpolgen.policy.from_reduction import GenerateOptions
    from netpolgen.policy.write import sweep_leftovers

    options = GenerateOptions(
        ingress=ingress,
        egress=egress,
        allow_dns=allow_dns,
        namespaces=namespaces,
        min_count=min_count,
        include_denied=include_denied,
    )
    result = update_files(
        flows,
        policies,
        inventory=inventories,
        options=options,
        format=flow_format,
        strict=strict,
        prune_after=parse_duration(prune_after) if prune_after else None,
        isolate_new=isolate_new,
        flavor=flavor,
    )
    # As netpolgen diff prints it: plain tab-separated text when not on a terminal.
    click.echo(format_diff(result.diff, report_format, plain=plain_tables("-")), nl=False)
    if not quiet:
        click.echo(format_update(result), err=True)
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
    if dry_run:
        return
    target = Path(output) if output is not None else Path(policies)
    if output is not None:
        write_update(result, target, force=force)
    elif result.changed:
        write_update(result, target, force=True)  # in place: replaced whole, in one rename
    else:
        sweep_leftovers(target)  # nothing to write; a killed run's copy beside it still goes
    if not quiet and (result.changed or output is not None):
        click.echo(f"wrote {len(result.changed_files)} changed file(s) to {target}", err=True)


@click.command("report")
@click.argument("flows", nargs=-1, required=True)
@_inventory
@_flow_format
@click.option(
    "--policies",
    "policies",
    default=None,
    type=click.Path(exists=True),
    help="The policies to review (default: what from-flows would generate).",
)
@click.option(
    "--baseline",
    "baseline",
    default=None,
    type=click.Path(exists=True),
    help="The policies before (a file or directory): the page adds the semantic diff.",
)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="The HTML file to write."
)
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@global_options
def report_command(
    flows: tuple[str, ...],
    inventories: tuple[str, ...],
    flow_format: str,
    policies: str | None,
    baseline: str | None,
    output: str,
    strict: bool,
    quiet: bool,
    verbose: int,
) -> None:
    """Write one self-contained HTML page for reviewers (opens without a network).

    An interactive communication graph grouped by namespace (zoom, filter, click a workload for
    its policies), every policy with the flows behind each rule, what verify finds, and the
    migrate stages; with --baseline OLD, the semantic diff from OLD.

    \b
    Example:
        netpolgen report hubble.jsonl -i inventory.json --policies policies/ -o review.html
    """
    from netpolgen.explore.report import report_files, write_report

    page = report_files(
        flows,
        inventory=inventories,
        policies=policies,
        baseline=baseline,
        format=flow_format,
        strict=strict,
    )
    write_report(page, output)
    if not quiet:
        click.echo(f"wrote {output} ({len(page) // 1024} KiB)", err=True)


REVIEW_COMMANDS = (update_command, report_command)
