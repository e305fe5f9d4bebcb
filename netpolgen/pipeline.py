"""The whole job as library calls: flows -> edges -> workloads -> policies.

The CLI and notebooks call the same :func:`generate`; nothing here prints or exits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from netpolgen.aggregate import EdgeOptions, aggregate_edges, cluster_addresses
from netpolgen.cluster import DEFAULT_THRESHOLD, cluster_endpoints
from netpolgen.identity import Workloads, identify_workloads, workloads_from_endpoints
from netpolgen.ingest import Source
from netpolgen.ingest.inventory import load_inventory
from netpolgen.ingest.parallel import iter_flows_parallel, spooled
from netpolgen.ingest.report import IngestReport
from netpolgen.policy.model import Policy
from netpolgen.policy.render import render_yaml
from netpolgen.policy.synthesize import SynthesisOptions, synthesize
from netpolgen.resolve import Resolver
from netpolgen.stream import reduce_chunks


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
        cidr_prefix_v4: widen outside IPv4 peers to at most this prefix length; 32 keeps them
            exact (adjacent addresses are still merged into their exact covering CIDRs).
        cidr_prefix_v6: the same for IPv6; 128 keeps them exact.
        port_range_min: collapse runs of at least this many consecutive observed ports into one
            ``port``/``endPort`` range (0: never).
        group_ips: group addresses that no label or inventory identifies by behaviour
            (``netpolgen.cluster``); each group's addresses are merged and listed together.
        ip_group_threshold: the Jaccard distance at which such groups stop merging.
    """

    ingress: bool = True
    egress: bool = True
    allow_dns: bool = True
    namespaces: tuple[str, ...] = ()
    min_count: int = 1
    include_denied: bool = False
    cidr_prefix_v4: int = 32
    cidr_prefix_v6: int = 128
    port_range_min: int = 0
    group_ips: bool = False
    ip_group_threshold: float = DEFAULT_THRESHOLD

    def edge_options(self) -> EdgeOptions:
        """The options that decide which flows become edges."""
        return EdgeOptions(include_denied=self.include_denied, min_count=self.min_count)


@dataclass
class GenerateResult:
    """What :func:`generate` produced, and the evidence behind it."""

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


def generate(
    flows: pd.DataFrame,
    options: GenerateOptions | None = None,
    *,
    report: IngestReport | None = None,
) -> GenerateResult:
    """Generate least-privilege NetworkPolicies from a flow table.

    Args:
        flows: a flow table (``load_flows``); checked with ``validate_flows``.
        options: what to generate; the defaults match the CLI's.
        report: the ingest report to continue (filtered records are counted in it).

    Examples:
        >>> result = generate(load_flows("sample_flows/three-tier.csv"))  # doctest: +SKIP
        >>> [p.name for p in result.policies]  # doctest: +SKIP
        ['backend-access-egress', 'backend-access-ingress', 'db-access-ingress', ...]
    """
    options = options or GenerateOptions()
    report = (
        report
        if report is not None
        else IngestReport(records_read=len(flows), records_used=len(flows))
    )
    edges, endpoints = aggregate_edges(flows, options.edge_options(), report)
    return _synthesize(
        edges,
        endpoints,
        identify_workloads(flows),
        cluster_addresses(flows),
        options,
        report,
    )


def _synthesize(
    edges: pd.DataFrame,
    endpoints: pd.DataFrame,
    workloads: Workloads,
    inside: Iterable[str],
    options: GenerateOptions,
    report: IngestReport,
) -> GenerateResult:
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
            protected_networks=tuple(sorted(set(inside))),
            ip_groups=()
            if ip_groups is None
            else tuple(zip(ip_groups["ip"], ip_groups["group"], strict=True)),
        ),
    )
    return GenerateResult(
        policies=synthesis.policies,
        edges=edges,
        endpoints=endpoints,
        workloads=workloads,
        report=report,
        warnings=synthesis.warnings,
        ip_groups=ip_groups,
    )


# Records per chunk when streaming: large enough for vectorised steps to pay off, small enough
# that a chunk's intermediate columns stay a few hundred MB at most.
STREAM_CHUNK_SIZE = 50_000


def generate_from_files(
    sources: Iterable[Source],
    options: GenerateOptions | None = None,
    *,
    format: str = "auto",
    strict: bool = False,
    inventory: Sequence[str | Path] = (),
    chunk_size: int = STREAM_CHUNK_SIZE,
    workers: int | None = 1,
) -> GenerateResult:
    """Read flow files and generate policies (what ``netpolgen from-flows`` runs).

    The files are streamed: each chunk is resolved (with an inventory) and reduced to edges
    before the next is read, so memory depends on the distinct edges, endpoints and connections,
    not on the size of the input. The result is identical to :func:`generate` over
    ``load_flows(sources)`` (resolved with ``resolve_flows``).

    Args:
        sources: paths, ``-`` for standard input (spooled to a temporary file, as the input may
            have to be read twice, see :mod:`netpolgen.stream`), or open binary files.
        options: what to generate.
        format: ``auto`` or a format name.
        strict: make the first malformed record an error.
        inventory: ``kubectl get pods,services,namespaces,nodes -A -o json`` files, one per
            snapshot: they resolve addresses to pods, services and nodes at each flow's time.
        chunk_size: records per chunk.
        workers: processes that parse in parallel (1: in this process; None: one per core).
    """
    options = options or GenerateOptions()
    report = IngestReport(strict=strict)
    resolver = Resolver(load_inventory(inventory)) if inventory else None
    with spooled(list(sources)) as paths:

        def read(attempt: IngestReport) -> Iterator[pd.DataFrame]:
            chunks = iter_flows_parallel(
                paths, format, report=attempt, chunk_size=chunk_size, workers=workers
            )
            if resolver is None:
                return chunks
            resolver.unmatched.clear()  # a second pass starts over
            return (resolver(chunk) for chunk in chunks if len(chunk))

        reduction = reduce_chunks(read, options.edge_options(), report)
    if resolver is not None:
        resolver.report_to(report)
    workloads = workloads_from_endpoints(reduction.pods)
    return _synthesize(
        reduction.edges, reduction.endpoints, workloads, reduction.inside, options, report
    )
