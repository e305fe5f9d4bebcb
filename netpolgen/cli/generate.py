"""``netpolgen from-flows``: policies from observed flows."""

from __future__ import annotations

import click

import netpolgen
from netpolgen._text import plural
from netpolgen.cli.options import (
    FLOW_FORMATS,
    POLICY_FLAVORS,
    echo_report,
    engine_options,
    flow_format_option,
    global_options,
    input_limit_options,
    inventory_option,
    is_yaml_file,
    progress_names,
    require_usable_flows,
    summary_json,
    summary_on_error,
)
from netpolgen.cli.progress import IngestProgress, show_progress


@click.command("from-flows")
@click.argument("flows", nargs=-1, required=True, type=click.Path(allow_dash=True))
@flow_format_option
# from-flows took the flow format as --format before -f/--flow-format was every command's
# spelling (DESIGN.md's contract); it still does, hidden, since from-flows has no report format.
# Elsewhere --format/-F is the report's format.
@click.option("--format", "legacy_format", hidden=True, default=None,
              type=click.Choice(["auto", *FLOW_FORMATS]))  # fmt: skip
@inventory_option
@click.option(
    "-o", "--output", default="-", show_default=True, metavar="-|DIR|FILE.yaml",
    help="- for standard output; a directory (DIR/<namespace>/<name>.yaml and a "
         "kustomization.yaml); a name ending in .yaml or .yml for one multi-document file.",
)  # fmt: skip
@click.option("--ingress/--no-ingress", default=True, show_default=True,
              help="Write <workload>-access-ingress policies.")  # fmt: skip
@click.option("--egress/--no-egress", default=True, show_default=True,
              help="Write <workload>-access-egress policies.")  # fmt: skip
@click.option("--allow-dns/--no-allow-dns", default=True, show_default=True,
              help="Allow egress to kube-dns on UDP/TCP 53 in every egress policy.")  # fmt: skip
@click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NS",
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
@click.option("--flavor", type=click.Choice(POLICY_FLAVORS), default="k8s", show_default=True,
              help="Policy API: k8s NetworkPolicy, cilium CiliumNetworkPolicy, calico-staged "
                   "StagedKubernetesNetworkPolicy (audit before enforcing).")  # fmt: skip
@click.option("--cluster-policies", is_flag=True,
              help="Also write a Baseline-tier ClusterNetworkPolicy default deny for the "
                   "namespaces generated (policy.networking.k8s.io/v1alpha2).")  # fmt: skip
@click.option("--guardrails", "guardrails_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Guardrails YAML (deny/allow/allow-dns, see README): what a deny entry covers "
                   "is never allowed; writes Admin-tier ClusterNetworkPolicy objects.")  # fmt: skip
@click.option("--world-as-entity", is_flag=True,
              help="With --flavor cilium: write outside peers 0.0.0.0/0 and ::/0 as the world "
                   "entity (toEntities/fromEntities: [world]).")  # fmt: skip
@click.option("--fqdn-min-names", type=click.IntRange(min=0), default=1, show_default=True,
              help="With --flavor cilium and Hubble DNS events: write an outside block whose "
                   "addresses all have names as toFQDNs only when it has at least N names (0: "
                   "never). k8s keeps the ipBlocks and names them in an annotation.")  # fmt: skip
@click.option("--fqdn-pattern-min", type=click.IntRange(min=2), default=3, show_default=True,
              help="With --flavor cilium: N or more names under one parent domain become one "
                   "matchPattern '*.<parent>'.")  # fmt: skip
@click.option("--strict", is_flag=True, help="Make the first malformed record an error.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@global_options
@engine_options
@input_limit_options
def from_flows(
    flows: tuple[str, ...],
    flow_format: str,
    legacy_format: str | None,
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
    flavor: str,
    cluster_policies: bool,
    guardrails_file: str | None,
    world_as_entity: bool,
    fqdn_min_names: int,
    fqdn_pattern_min: int,
    strict: bool,
    force: bool,
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
    if legacy_format is not None:
        flow_format = legacy_format
    if world_as_entity and flavor != "cilium":
        raise click.UsageError("--world-as-entity needs --flavor cilium (world is a Cilium entity)")
    guardrails = None
    if guardrails_file is not None:
        from netpolgen.policy.guardrails import load_guardrails

        guardrails = load_guardrails(guardrails_file)
    if engine == "pandas":  # the workers' server imports the readers while this process does
        from netpolgen._workers import prestart

        prestart(flows, workers or None)
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
        guardrails=guardrails,
    )
    progress = IngestProgress(progress_names(flows, engine), enabled=show_progress(quiet))
    with progress as on_chunk:
        result = netpolgen.generate_from_files(
            flows, options, format=flow_format, strict=strict, inventory=inventories,
            workers=workers or None, max_line_bytes=max_line_bytes, on_chunk=on_chunk,
            engine=engine, scheduler=scheduler,
        )  # fmt: skip
    # Nothing usable is an error, checked before anything is written (see README).
    with summary_on_error(result.report, result.warnings, summary, quiet):
        require_usable_flows(result.report)
        from netpolgen.generator import require_policies

        require_policies(result, options, inventory=bool(inventories))
    flavoured = flavor != "k8s" or cluster_policies or guardrails is not None
    cilium = None
    if flavor == "cilium":
        from netpolgen.policy.flavors.cilium import CiliumOptions
        from netpolgen.policy.guardrail_enforce import denied_networks

        cilium = CiliumOptions(
            fqdn_min_names=fqdn_min_names, fqdn_pattern_min=fqdn_pattern_min,
            world_as_entity=world_as_entity,
            outside_excepts=denied_networks(guardrails) if guardrails is not None else (),
        )  # fmt: skip
    # Outside addresses' names from Hubble DNS answers (annotations; toFQDNs for cilium), which
    # the reader collected while it read the flows.
    dns = result.dns
    if output == "-":
        click.echo(
            netpolgen.flavor_yaml(result.policies, flavor, dns=dns, cilium=cilium,
                                  cluster_policies=cluster_policies, guardrails=guardrails),
            nl=False,
        )  # fmt: skip
    elif flavoured and is_yaml_file(output):
        what = (
            f"--flavor {flavor}"
            if flavor != "k8s"
            else ("--cluster-policies" if cluster_policies else "--guardrails")
        )
        raise click.UsageError(f"{what} writes to a directory or to -o -, not a file")
    elif flavoured:
        written = netpolgen.write_flavor_dir(
            result.policies, output, flavor, force=force, dns=dns, cilium=cilium,
            cluster_policies=cluster_policies, guardrails=guardrails,
        )  # fmt: skip
        if not quiet and summary == "text":
            click.echo(f"wrote {plural(len(written), 'policy')} to {output}", err=True)
    elif is_yaml_file(output):
        from netpolgen.policy.write import write_policy_file

        write_policy_file(result.policies, output, force=force)
        if not quiet and summary == "text":
            click.echo(f"wrote {plural(len(result.policies), 'policy')} to {output}", err=True)
    else:
        written = netpolgen.write_policy_dir(result.policies, output, force=force)
        if not quiet and summary == "text":
            click.echo(
                f"wrote {plural(len(written), 'policy')} to {output} (kubectl apply -k {output})",
                err=True,
            )
    if summary == "json":
        click.echo(
            summary_json(result.report, result.warnings, policies=len(result.policies),
                         output=output),
            err=True,
        )  # fmt: skip
    else:
        echo_report(result.report, result.warnings, quiet, verbose)
