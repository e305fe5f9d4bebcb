"""The whole job as library calls: flows -> edges -> workloads -> policies.

The CLI and notebooks call the same :func:`generate`; nothing here prints or exits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd

from netpolgen.cluster.inventory import Inventory, load_inventory
from netpolgen.engine import check_engine
from netpolgen.engine.local import STREAM_CHUNK_SIZE, chunk_reader, spooled
from netpolgen.errors import NoPoliciesError
from netpolgen.ingest import Source
from netpolgen.ingest.collapse import denials_across_files
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES, IngestReport
from netpolgen.ingest.sources import expand_directories
from netpolgen.policy.from_reduction import GenerateOptions, GenerateResult, synthesize_reduction
from netpolgen.reduce.edges import aggregate_edges, cluster_addresses
from netpolgen.reduce.pods import pod_endpoints
from netpolgen.reduce.stream import reduce_chunks
from netpolgen.resolve import Resolver


def generate(
    flows: pd.DataFrame,
    options: GenerateOptions | None = None,
    *,
    report: IngestReport | None = None,
    inventory: Inventory | None = None,
) -> GenerateResult:
    """Generate least-privilege NetworkPolicies from a flow table.

    Args:
        flows: a flow table (``load_flows``, resolved with ``resolve_flows`` if it has only
            addresses); checked with ``validate_flows``.
        options: what to generate; the defaults match the CLI's.
        report: the ingest report to continue (filtered records are counted in it).
        inventory: the cluster's pods (``load_inventory``): workloads are then their owners
            (Deployment, StatefulSet, CronJob, ...), selectors are exact against every pod it
            lists, DNS goes to the resolver pods it finds, and nodes and the API server are
            named in the annotations.

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
    edges, endpoints = aggregate_edges(flows, options.edge_options(inventory), report)
    return synthesize_reduction(
        edges, endpoints, pod_endpoints(flows), cluster_addresses(flows), options, report,
        inventory,
    )  # fmt: skip


def generate_from_files(
    sources: Iterable[Source],
    options: GenerateOptions | None = None,
    *,
    format: str = "auto",
    strict: bool = False,
    inventory: Sequence[str | Path] = (),
    chunk_size: int = STREAM_CHUNK_SIZE,
    workers: int | None = 1,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_chunk: Callable[[str, int], None] | None = None,
    engine: str = "pandas",
    scheduler: str | None = None,
) -> GenerateResult:
    """Read flow files and generate policies (what ``netpolgen from-flows`` runs).

    The files are streamed: each chunk is resolved (with an inventory) and reduced to edges
    before the next is read, so memory depends on the distinct edges, endpoints and connections,
    not on the size of the input. The result is identical to :func:`generate` over
    ``load_flows(sources)`` (resolved with ``resolve_flows``).

    Args:
        sources: paths (a directory: the files under it), ``-`` for standard input (spooled to
            a temporary file, as the input may have to be read twice, see
            :mod:`netpolgen.reduce.stream`), or open binary files.
        options: what to generate.
        format: ``auto`` or a format name.
        strict: make the first malformed record an error.
        inventory: ``kubectl get pods,services,namespaces,nodes -A -o json`` files, one per
            snapshot: they resolve addresses to pods, services and nodes at each flow's time.
        chunk_size: records per chunk.
        workers: processes that parse in parallel (1: in this process; None: one per core,
            for the formats whose workers are lean, Hubble JSON). A number also has a big CSV
            file read in parts by that many processes, which then need ~300 MB each.
        max_line_bytes: lines longer than this (line-based formats) are skipped and counted.
        on_chunk: called as ``on_chunk(source, rows)`` after each chunk read (progress; a
            second pass, when reply inference needs one, is reported again).
        engine: ``pandas`` (this process and its workers) or ``dask``: the files (paths, globs,
            fsspec URLs) are read and reduced on a Dask cluster (same result).
        scheduler: with ``dask``, the scheduler's address; a local cluster by default.

    Returns:
        A :class:`GenerateResult` whose ``report`` accounts for every record read.

    Examples:
        >>> result = generate_from_files(["hubble.jsonl.gz"], GenerateOptions(egress=False))
        ... # doctest: +SKIP
    """
    check_engine(engine, scheduler)
    if engine == "dask":
        from netpolgen.engine.dask import generate_dask

        result: GenerateResult = generate_dask(
            [str(source) for source in sources], options, format=format, strict=strict,
            scheduler=scheduler, inventory=inventory, max_line_bytes=max_line_bytes,
            on_chunk=on_chunk,
        )  # fmt: skip
        return result
    options = options or GenerateOptions()
    report = IngestReport(strict=strict, max_line_bytes=max_line_bytes)
    cluster = load_inventory(inventory) if inventory else None
    if cluster is not None:
        report.messages.extend(cluster.warnings)  # objects or labels left out of the inventory
    resolver = Resolver(cluster) if cluster is not None else None
    # A directory is the files under it; with several files, a first pass collects the denied
    # connections, so that each file's records of them are judged as denied too.
    with spooled(expand_directories(sources)) as paths:
        read = chunk_reader(
            paths, format, chunk_size=chunk_size, workers=workers, resolver=resolver,
            on_chunk=on_chunk, summarize=True,
        )  # fmt: skip
        if len(paths) > 1:
            # One connection's records in several files (the two ends' NIC blobs, two nodes'
            # exports) are judged together: denied at either end is denied.
            read = denials_across_files(
                read, chunk_reader(paths, format, chunk_size=chunk_size, workers=workers)
            )
        reduction = reduce_chunks(read, options.edge_options(cluster), report)
    if resolver is not None:
        resolver.report_to(report)
    return synthesize_reduction(
        reduction.edges, reduction.endpoints, reduction.pods, reduction.inside, options, report,
        cluster,
    )  # fmt: skip


# Formats whose records carry addresses only: the inventory says which pods they are.
_ADDRESS_FORMATS = ("aws-vpc", "azure", "gcp-vpc")
_INVENTORY_HINT = (
    "pass the cluster inventory with -i FILE, made by "
    "kubectl get pods,services,namespaces,nodes -A -o json > FILE"
)


def require_policies(result: GenerateResult, options: GenerateOptions, *, inventory: bool) -> None:
    """Raise :class:`NoPoliciesError`, saying why and what to pass, when usable flows gave no
    policy (checked after :func:`netpolgen.ingest.accounting.require_usable_flows`).

    ``inventory``: whether an inventory resolved the addresses. The reasons, in the order they
    are checked: both directions turned off; no endpoint is a pod (an address-only log without
    an inventory, or every endpoint outside the cluster or unresolved); ``namespaces`` naming
    none of the namespaces that have workloads; otherwise no edge left to allow.
    """
    if result.policies:
        return
    if not options.ingress and not options.egress:
        raise NoPoliciesError(
            "no policy to write: both ingress and egress policies are turned off",
            hint="drop --no-ingress or --no-egress",
        )
    names = result.report.files
    files = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    files = files or "the input"
    namespaces = sorted({str(n) for n in result.workloads.table["namespace"].dropna()})
    if not namespaces:
        kinds = (
            result.endpoints["kind"].astype(str).value_counts()
            if "kind" in result.endpoints
            else None
        )
        seen = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) if kinds is not None else ""
        seen = f" (endpoints: {seen})" if seen else ""
        formats = {result.report.formats.get(f) for f in result.report.files}
        if not inventory and formats & set(_ADDRESS_FORMATS):
            raise NoPoliciesError(
                f"no policy from {files}: its records carry addresses only, and without an "
                f"inventory no address is a pod{seen}",
                hint=_INVENTORY_HINT,
            )
        if inventory:
            raise NoPoliciesError(
                f"no policy from {files}: no flow endpoint is a pod the inventory lists at the "
                f"flow's time; every endpoint is outside the cluster or unresolved{seen}",
                hint="take inventory snapshots during the flow window, from the same cluster "
                "(the warnings count the addresses that matched nothing)",
            )
        raise NoPoliciesError(
            f"no policy from {files}: no flow endpoint is a pod with a namespace and labels; "
            f"every endpoint is outside the cluster or unresolved{seen}",
            hint=_INVENTORY_HINT + " (addresses then resolve to pods)",
        )
    if options.namespaces and not set(options.namespaces) & set(namespaces):
        raise NoPoliciesError(
            f"no policy: -n/--namespace {', '.join(options.namespaces)} matches no namespace "
            f"with workloads in the flows (seen: {', '.join(namespaces)})",
            hint="name one of the namespaces seen, or drop -n",
        )
    filtered = "; ".join(f"{n} {r}" for r, n in sorted(result.report.filtered.items()))
    raise NoPoliciesError(
        f"no policy from {files}: no edge between workloads is left to allow"
        + (f" (filtered: {filtered})" if filtered else ""),
        hint="lower --min-count, or check -n/--namespace and --no-ingress/--no-egress",
    )
