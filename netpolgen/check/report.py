"""The verification report and its table, JSON and markdown forms."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from netpolgen._text import plural
from netpolgen.check.edges import RULE_COLUMNS
from netpolgen.check.tables import render_table, with_workload_names
from netpolgen.ingest.accounting import summary_dict
from netpolgen.ingest.report import IngestReport


@dataclass
class VerificationReport:
    """The result of replaying flows against policies.

    Attributes:
        edges: one row per distinct checked edge (``EDGE_KEY`` columns; ``src_ip``/``dst_ip``
            only for endpoints that are not pods) with ``flows`` (sum of ``count``),
            ``records``, ``egress_isolated``, ``ingress_isolated``, ``egress_allowed``,
            ``ingress_allowed``, ``allowed`` and ``dst_named_ports`` (the destination pod's
            named ports used to resolve ``port: <name>``).
        denied: the denied edges grouped by workload pair and port: ``src``, ``dst`` (display
            names), ``protocol``, ``dst_port``, ``flows``, ``edges``, ``blocked_by``
            (``egress``, ``ingress`` or ``egress+ingress``) and the isolating policies,
            ``egress_policies`` and ``ingress_policies``.
        isolation: per denied endpoint and direction, the policies that isolate it.
        over_permissive: allowed but unused ``(src, dst, protocol, port)`` combinations between
            known workloads (see :func:`verify`).
        flow_allowed: per input row (same index): True/False for checked flows, NA for rows not
            checked (replies, flows the network denied, unresolved endpoints).
        rules: per rule of every policy, the observed flows and edges it admitted
            (:func:`rule_usage`); rules with no flows allowed nothing that was seen.
        counts: flow and edge counts by outcome (see :meth:`summary`).
        warnings: things the user should know (e.g. named ports without an inventory).
        ingest: what reading the flow files did, when they were read by :func:`verify_files`.
        names: ``namespace/labels`` -> ``namespace/name`` for the workloads the inventory
            names (:func:`netpolgen.check.tables.workload_names`): how the text reports show
            them.

    Examples:
        >>> report = verify(flows, result.policies)  # doctest: +SKIP
        >>> report.ok, report.denied  # doctest: +SKIP
    """

    edges: pd.DataFrame
    denied: pd.DataFrame
    isolation: pd.DataFrame
    over_permissive: pd.DataFrame
    flow_allowed: pd.Series
    counts: dict[str, int]
    rules: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RULE_COLUMNS))
    warnings: list[str] = field(default_factory=list)
    ingest: IngestReport | None = None
    names: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every checked (observed, allowed, non-reply) flow is allowed."""
        return self.counts.get("flows_denied", 0) == 0

    def summary(self) -> str:
        """A few lines of plain text with the counts."""
        c = self.counts
        lines = [
            (
                f"policies loaded: {c['policies']}"
                + (
                    f" (and {plural(c['cluster_policies'], 'ClusterNetworkPolicy')}, tiers "
                    "decided around them)"
                    if c.get("cluster_policies")
                    else ""
                )
            )
            if "policies" in c
            else "",
            f"flows checked: {c['flows_checked']} ({plural(c['records_checked'], 'record')}, "
            f"{plural(c['edges_checked'], 'distinct edge')})",
            f"  allowed: {plural(c['flows_allowed'], 'flow')}, "
            f"{plural(c['edges_allowed'], 'edge')}",
            f"  denied:  {plural(c['flows_denied'], 'flow')}, {plural(c['edges_denied'], 'edge')}",
            f"not checked: {plural(c['records_reply'], 'reply record')}, "
            f"{plural(c['records_denied_verdict'], 'record')} the network denied, "
            f"{plural(c['records_unresolved'], 'record')} without endpoints, "
            f"{plural(c['records_host'], 'record')} with the pod's own node (always allowed)"
            + (
                f", {plural(c['records_direction_undecided'], 'record')} whose direction is "
                "undecided"
                if c.get("records_direction_undecided")
                else ""
            ),
        ]
        if c.get("rules"):
            lines.append(
                f"rules: {c['rules_unused']} of {plural(c['rules'], 'policy rule')} admitted no "
                "observed flow"
            )
        if "combinations_allowed" in c:
            lines.append(
                f"over-permissiveness: {c['combinations_unused']} of "
                f"{c['combinations_allowed']} allowed (src, dst, port) combinations between "
                f"{plural(c['workloads'], 'known workload')} "
                f"{'was' if c['combinations_unused'] == 1 else 'were'} never used"
            )
        return "\n".join(line for line in lines if line)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: counts, warnings, denied, isolation and over-permissive rows."""
        return {
            "ok": self.ok,
            "counts": dict(self.counts),
            "warnings": list(self.warnings),
            "denied": _records(self.denied),
            "isolation": _records(self.isolation),
            "over_permissive": _records(self.over_permissive),
            "unused_rules": _records(self.rules[self.rules["flows"] == 0]),
            # What reading the flows did: read = used + skipped + filtered, by reason.
            "ingest": None if self.ingest is None else summary_dict(self.ingest),
            # How the text report names workloads: namespace/labels -> namespace/name.
            "workload_names": dict(self.names),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
        out.append({str(k): (int(v) if isinstance(v, np.integer) else v) for k, v in row.items()})
    return out


def format_report(
    report: VerificationReport, fmt: str = "table", *, limit: int | None = 50, plain: bool = False
) -> str:
    """Render a report as plain text tables, JSON, or Markdown.

    Workloads are shown as ``namespace/name`` (``report.names``, else their name label where
    that is unique), their labels only where neither names them.

    Args:
        report: the report to render.
        fmt: ``table``, ``json`` or ``markdown``.
        limit: at most this many rows per table in text and Markdown (JSON has them all;
            ``None``: all).
        plain: tables as tab-separated lines (for a pipe or a file: nothing wraps).

    Examples:
        >>> print(format_report(verify(flows, policies), "markdown"))  # doctest: +SKIP
    """
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, sort_keys=False, default=str) + "\n"
    markdown = fmt == "markdown"
    parts = []
    if markdown:
        parts.append("# netpolgen verify\n")
        parts.append("```\n" + report.summary() + "\n```\n")
    else:
        parts.append(report.summary() + "\n")
    for warning in report.warnings:
        parts.append(("- warning: " if markdown else "warning: ") + warning + "\n")
    sections = [
        ("Denied flows (by workload pair and port)", report.denied, ("src", "dst")),
        ("Policies isolating denied endpoints", report.isolation, ("endpoint",)),
        ("Policy rules that admitted no observed flow", report.rules[report.rules["flows"] == 0],
         ()),
        ("Allowed but never used (over-permissive)", report.over_permissive, ("src", "dst")),
    ]  # fmt: skip
    for title, frame, sides in sections:
        if frame.empty:
            continue
        parts.append(("\n## " if markdown else "\n") + title + ("\n" if markdown else ":\n"))
        shown = with_workload_names(frame, report.names, columns=sides) if sides else frame
        parts.append(render_table(shown, markdown=markdown, limit=limit, plain=plain))
    return "\n".join(p.rstrip("\n") for p in parts) + "\n"
