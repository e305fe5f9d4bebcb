"""NetworkPolicy semantics: which connections a set of policies allows, for one or a million flows.

Semantics of ``networking.k8s.io/v1`` followed here
(https://kubernetes.io/docs/concepts/services-networking/network-policies/ and the API reference):

* A policy applies to the pods of its own namespace that its ``podSelector`` selects; the empty
  selector selects every pod of the namespace.
* A pod is *isolated for ingress* when at least one policy selects it and has ``Ingress`` in
  ``policyTypes``; likewise for egress. ``policyTypes`` defaults to ``Ingress``, plus ``Egress``
  when the policy has at least one egress rule (so ``egress: []`` alone isolates nothing).
  Isolation is per direction: a pod isolated only for ingress sends anything.
* For an isolated pod, a connection is allowed when *any* rule of *any* selecting policy of that
  direction allows it (policies are additive; there are no deny rules). A rule allows it when a
  peer matches (no ``from``/``to``, or an empty list, matches every peer) and a port matches (no
  ``ports`` matches every port and protocol).
* A peer's ``podSelector`` alone selects pods in the policy's namespace; ``namespaceSelector``
  alone every pod in the matching namespaces; both together the matching pods in the matching
  namespaces. ``ipBlock`` matches addresses in ``cidr`` but not in any ``except``; here it matches
  only endpoints that are not pods (what a CNI sees for cluster-external traffic), as pod IPs are
  ephemeral and the API leaves their matching to the implementation.
* Selectors: ``matchLabels`` and ``matchExpressions`` are ANDed; ``NotIn`` and ``DoesNotExist``
  match objects that lack the key. Namespaces always carry ``kubernetes.io/metadata.name``.
* A port is a number, a range ``port..endPort``, or a name resolved per destination pod through
  its containers' ``ports`` (name and protocol); a port without a number matches every port of
  its protocol (default TCP).
* A connection between two endpoints needs both: the source's egress and the destination's
  ingress. Endpoints that are not pods are never isolated. Traffic between a pod and its own
  node (flow kind ``host``) is always allowed; other nodes are addresses like any other.

The table entry point is :func:`verify`: it reduces the flows to distinct edges (source endpoint,
destination endpoint, protocol, port) with vectorised pandas/numpy, evaluates each edge once
through an :class:`Evaluator` that caches, per endpoint, the selecting policies and, per (policy
set, peer), the ports the rules grant; then maps the verdicts back to the flows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from netpolgen.check.edges import cilium_context, make_evaluator
from netpolgen.check.replay import Checker, verify_stream
from netpolgen.check.report import VerificationReport
from netpolgen.check.tables import count_as_from_flows
from netpolgen.cluster.inventory import load_inventory
from netpolgen.cluster.view import ClusterView, InventoryLike
from netpolgen.errors import NetpolgenError, NoPoliciesError
from netpolgen.flows import validate_flows
from netpolgen.ingest import Source, load_flows
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES, IngestReport
from netpolgen.ingest.sources import expand_directories
from netpolgen.policy.cluster_model import ClusterPolicy
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import Evaluator
from netpolgen.reduce.direction import mark_directions
from netpolgen.resolve import resolve_flows

__all__ = [
    "Evaluator",
    "VerificationReport",
    "verify",
    "verify_files",
]
"""``(namespace, labels, ip)``: a pod when ``namespace`` is set (``ip`` unused), else an address."""
"""``(policy index, rule index, the rule's ports)``."""


def verify(
    flows: pd.DataFrame,
    policies: Sequence[Policy],
    inventory: InventoryLike = None,
    *,
    over_permissive: bool = True,
    max_workloads: int = 2000,
    cluster_policies: Sequence[ClusterPolicy] = (),
) -> VerificationReport:
    """Replay observed flows against policies.

    Checked flows are the observed, allowed ones: rows whose ``verdict`` is not ``denied``
    (the network already dropped those, so they are not wanted traffic) that are not replies
    (replies ride on the connection's state). A reply is a row whose ``is_reply`` is true or,
    when NA, inferred (``netpolgen.reduce.direction``, the
    rule the generator uses). Traffic with the pod's own node (kind ``host``) is always allowed
    and not checked, as NetworkPolicy cannot block it. An endpoint is a pod when its kind is
    ``pod`` and it has a namespace; any other endpoint is matched by its IP; rows with an
    endpoint that has neither are counted as unresolved. Rows that are not checked are counted
    in ``counts``.

    Over-permissiveness: the known workloads are the inventory's pods grouped by namespace and
    labels (volatile labels such as ``pod-template-hash`` dropped), or, without an inventory, the
    pod endpoints of the flows. For every (source, destination) pair and every port of the
    destination (ports observed in any flow to it, and its declared container ports), the
    combination is checked; those allowed that no checked flow used are reported.

    Args:
        flows: a flow table (``netpolgen.flows``).
        policies: the policies in force.
        inventory: pods and namespaces, for namespace labels, named ports and the workload list.
        over_permissive: compute the over-permissiveness table.
        max_workloads: skip over-permissiveness (with a warning) above this many workloads.
        cluster_policies: ClusterNetworkPolicies in force: the connections are then decided
            through their tiers around the NetworkPolicies (:mod:`netpolgen.policy.cluster_eval`).

    Returns:
        A :class:`VerificationReport`.

    Raises:
        SchemaError: when ``flows`` is not a flow table.

    Examples:
        >>> from netpolgen.flows import empty_flows
        >>> verify(empty_flows(), []).ok
        True
    """
    validate_flows(flows)
    cluster = ClusterView.from_inventory(inventory)
    ev = make_evaluator(policies, cluster, cluster_policies)
    # Replies and undecided records, as the generator infers them (netpolgen.reduce.direction).
    directions = mark_directions(flows)
    checker = Checker(ev, cluster)
    rows, codes = checker.add(
        flows, directions.replies, directions.undecided > 0, directions.denied_elsewhere
    )
    report = checker.report(over_permissive=over_permissive, max_workloads=max_workloads)
    flow_allowed = pd.Series(pd.NA, index=flows.index, dtype="boolean")
    if len(rows):  # one chunk: its edges are the report's, in the same order
        flow_allowed.iloc[rows] = report.edges["allowed"].to_numpy()[codes]
    report.flow_allowed = flow_allowed
    return report


def verify_files(
    flow_sources: Iterable[Source],
    policy_path: str | os.PathLike[str],
    inventories: Sequence[str | Path] = (),
    *,
    format: str = "auto",
    strict: bool = False,
    over_permissive: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_chunk: Callable[[str, int], None] | None = None,
    flow_allowed: bool = False,
    workers: int | None = None,
    engine: str = "pandas",
    scheduler: str | None = None,
) -> VerificationReport:
    """Read flow files, policies and inventories, then :func:`verify` (``netpolgen verify``).

    Notes from reading the policies (skipped documents) become report warnings; the ingest
    accounting is in ``report.ingest``. Besides NetworkPolicies (and Calico staged ones, as
    enforced), ``policy_path`` may hold CiliumNetworkPolicies, read with the inventory's nodes
    and API server as Cilium's entities and ``toFQDNs`` through the DNS answers of the flow
    files themselves (:mod:`netpolgen.policy.flavors.cilium_read`), and ClusterNetworkPolicies,
    whose tiers then decide around the NetworkPolicies.

    The flows are streamed (as by ``from-flows``): each chunk is resolved and reduced to its
    checked edges before the next is read, so memory follows the distinct edges, not the size of
    the input; the report is the same as :func:`verify` over ``load_flows``, except that
    ``flow_allowed`` (one value per input row) is empty unless ``flow_allowed`` is true, which
    loads every flow instead.

    Args:
        flow_sources: flow files, ``-`` for standard input, or open binary files.
        policy_path: a YAML file or a directory of them.
        inventories: inventory snapshot files.
        format: ``auto`` or a flow format name.
        strict: make the first malformed record an error.
        over_permissive: also list allowed but unused combinations.
        max_line_bytes: lines longer than this (line-based formats) are skipped and counted.
        on_chunk: called as ``on_chunk(source, rows)`` after each chunk read (progress; a
            second pass, when reply inference needs one, is reported again).
        flow_allowed: fill ``report.flow_allowed`` (loads every flow into memory).
        workers: processes that parse big files in parallel (None: one per core; see
            ``netpolgen.engine.local``).
        engine: ``pandas``, or ``dask``: the files (paths, globs, fsspec URLs) are read on a
            Dask cluster, the scheduler at ``scheduler`` or a local one (same report).

    Examples:
        >>> report = verify_files(["flows.csv"], "policies/")  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """
    notes: list[str] = []
    flow_sources = list(flow_sources)
    inventory = load_inventory(list(inventories)) if inventories else None
    cluster_policies: list[ClusterPolicy] = []
    policies = load_policies(
        policy_path, notes=notes, cluster=cluster_policies,
        cilium=cilium_context(flow_sources, inventory),
    )  # fmt: skip
    if not policies and not cluster_policies:
        # Zero policies allow everything: verify would pass vacuously (a wrong path, or the
        # output of a run that wrote nothing).
        raise NoPoliciesError(
            f"{policy_path}: no NetworkPolicy loaded (0 policies)"
            + (f"; {len(notes)} document(s) skipped: {notes[0]}" if notes else ""),
            hint="name a policy file or a directory of them (from-flows -o DIR writes one)",
        )
    ingest = IngestReport(strict=strict, max_line_bytes=max_line_bytes)
    if engine != "dask":  # Dask names its inputs itself (globs, URLs)
        flow_sources = expand_directories(flow_sources)
    if flow_allowed and engine == "dask":
        raise NetpolgenError("flow_allowed needs every flow in memory: use the pandas engine")
    if flow_allowed:
        flows = load_flows(list(flow_sources), format, report=ingest, on_chunk=on_chunk)
        if inventory is not None:
            ingest.messages.extend(inventory.warnings)
            # Addresses become pods, services and nodes at each flow's time, as for from-flows.
            flows = resolve_flows(flows, inventory, report=ingest)
        report = verify(
            flows, policies, inventory, over_permissive=over_permissive,
            cluster_policies=cluster_policies,
        )  # fmt: skip
    else:
        report = verify_stream(
            list(flow_sources), policies, inventory, ingest, format=format,
            over_permissive=over_permissive, workers=workers, on_chunk=on_chunk, engine=engine,
            scheduler=scheduler, cluster_policies=cluster_policies,
        )  # fmt: skip
    report.warnings[:0] = notes
    c = report.counts
    count_as_from_flows(ingest, replies=c["records_reply"], denied=c["records_denied_verdict"])
    report.ingest = ingest
    return report


# --- rendering ---------------------------------------------------------------------------------

ReportFormat = Literal["table", "json", "markdown"]
