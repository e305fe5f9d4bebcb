"""Edges + workloads -> least-privilege policies (the core algorithm).

For each destination workload, one ingress policy ``<workload>-access-ingress`` whose rules allow
exactly the (peer, protocol, port) combinations observed towards it; for each source workload one
egress policy ``<workload>-access-egress``, symmetrically. Peers that were seen on the same set of
ports share one rule (``from: [A, B], ports: [P, Q]`` allows every peer on every listed port, so
merging is only exact when the port sets are identical).

Kubernetes semantics relied on: a policy isolates only the pods its ``podSelector`` selects, in its
own namespace; a peer with only ``podSelector`` means pods in the policy's namespace, and
``namespaceSelector`` on ``kubernetes.io/metadata.name`` names another namespace exactly.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from netpolgen.identity.workloads import Workloads, dns_name
from netpolgen.policy.model import IPBlock, Peer, Policy, PortSpec, Rule
from netpolgen.policy.peers import describe_address, merge_addresses
from netpolgen.selectors import NAMESPACE_NAME_LABEL, LabelSelector

# NetworkPolicyPort.protocol accepts only these (core/v1 Protocol).
POLICY_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
ANNOTATION_PREFIX = "netpolgen.io/"
MANAGED_BY = (("app.kubernetes.io/managed-by", "netpolgen"),)
# The cluster resolver as kubeadm, kops, EKS, GKE and AKS deploy it: CoreDNS (or kube-dns) pods
# labelled k8s-app=kube-dns in kube-system, serving UDP and TCP 53.
DNS_PEER = Peer(
    pod_selector=LabelSelector.of({"k8s-app": "kube-dns"}),
    namespace_selector=LabelSelector.of({NAMESPACE_NAME_LABEL: "kube-system"}),
)
DNS_PORTS = (PortSpec("UDP", 53), PortSpec("TCP", 53))


@dataclass(frozen=True)
class SynthesisOptions:
    """Which policies to write and what to allow beyond the observed edges."""

    ingress: bool = True
    egress: bool = True
    allow_dns: bool = True
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    cidr_prefix_v4: int = 32  # widen outside IPv4 peers to at most this prefix (32: exact)
    cidr_prefix_v6: int = 128
    protected_networks: tuple[str, ...] = ()  # never covered by a widened block
    port_range_min: int = 0  # collapse runs of this many consecutive ports into endPort (0: off)
    ip_groups: tuple[tuple[str, str], ...] = ()  # address -> behaviour group (identity.ip_groups)
    dns_peer: Peer | None = None  # the resolver's peer, when the inventory knows its pods
    address_notes: tuple[tuple[str, str], ...] = ()  # address -> what it is (node, API server)
    named_ports: tuple[tuple[str, str, int, str], ...] = ()  # (workload, protocol, port, name)


@dataclass
class SynthesisResult:
    policies: list[Policy]
    warnings: list[str] = field(default_factory=list)


def _policy_port(protocol: str, port: object) -> PortSpec | None:
    if protocol not in POLICY_PROTOCOLS or port is None or port is pd.NA:
        return None
    return PortSpec(protocol, int(port))  # type: ignore[call-overload]


def _ip_block(address: str) -> IPBlock:
    ip = ipaddress.ip_address(address)
    return IPBlock(f"{ip}/{ip.max_prefixlen}")


def synthesize(
    edges: pd.DataFrame,
    workloads: Workloads,
    options: SynthesisOptions | None = None,
) -> SynthesisResult:
    """Write the policies that allow exactly ``edges`` (see the module docstring).

    Edges whose protocol NetworkPolicy cannot express (ICMP, other IANA numbers) or that have no
    destination port are left out, each with a warning: the policies then block them, and the user
    has to know.

    Args:
        edges: the edge table of :func:`netpolgen.aggregate_edges`.
        workloads: the workloads of :func:`netpolgen.identify_workloads`.
        options: which policies to write (``generate`` fills them from ``GenerateOptions``).

    Returns:
        The policies, sorted, with the warnings.

    Examples:
        >>> edges, _ = aggregate_edges(flows)  # doctest: +SKIP
        >>> synthesize(edges, identify_workloads(flows)).policies  # doctest: +SKIP
    """
    options = options or SynthesisOptions()
    warnings: list[str] = []
    ingress: dict[str, dict[Peer, set[PortSpec]]] = defaultdict(lambda: defaultdict(set))
    egress: dict[str, dict[Peer, set[PortSpec]]] = defaultdict(lambda: defaultdict(set))
    evidence: dict[tuple[str, str], list[tuple[int, object, object]]] = defaultdict(list)
    table = workloads.table
    namespace_of = {str(k): str(v) for k, v in table["namespace"].items()}

    def peer_for(endpoint: str, policy_namespace: str) -> Peer:
        if endpoint.startswith("pod:"):
            workload = workloads.workload_of(endpoint[4:])
            selector = workloads.selectors[workload]
            namespace = namespace_of[workload]
            if namespace == policy_namespace:
                return Peer(pod_selector=selector)
            return Peer(
                pod_selector=selector,
                namespace_selector=LabelSelector.of({NAMESPACE_NAME_LABEL: namespace}),
            )
        return Peer(ip_block=_ip_block(endpoint[3:]))

    # One pass over distinct edges (already aggregated): this loop is over connection types,
    # not over flow records.
    for src, dst, protocol, port, count, first, last in edges.itertuples(index=False):
        spec = _policy_port(str(protocol), None if pd.isna(port) else port)
        if spec is None:
            warnings.append(
                f"{src[4:] if src.startswith('pod:') else src[3:]} -> "
                f"{dst[4:] if dst.startswith('pod:') else dst[3:]} {protocol}"
                f"{'' if pd.isna(port) else '/' + str(port)}: not expressible in NetworkPolicy "
                "(only TCP, UDP and SCTP ports are); left out"
            )
            continue
        if options.ingress and dst.startswith("pod:"):
            target = workloads.workload_of(dst[4:])
            ns = namespace_of[target]
            ingress[target][peer_for(src, ns)].add(spec)
            evidence[(target, "ingress")].append((int(count), first, last))
        if options.egress and src.startswith("pod:"):
            source = workloads.workload_of(src[4:])
            ns = namespace_of[source]
            egress[source][peer_for(dst, ns)].add(spec)
            evidence[(source, "egress")].append((int(count), first, last))

    wanted = set(options.namespaces)
    policies: list[Policy] = []
    for direction, peers_by_workload in (("ingress", ingress), ("egress", egress)):
        targets = set(peers_by_workload)
        if direction == "egress" and options.egress and options.allow_dns:
            # An egress policy isolates its pods for egress, so without this rule every name
            # lookup would fail once it is applied, even if the window caught no DNS flow.
            for workload in targets:
                peers_by_workload[workload][options.dns_peer or DNS_PEER].update(DNS_PORTS)
        for workload in sorted(targets):
            namespace = namespace_of[workload]
            if wanted and namespace not in wanted:
                continue
            policies.append(
                _policy(
                    workload,
                    namespace,
                    direction,
                    peers_by_workload[workload],
                    workloads,
                    evidence[(workload, direction)],
                    options,
                    dns=direction == "egress" and options.allow_dns,
                )
            )
    policies.sort(key=lambda p: (p.namespace, p.name))
    return SynthesisResult(policies, warnings)


def _merge_rules(
    peer_ports: Mapping[Peer, Iterable[PortSpec]], options: SynthesisOptions
) -> tuple[Rule, ...]:
    by_ports: dict[tuple[PortSpec, ...], list[Peer]] = defaultdict(list)
    for peer, ports in peer_ports.items():
        key = tuple(sorted(set(ports), key=lambda s: s.sort_key()))
        by_ports[key].append(peer)
    groups = dict(options.ip_groups)
    rules = []
    for ports, peers in by_ports.items():
        # Within one rule every peer shares the port set, so merging its addresses is exact
        # (unless the user asked for wider blocks).
        # Addresses of different behaviour groups are merged separately, so that no CIDR
        # spans two groups.
        merged = [p for p in peers if p.ip_block is None]
        by_group: dict[str, list[str]] = defaultdict(list)
        for peer in peers:
            if peer.ip_block is not None:
                address = peer.ip_block.cidr.split("/")[0]
                by_group[groups.get(address, "")].append(peer.ip_block.cidr)
        for _group, addresses in sorted(by_group.items()):
            blocks = merge_addresses(
                addresses,
                prefix_v4=options.cidr_prefix_v4,
                prefix_v6=options.cidr_prefix_v6,
                protected=options.protected_networks,
            )
            merged += [Peer(ip_block=b) for b in blocks]
        rules.append(
            Rule(
                peers=tuple(sorted(merged, key=lambda p: p.sort_key())),
                ports=collapse_port_runs(ports, options.port_range_min),
            )
        )
    return tuple(sorted(rules, key=lambda r: r.sort_key()))


def collapse_port_runs(ports: Iterable[PortSpec], minimum: int) -> tuple[PortSpec, ...]:
    """Replace runs of at least ``minimum`` consecutive numeric ports by ``port``..``endPort``.

    Exact: a run is collapsed only when every port in it was observed. ``minimum`` < 2 is off.
    """
    ports = sorted(set(ports), key=lambda s: s.sort_key())
    if minimum < 2:
        return tuple(ports)
    out: list[PortSpec] = []
    run: list[PortSpec] = []

    def flush() -> None:
        if len(run) >= minimum:
            out.append(PortSpec(run[0].protocol, run[0].port, run[-1].port))  # type: ignore[arg-type]
        else:
            out.extend(run)
        run.clear()

    for spec in ports:
        simple = isinstance(spec.port, int) and spec.end_port is None
        if (
            simple and run and spec.protocol == run[-1].protocol and spec.port == run[-1].port + 1  # type: ignore[operator]
        ):
            run.append(spec)
            continue
        flush()
        if simple:
            run.append(spec)
        else:
            out.append(spec)
    flush()
    return tuple(out)


def _policy(
    workload: str,
    namespace: str,
    direction: str,
    peer_ports: Mapping[Peer, Iterable[PortSpec]],
    workloads: Workloads,
    evidence: list[tuple[int, object, object]],
    options: SynthesisOptions,
    *,
    dns: bool,
) -> Policy:
    rules = _merge_rules(peer_ports, options)
    if direction == "ingress" and options.named_ports:
        rules = _name_ports(rules, workload, options)
    # The flows behind the policy: its edges' request records after each file merged the
    # observations of one connection (collapse_observations). A connection logged in several
    # files (Azure: a blob per NIC; AWS/GCP: per ENI or VM export) counts once per file, not
    # once: merging across files would need every connection's key of every file held at once
    # (or a pass more), where a file's merge keeps only its recent keys; denials, which change
    # policies, are merged across files (denials_across_files), this count is evidence only.
    flows = sum(c for c, _, _ in evidence)
    firsts = [f for _, f, _ in evidence if not pd.isna(f)]  # type: ignore[call-overload]
    lasts = [last for _, _, last in evidence if not pd.isna(last)]  # type: ignore[call-overload]
    annotations = {f"{ANNOTATION_PREFIX}flows": str(flows)}
    if firsts:
        annotations[f"{ANNOTATION_PREFIX}first-seen"] = _iso(min(firsts))  # type: ignore[type-var]
        annotations[f"{ANNOTATION_PREFIX}last-seen"] = _iso(max(lasts))  # type: ignore[type-var]
    if dns:
        resolver = (options.dns_peer or DNS_PEER).pod_selector or LabelSelector()
        annotations[f"{ANNOTATION_PREFIX}dns"] = (
            f"egress to the cluster resolver (kube-system, {resolver.describe()}) on UDP/TCP 53 "
            "is allowed by default, observed or not (--no-allow-dns turns it off)"
        )
    notes = sorted(
        {
            f"{peer.ip_block.cidr}: {why}"
            for rule in rules
            for peer in rule.peers
            if peer.ip_block is not None
            and (why := describe_address(peer.ip_block.cidr, dict(options.address_notes)))
        }
    )
    if notes:
        annotations[f"{ANNOTATION_PREFIX}ip-blocks"] = "; ".join(notes)
    groups = dict(options.ip_groups)
    members: dict[str, set[str]] = defaultdict(set)
    for rule in rules:
        for peer in rule.peers:
            if peer.ip_block is not None:
                for address, group in groups.items():
                    if _inside(address, peer.ip_block.cidr):
                        members[group].add(peer.ip_block.cidr)
    if members:
        annotations[f"{ANNOTATION_PREFIX}peer-groups"] = "; ".join(
            f"{group}: {', '.join(sorted(cidrs))}" for group, cidrs in sorted(members.items())
        )
    name = dns_name(f"{workloads.name_of(workload)}-access-{direction}")
    return Policy(
        name=name,
        namespace=namespace,
        pod_selector=workloads.selectors[workload],
        policy_types=("Ingress",) if direction == "ingress" else ("Egress",),
        ingress=rules if direction == "ingress" else (),
        egress=rules if direction == "egress" else (),
        labels=MANAGED_BY,
        annotations=tuple(sorted(annotations.items())),
    )


def _name_ports(
    rules: tuple[Rule, ...], workload: str, options: SynthesisOptions
) -> tuple[Rule, ...]:
    """Use the target pods' own port names (``--named-ports``) where they all agree."""
    names = {(w, proto, port): name for w, proto, port, name in options.named_ports}
    renamed = []
    for rule in rules:
        ports = tuple(
            sorted(
                (
                    PortSpec(p.protocol, names.get((workload, p.protocol, p.port), p.port))
                    if isinstance(p.port, int) and p.end_port is None
                    else p
                    for p in rule.ports
                ),
                key=lambda s: s.sort_key(),
            )
        )
        renamed.append(Rule(peers=rule.peers, ports=ports))
    return tuple(sorted(renamed, key=lambda r: r.sort_key()))


def _inside(address: str, cidr: str) -> bool:
    ip = ipaddress.ip_address(address)
    network = ipaddress.ip_network(cidr, strict=False)
    return ip.version == network.version and ip in network


def _iso(value: object) -> str:
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    return stamp.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
