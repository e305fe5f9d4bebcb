"""Which rule of a policy allows which observed edge, and rules in words.

Shared by ``netpolgen update`` (evidence per rule, pruning) and the report page (evidence per
rule, the wording of peers and ports). A rule allows an edge when the policy selects the edge's
endpoint on that side and the rule matches the peer and the port, as the evaluator of
``netpolgen.verify`` decides it (:class:`netpolgen.policy.semantics.Evaluator`).
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from netpolgen.labels import labels_from_canonical
from netpolgen.policy.model import Peer, Policy, PortSpec
from netpolgen.policy.semantics import EGRESS, INGRESS, EndpointKey, Evaluator, port_matches

__all__ = ["edge_endpoint", "peer_text", "port_text", "rule_matches"]


def edge_endpoint(key: str) -> EndpointKey:
    """An edge key (``pod:<namespace>/<labels>`` or ``ip:<address>``) as the evaluator's key."""
    if key.startswith("pod:"):
        namespace, _, labels = key[4:].partition("/")
        return (namespace, labels_from_canonical(labels), None)
    return (None, (), key[3:])


def peer_text(peer: Peer) -> str:
    """A rule peer in words: a CIDR (with its exceptions) or the selectors."""
    if peer.ip_block is not None:
        return peer.ip_block.cidr + (
            f" except {','.join(peer.ip_block.except_)}" if peer.ip_block.except_ else ""
        )
    parts = []
    if peer.namespace_selector is not None:
        parts.append(f"namespaces {peer.namespace_selector.describe()}")
    if peer.pod_selector is not None:
        parts.append(f"pods {peer.pod_selector.describe()}")
    return " ".join(parts)


def port_text(spec: PortSpec) -> str:
    """A rule port in words: ``TCP/8080``, ``TCP/8000-8080``, ``UDP/*``."""
    if spec.port is None:
        return f"{spec.protocol}/*"
    return f"{spec.protocol}/{spec.port}" + (f"-{spec.end_port}" if spec.end_port else "")


def rule_matches(
    policy: Policy,
    direction: str,
    edges: pd.DataFrame,
    keys: list[tuple[EndpointKey, EndpointKey]],
    namespace_labels: dict[str, dict[str, str]],
) -> dict[int, list[int]]:
    """Rule index -> positions of the edges that rule of ``policy`` allows."""
    ev = Evaluator([policy], namespace_labels)
    out: dict[int, list[int]] = defaultdict(list)
    side = INGRESS if direction == "ingress" else EGRESS
    for position, ((src, dst), protocol, port) in enumerate(
        zip(keys, edges["protocol"], edges["dst_port"], strict=True)
    ):
        selected, peer = (dst, src) if side == INGRESS else (src, dst)
        ids = ev.selecting(selected, side)
        if not ids:
            continue
        port_number = None if pd.isna(port) else int(port)
        for _, r, ports in ev.matching_rules(ids, side, peer):
            if not ports or any(port_matches(s, str(protocol), port_number, ()) for s in ports):
                out[r].append(position)
    return out
