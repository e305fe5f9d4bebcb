"""From a reduction (edges, endpoints, pods, inside addresses) to policies.

Every engine and command reduces flows to the same few tables and ends here: workloads from the
inventory or the flows, optional IP grouping, synthesis, DNS and default-deny, warnings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from netpolgen.cluster.inventory import Inventory
from netpolgen.identity.ip_groups import DEFAULT_THRESHOLD, cluster_endpoints
from netpolgen.identity.owners import (
    DNS_NAMESPACE,
    address_notes,
    cluster_networks,
    dns_selector,
    inventory_workloads,
    named_ports,
    stray_pod_addresses,
)
from netpolgen.identity.workloads import Workloads, workloads_from_endpoints
from netpolgen.ingest.dns import DnsMap, dns_map_from_rows
from netpolgen.ingest.report import IngestReport
from netpolgen.policy.default_deny import default_deny_policies, is_system_namespace
from netpolgen.policy.guardrail_enforce import (
    GuardrailFilter,
    denied_networks,
    enforce_guardrails,
    known_pods,
    label_warnings,
)
from netpolgen.policy.guardrails import Guardrails
from netpolgen.policy.model import Peer, Policy
from netpolgen.policy.render import render_yaml
from netpolgen.policy.synthesize import SynthesisOptions, synthesize
from netpolgen.reduce.edges import EdgeOptions
from netpolgen.selectors import NAMESPACE_NAME_LABEL, LabelSelector


@dataclass(frozen=True)
class GenerateOptions:
    """The options of ``netpolgen from-flows``, as a value.

    Attributes:
        ingress: write ``<workload>-access-ingress`` policies.
        egress: write ``<workload>-access-egress`` policies.
        allow_dns: allow egress to the cluster resolver on UDP/TCP 53 in every egress policy.
        namespaces: write policies only for workloads in these namespaces (empty: all). Peers in
            other namespaces are still named in the rules.
        min_count: ignore edges seen fewer times than this.
        include_denied: treat flows with a denied verdict as wanted traffic.
        default_deny: also emit ``default-deny-ingress``/``-egress`` (per the ``ingress`` and
            ``egress`` switches) for every namespace that gets policies; system namespaces
            (``kube-system``, ...) only when named in ``namespaces``.
        cidr_prefix_v4: widen outside IPv4 peers to at most this prefix length; 32 keeps them
            exact (adjacent addresses are still merged into their exact covering CIDRs).
        cidr_prefix_v6: the same for IPv6; 128 keeps them exact.
        port_range_min: collapse runs of at least this many consecutive observed ports into one
            ``port``/``endPort`` range (0: never).
        group_ips: group addresses that no label or inventory identifies by behaviour
            (``netpolgen.identity.ip_groups``); each group's addresses are merged, listed together.
        ip_group_threshold: the Jaccard distance at which such groups stop merging.
        named_ports: write a port by the name the destination's containers give it, where all
            of the workload's pods in the inventory agree (needs an inventory).
        guardrails: ``--guardrails`` (:func:`netpolgen.policy.guardrails.load_guardrails`):
            what a ``deny`` entry covers is never allowed (see
            :mod:`netpolgen.policy.guardrail_enforce`).

    Examples:
        >>> options = GenerateOptions(namespaces=("shop",), cidr_prefix_v4=24)
        >>> options.egress
        True
    """

    ingress: bool = True
    egress: bool = True
    allow_dns: bool = True
    namespaces: tuple[str, ...] = ()
    min_count: int = 1
    include_denied: bool = False
    default_deny: bool = False
    cidr_prefix_v4: int = 32
    cidr_prefix_v6: int = 128
    port_range_min: int = 0
    group_ips: bool = False
    ip_group_threshold: float = DEFAULT_THRESHOLD
    named_ports: bool = False
    guardrails: Guardrails | None = None

    def edge_options(self, inventory: Inventory | None = None) -> EdgeOptions:
        """The options that decide which flows become edges (``inventory``: the namespaces'
        labels, for the guardrails' namespace selectors)."""
        return EdgeOptions(
            include_denied=self.include_denied,
            min_count=self.min_count,
            exclude=None
            if self.guardrails is None
            else GuardrailFilter(_bound(self.guardrails, inventory)),
        )


def _bound(guardrails: Guardrails, inventory: Inventory | None) -> Guardrails:
    if inventory is None or inventory.namespaces.empty:
        return guardrails
    return guardrails.with_namespace_labels(inventory.namespace_labels())


@dataclass
class GenerateResult:
    """What :func:`generate` produced, and the evidence behind it.

    Attributes:
        policies: the policies, sorted by namespace and name.
        edges: the edge table (``netpolgen.aggregate_edges``); ``netpolgen.edge_table(result)``
            shows it with readable names.
        endpoints: one row per endpoint key (kind, namespace, labels, ip).
        workloads: the workloads and their selectors.
        report: records read, used, skipped and filtered.
        warnings: what the user should know (edges no policy can express, ...).
        ip_groups: with ``group_ips``, the behaviour group of each unlabelled address.

    Examples:
        >>> result = generate(load_flows("sample_flows/online-shop.csv"))  # doctest: +SKIP
        >>> print(result.to_yaml())  # doctest: +SKIP
    """

    policies: list[Policy]
    edges: pd.DataFrame
    endpoints: pd.DataFrame
    workloads: Workloads
    report: IngestReport
    warnings: list[str] = field(default_factory=list)
    ip_groups: pd.DataFrame | None = None

    def to_yaml(self) -> str:
        """The policies as one multi-document YAML stream."""
        return render_yaml(self.policies)

    @property
    def dns(self) -> DnsMap:
        """The DNS map of the Hubble DNS events read (:class:`netpolgen.DnsMap`), collected in
        the same pass as the flows; empty for other formats. For the flavours' ``dns=``."""
        return dns_map_from_rows(self.report.dns_answers)


def synthesize_reduction(
    edges: pd.DataFrame,
    endpoints: pd.DataFrame,
    pods: pd.DataFrame,
    inside: Iterable[str],
    options: GenerateOptions,
    report: IngestReport,
    inventory: Inventory | None,
) -> GenerateResult:
    """Everything after aggregation, from what a stream of chunks reduces to as well.

    ``pods`` are the distinct pod endpoints (``identity.pod_endpoints``); ``inside`` the
    addresses known to be in the cluster (``aggregate.cluster_addresses``).
    """
    workloads = (
        workloads_from_endpoints(pods)
        if inventory is None or inventory.pods.empty
        else inventory_workloads(pods, inventory)
    )
    ip_groups = (
        cluster_endpoints(edges, endpoints, distance_threshold=options.ip_group_threshold)
        if options.group_ips
        else None
    )
    synthesis = synthesize(
        edges,
        workloads,
        SynthesisOptions(
            ingress=options.ingress,
            egress=options.egress,
            allow_dns=options.allow_dns,
            namespaces=options.namespaces,
            cidr_prefix_v4=options.cidr_prefix_v4,
            cidr_prefix_v6=options.cidr_prefix_v6,
            port_range_min=options.port_range_min,
            protected_networks=tuple(sorted(set(inside)))
            + (cluster_networks(inventory) if inventory is not None else ())
            + (denied_networks(options.guardrails) if options.guardrails is not None else ()),
            ip_groups=()
            if ip_groups is None
            else tuple(zip(ip_groups["ip"], ip_groups["group"], strict=True)),
            **_inventory_options(inventory, workloads, options),
        ),
    )
    policies = list(synthesis.policies)
    warnings = (
        list(workloads.warnings)
        + synthesis.warnings
        + (stray_pod_addresses(endpoints, inventory) if inventory is not None else [])
    )
    if options.guardrails is not None and options.guardrails.deny:
        inventory_pods = inventory.pods if inventory is not None else None
        bound = _bound(options.guardrails, inventory)
        policies, cuts = enforce_guardrails(
            policies, bound, known_pods(pods, inventory_pods, policies)
        )
        warnings += label_warnings(bound) + cuts
    if options.default_deny:
        deny, skipped = _default_deny_for(policies, options)
        policies += deny
        if skipped:
            warnings.append(
                "no default-deny for system namespace(s) "
                + ", ".join(skipped)
                + " (name them with -n to include them)"
            )
    return GenerateResult(
        policies=policies,
        edges=edges,
        endpoints=endpoints,
        workloads=workloads,
        report=report,
        warnings=warnings,
        ip_groups=ip_groups,
    )


def _default_deny_for(
    policies: list[Policy], options: GenerateOptions
) -> tuple[list[Policy], list[str]]:
    namespaces = {p.namespace for p in policies} | set(options.namespaces)
    skipped = sorted(
        n for n in namespaces if is_system_namespace(n) and n not in options.namespaces
    )
    deny = default_deny_policies(
        namespaces - set(skipped), ingress=options.ingress, egress=options.egress
    )
    return deny, skipped


def _inventory_options(
    inventory: Inventory | None, workloads: Workloads, options: GenerateOptions
) -> dict[str, Any]:
    """What the inventory adds to synthesis: the resolver's pods, address notes, port names."""
    if inventory is None:
        return {}
    dns = dns_selector(inventory)
    return {
        "dns_peer": None
        if dns is None
        else Peer(
            pod_selector=dns,
            namespace_selector=LabelSelector.of({NAMESPACE_NAME_LABEL: DNS_NAMESPACE}),
        ),
        "address_notes": tuple(sorted(address_notes(inventory).items())),
        "named_ports": tuple(
            sorted(
                (w, proto, port, name)
                for (w, proto, port), name in named_ports(inventory, workloads).items()
            )
        )
        if options.named_ports
        else (),
    }
