"""``netpolgen verify``, ``diff`` and ``migrate``: checking and changing policy sets."""

from __future__ import annotations

import sys

import click

import netpolgen
from netpolgen._text import plural
from netpolgen.cli.options import (
    POLICY_FLAVORS,
    check_inputs,
    echo_report,
    emit,
    engine_options,
    flow_format_option,
    global_options,
    input_limit_options,
    inventory_option,
    is_yaml_file,
    progress_names,
    report_format_option,
    report_output_option,
    require_usable_flows,
    summary_json,
    summary_on_error,
)
from netpolgen.cli.progress import IngestProgress, show_progress

# verify: observed flows the policies deny. diff: the sets differ, as diff(1) and kubectl diff
# exit 1 when their inputs differ (an error there is >1; here it is 1 too, said on stderr).
EXIT_DENIED = 3
EXIT_DIFFERENT = 1
REPORT_FORMATS = ("table", "json", "markdown")


@click.command("verify")
@click.argument("flows", nargs=-1, metavar="FLOWS...", type=click.Path(allow_dash=True))
# Flows were --flows before they were positional here as in every other command; kept, hidden.
@click.option("--flows", "legacy_flows", multiple=True, hidden=True)
@click.option("--policies", "policies", required=True, type=click.Path(exists=True),
              help="A policy file or a directory of them (YAML, JSON, List): "
                   "NetworkPolicy, Calico staged, CiliumNetworkPolicy, "
                   "ClusterNetworkPolicy.")  # fmt: skip
@inventory_option
@flow_format_option
@report_format_option(REPORT_FORMATS)
@click.option("--junit", "junit", type=click.Path(dir_okay=False), default=None,
              help="Also write the result as JUnit XML to this file (for CI).")  # fmt: skip
@report_output_option
@click.option("--over-permissive/--no-over-permissive", default=True, show_default=True,
              help="Also list allowed connections between known workloads that no flow "
                   "used.")  # fmt: skip
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@engine_options
@global_options
@input_limit_options
def verify_command(
    flows: tuple[str, ...],
    legacy_flows: tuple[str, ...],
    policies: str,
    inventories: tuple[str, ...],
    flow_format: str,
    report_format: str,
    output: str,
    over_permissive: bool,
    strict: bool,
    engine: str,
    scheduler: str | None,
    workers: int,
    quiet: bool,
    verbose: int,
    max_line_bytes: int,
    summary: str,
    junit: str | None = None,
) -> None:
    """Replay observed flows against policies; exit 3 if any observed flow is denied.

    Reports flows and distinct edges allowed and denied, the denied ones by workload pair and
    port with the policies that isolate each end, and allowed-but-unused connections between
    known workloads (over-permissiveness). Replies and flows the network denied are not checked.

    \b
    Example:
        netpolgen verify hubble.jsonl --policies policies/ -i inventory.json
        netpolgen verify a.csv b.csv --policies live.yaml -F markdown -o report.md
    """
    check_inputs(legacy_flows, engine, "'--flows'")
    sources = [*legacy_flows, *flows]
    if not sources:
        raise click.UsageError("give at least one flow file (FLOWS...)")
    progress = IngestProgress(progress_names(sources, engine), enabled=show_progress(quiet))
    with progress as on_chunk:
        report = netpolgen.verify_files(
            sources, policies, inventories, format=flow_format, strict=strict,
            over_permissive=over_permissive, max_line_bytes=max_line_bytes, on_chunk=on_chunk,
            workers=workers or None, engine=engine, scheduler=scheduler,
        )  # fmt: skip
    if report.ingest is not None:
        # Verifying nothing would pass vacuously: no usable flow is an error here too.
        with summary_on_error(report.ingest, [], summary, quiet):
            require_usable_flows(report.ingest)
    emit(netpolgen.format_report(report, report_format, plain=plain_tables(output)), output)
    if junit is not None:
        from netpolgen.check.junit import verify_junit, write_junit

        write_junit(verify_junit(report), junit)
    if report.ingest is not None and summary == "json":
        click.echo(summary_json(report.ingest, report.warnings, ok=report.ok), err=True)
    elif report.ingest is not None:
        echo_report(report.ingest, [], quiet, verbose)  # report warnings are in the report
    if not report.ok:
        sys.exit(EXIT_DENIED)


@click.command("diff")
@click.argument("old", type=click.Path(exists=True))
@click.argument("new", type=click.Path(exists=True))
@inventory_option
@report_format_option(REPORT_FORMATS)
@click.option("--junit", "junit", type=click.Path(dir_okay=False), default=None,
              help="Also write the result as JUnit XML to this file (for CI).")  # fmt: skip
@report_output_option
@global_options
def diff_command(
    old: str, new: str, inventories: tuple[str, ...], report_format: str, output: str,
    quiet: bool, verbose: int, junit: str | None = None,
) -> None:  # fmt: skip
    """Show which connections between known workloads OLD allows and NEW does not, and back.

    OLD and NEW are policy files or directories (NetworkPolicy, Calico staged,
    CiliumNetworkPolicy, ClusterNetworkPolicy tiers). Workloads come from the inventory (or,
    without one, are guessed from the policies' selectors). Behaviour is compared, not text. Exit 0
    when both allow the same connections, 1 when they differ (as diff and kubectl diff do).

    \b
    Example:
        netpolgen diff live/ generated/ -i inventory.json
    """
    diff = netpolgen.diff_files(old, new, inventories)
    emit(netpolgen.format_diff(diff, report_format, plain=plain_tables(output)), output)
    if junit is not None:
        from netpolgen.check.junit import diff_junit, write_junit

        write_junit(diff_junit(diff), junit)
    if verbose and not quiet:
        # The report (stdout) already lists the warnings; say where the workloads came from.
        click.echo(f"workloads compared: {diff.workloads} ({diff.workload_source})", err=True)
    if not diff.same:
        sys.exit(EXIT_DIFFERENT)


def plain_tables(output: str) -> bool:
    """Tab-separated tables unless the report goes to a terminal (aligned there)."""
    return output != "-" or not sys.stdout.isatty()


def _plan_directory(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The plan is a tree of folders: ``-o -`` or ``-o plan.yaml`` cannot hold it."""
    if value == "-" or is_yaml_file(value):
        raise click.BadParameter(f"{value!r}: the plan is a directory of stages; name one")
    return value


@click.command("migrate")
@click.argument("flows", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--policies", "policies", type=click.Path(exists=True), default=None,
              help="The policies in force today (file or directory); none if omitted.")  # fmt: skip
@inventory_option
@flow_format_option
@click.option("-o", "--output", required=True, metavar="DIR", callback=_plan_directory,
              help="Directory for the staged plan (a kustomization.yaml in each "
                   "stage).")  # fmt: skip
@click.option("--include-system", is_flag=True,
              help="Stage kube-system and other system namespaces too.")  # fmt: skip
@click.option("--allow-dns/--no-allow-dns", default=True, show_default=True,
              help="Allow egress to kube-dns on UDP/TCP 53 in every egress policy.")  # fmt: skip
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@click.option("--flavor", type=click.Choice(POLICY_FLAVORS), default="k8s", show_default=True,
              help="Policy API of the stages; calico-staged writes each stage staged, then "
                   "enforced.")  # fmt: skip
@click.option("--guardrails", "guardrails_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Guardrails YAML (as from-flows): no stage allows what a deny entry forbids; "
                   "00-guardrails/ holds their ClusterNetworkPolicy objects.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@global_options
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
    quiet: bool,
    verbose: int,
    max_line_bytes: int,
    summary: str,
    flavor: str = "k8s",
    guardrails_file: str | None = None,
) -> None:
    """Plan the move to default-deny in stages that break no observed flow.

    Writes one folder per stage (namespace and direction, least risky first) with the allow
    policies, the default-deny policy and a rollback list, and a README.md to review.

    \b
    Example:
        netpolgen migrate flows.csv --policies live/ -i inventory.json -o plan/
    """
    guardrails = None
    if guardrails_file is not None:
        from netpolgen.policy.guardrails import load_guardrails

        guardrails = load_guardrails(guardrails_file)
    options = netpolgen.MigrationOptions(
        include_system=include_system,
        generate=netpolgen.GenerateOptions(allow_dns=allow_dns, guardrails=guardrails),
    )
    with IngestProgress(flows, enabled=show_progress(quiet)) as on_chunk:
        plan = netpolgen.plan_migration_from_files(
            flows, policies, inventories, options, format=flow_format, strict=strict,
            max_line_bytes=max_line_bytes, on_chunk=on_chunk,
        )  # fmt: skip
    if plan.ingest is not None:
        # A plan from no flows would stage default-deny for traffic nobody looked at.
        with summary_on_error(plan.ingest, plan.warnings, summary, quiet):
            require_usable_flows(plan.ingest)
    if flavor == "k8s" and guardrails is None:
        netpolgen.write_plan(plan, output, force=force)
    else:
        from netpolgen.check.migrate_flavors import write_plan_flavor

        write_plan_flavor(plan, output, flavor, force=force, guardrails=guardrails)
    if plan.ingest is not None and summary == "json":
        click.echo(
            summary_json(plan.ingest, plan.warnings, stages=len(plan.stages), output=output),
            err=True,
        )
        return
    if not quiet:
        click.echo(
            f"wrote {plural(len(plan.stages), 'stage')} for "
            f"{plural(len(plan.namespaces), 'namespace')} to {output} "
            f"(left out: {', '.join(plan.left_out) or 'none'})",
            err=True,
        )
    if plan.ingest is not None:
        echo_report(plan.ingest, plan.warnings, quiet, verbose)
