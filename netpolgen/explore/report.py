"""One self-contained HTML page for reviewers: the graph, the policies and their evidence.

``netpolgen report`` writes a single file that opens without a network: cytoscape.js (vendored
under ``assets/`` with its MIT licence), the page's script and style are inlined, and the data is
one JSON document inside a ``<script type="application/json">``. What it shows:

* the communication graph, workloads grouped by namespace (compound nodes), outside addresses
  in their own group; zoom and pan, a namespace filter, and a click on a workload lists the
  policies that select it (Kubernetes: a policy applies to the pods its ``podSelector`` matches
  in its namespace) with their rules;
* every policy, each rule with the observed flows that justify it (the edges the rule admits:
  flows, first and last seen, up to five sample connections, each with a few of the source
  ports its requests came from when the flows have them);
* what ``verify`` finds: observed flows the policies deny (with the isolating policies), rules
  no observed flow used, allowed but unused connections between known workloads;
* the ``migrate`` stages, with what default-deny alone would break at each.

The policies, findings and stages are also written as static HTML (not built by the script), so
every workload and policy name is in the document itself, readable even with scripts off.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from netpolgen.check.diff import PolicyDiff, diff_policies
from netpolgen.check.migrate import MigrationPlan, plan_migration
from netpolgen.check.rule_matching import edge_endpoint, peer_text, port_text, rule_matches
from netpolgen.check.verify import verify
from netpolgen.cluster.inventory import Inventory, load_inventory
from netpolgen.cluster.view import ClusterView
from netpolgen.errors import OutputError
from netpolgen.generator import generate
from netpolgen.identity.naming import named_edges
from netpolgen.ingest import Source, load_flows
from netpolgen.policy.from_reduction import GenerateOptions
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import EGRESS, INGRESS, Evaluator
from netpolgen.policy.write import write_text_file
from netpolgen.reduce.edges import endpoint_keys, wanted_flows
from netpolgen.resolve import resolve_flows

__all__ = ["build_report", "render_report", "report_files", "write_report"]

SAMPLES = 5
SOURCE_PORTS = 3  # per sample connection
# The page loads nothing: only its inline scripts and styles run (and data: images, which
# cytoscape draws with), so even a link slipped into the data cannot fetch anything.
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
OUTSIDE = "(outside)"


def report_files(
    sources: Iterable[Source],
    *,
    inventory: Sequence[str | Path] = (),
    policies: str | Path | None = None,
    baseline: str | Path | None = None,
    options: GenerateOptions | None = None,
    format: str = "auto",
    strict: bool = False,
) -> str:
    """Read flows (and inventories, and policies) and return the page's HTML (what
    ``netpolgen report`` writes).

    Args:
        sources: flow files, ``-`` for standard input, or open binary files.
        inventory: inventory snapshot files.
        policies: the policies to review (a file or a directory); None reviews what
            ``from-flows`` would generate.
        baseline: the policies before, to show the semantic diff from them.
        options: the generation options, as for ``from-flows``.
        format: ``auto`` or a flow format name (``netpolgen.FORMATS``).
        strict: make the first malformed record an error.

    Examples:
        >>> page = report_files(["sample_flows/online-shop.csv"])  # doctest: +SKIP
        >>> write_report(page, "review.html")  # doctest: +SKIP
    """
    flows = load_flows(list(sources), format, strict=strict)
    cluster = load_inventory(inventory) if inventory else None
    if cluster is not None:
        flows = resolve_flows(flows, cluster)
    existing = load_policies(policies) if policies is not None else None
    old = load_policies(baseline) if baseline is not None else None
    data = build_report(flows, inventory=cluster, policies=existing, baseline=old, options=options)
    return render_report(data)


def build_report(
    flows: pd.DataFrame,
    *,
    inventory: Inventory | None = None,
    policies: Sequence[Policy] | None = None,
    baseline: Sequence[Policy] | None = None,
    options: GenerateOptions | None = None,
) -> dict[str, Any]:
    """The page's data (JSON-ready): workloads, edges, policies with evidence, findings, stages.

    Args:
        flows: a flow table, resolved when it has only addresses.
        inventory: the cluster's pods.
        policies: the policies to review; None reviews what ``from-flows`` would generate.
        baseline: the policies before (``--baseline OLD``): the page then shows the semantic
            diff from them to the reviewed ones (``netpolgen.diff_policies``).
        options: generation options (the workloads and, without ``policies``, the policies).

    Examples:
        >>> data = build_report(netpolgen.load_flows("sample_flows/three-tier.csv"))
        ... # doctest: +SKIP
        >>> [p["name"] for p in data["policies"]]  # doctest: +SKIP
    """
    options = options or GenerateOptions()
    result = generate(flows, options, inventory=inventory)
    reviewed = list(policies) if policies is not None else list(result.policies)
    edges = result.edges
    names = named_edges(edges, result.endpoints, result.workloads)
    names["sample"] = _with_source_ports(names, _source_ports(flows, edges, options))
    keys = [(edge_endpoint(s), edge_endpoint(d)) for s, d in zip(edges["src"], edges["dst"],
                                                                strict=True)]  # fmt: skip
    namespace_labels = ClusterView.from_inventory(inventory).namespace_labels
    evaluator = Evaluator(reviewed, namespace_labels)
    nodes: dict[str, dict[str, Any]] = {}
    for position, (src, dst) in enumerate(keys):
        for side, key in (("src", src), ("dst", dst)):
            name = str(names[side].iloc[position])
            if name in nodes:
                continue
            namespace = key[0] if key[0] is not None else OUTSIDE
            selecting = sorted({
                f"{reviewed[i].namespace}/{reviewed[i].name}"
                for direction in (INGRESS, EGRESS) for i in evaluator.selecting(key, direction)
            })  # fmt: skip
            nodes[name] = {"id": name, "namespace": namespace,
                           "kind": str(names[f"{side}_kind"].iloc[position]),
                           "policies": selecting}  # fmt: skip
    report = verify(flows, reviewed, inventory)
    allowed = _allowed(evaluator, keys, edges)
    edge_rows = [
        {"src": str(names["src"].iloc[i]), "dst": str(names["dst"].iloc[i]),
         "port": str(names["port"].iloc[i]), "flows": int(edges["count"].iloc[i]),
         "first": _iso(edges["first_seen"].iloc[i]), "last": _iso(edges["last_seen"].iloc[i]),
         "allowed": allowed[i]}
        for i in range(len(edges))
    ]  # fmt: skip
    policy_rows = [_policy_row(p, edges, names, keys, namespace_labels, nodes) for p in reviewed]
    plan = plan_migration(flows, policies if policies is not None else [], inventory)
    return {
        "title": "netpolgen review",
        "reviewing": "the given policies" if policies is not None else "the generated policies",
        "namespaces": sorted({n["namespace"] for n in nodes.values()}),
        "workloads": sorted(nodes.values(), key=lambda n: (n["namespace"], n["id"])),
        "edges": edge_rows,
        "policies": policy_rows,
        "verify": {
            "summary": report.summary(),
            "denied": _records(report.denied),
            "unused_rules": _records(report.rules[report.rules["flows"] == 0]),
            "over_permissive": _records(report.over_permissive),
        },
        "stages": _stages(plan),
        "baseline": None
        if baseline is None
        else _baseline(diff_policies(baseline, reviewed, inventory)),
        "warnings": list(result.warnings) + list(report.warnings),
    }


def _source_ports(flows: pd.DataFrame, edges: pd.DataFrame, options: GenerateOptions) -> list[str]:
    """Per edge: the lowest :data:`SOURCE_PORTS` source ports of its requests (the rows that
    ``generate`` made it from), ``""`` where the flows carry none (ICMP, labels-only CSV)."""
    wanted = wanted_flows(flows, options.edge_options())
    wanted = wanted[wanted["src_port"].notna()]
    if not len(edges) or not len(wanted):
        return [""] * len(edges)
    key = ["src", "dst", "protocol", "dst_port"]
    rows = pd.DataFrame({
        "src": endpoint_keys(wanted, "src"), "dst": endpoint_keys(wanted, "dst"),
        "protocol": wanted["protocol"].astype("string"),
        "dst_port": wanted["dst_port"].astype("Int64"), "port": wanted["src_port"].astype(int),
    }).drop_duplicates().sort_values("port", kind="stable")  # fmt: skip
    counts = rows.groupby(key, dropna=False, observed=True)["port"].transform("size")
    rows = rows.assign(more=counts > SOURCE_PORTS).groupby(key, dropna=False).head(SOURCE_PORTS)
    text = rows.groupby(key, dropna=False, observed=True).agg(
        ports=("port", lambda p: ", ".join(map(str, p))), more=("more", "first")
    )
    text["ports"] = text["ports"] + text["more"].map({True: ", …", False: ""})
    asked = edges[key].astype({"protocol": "string", "dst_port": "Int64"})
    found = asked.merge(text["ports"].reset_index(), on=key, how="left")["ports"]
    return found.fillna("").astype(str).tolist()


def _with_source_ports(names: pd.DataFrame, ports: list[str]) -> list[str]:
    """``src → dst TCP/8080``, then ``(source ports 41000, 41002, …)`` when known."""
    return [
        f"{src} → {dst} {port}" + (f" (source ports {p})" if p else "")
        for src, dst, port, p in zip(
            names["src"], names["dst"], names["port"], ports, strict=True
        )  # fmt: skip
    ]


def _allowed(evaluator: Evaluator, keys: list[Any], edges: pd.DataFrame) -> list[bool]:
    out = []
    for (src, dst), protocol, port in zip(keys, edges["protocol"], edges["dst_port"], strict=True):
        number = None if pd.isna(port) else int(port)
        out.append(all(evaluator.allows(src, dst, str(protocol), number)))
    return out


def _policy_row(
    policy: Policy, edges: pd.DataFrame, names: pd.DataFrame, keys: list[Any],
    namespace_labels: dict[str, dict[str, str]], nodes: dict[str, dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    name = f"{policy.namespace}/{policy.name}"
    rules = []
    for direction in ("ingress", "egress"):
        if direction.capitalize() not in policy.policy_types:
            continue
        matched = rule_matches(policy, direction, edges, keys, namespace_labels)
        for r, rule in enumerate(policy.ingress if direction == "ingress" else policy.egress):
            hits = edges.iloc[matched.get(r, [])]
            busiest = hits.sort_values("count", ascending=False, kind="stable").index[:SAMPLES]
            samples = [str(names["sample"].loc[i]) for i in busiest]
            rules.append({
                "direction": direction, "index": r,
                "peers": "; ".join(peer_text(p) for p in rule.peers) or "all peers",
                "ports": ", ".join(port_text(s) for s in rule.ports) or "all ports",
                "flows": int(hits["count"].sum()), "edges": len(hits),
                "first": _iso(hits["first_seen"].min()) if len(hits) else "",
                "last": _iso(hits["last_seen"].max()) if len(hits) else "",
                "samples": samples,
            })  # fmt: skip
    return {
        "name": name,
        "namespace": policy.namespace,
        "types": list(policy.policy_types),
        "selector": policy.pod_selector.describe(),
        "selects": sorted(n for n, node in nodes.items() if name in node["policies"]),
        "annotations": dict(policy.annotations),
        "rules": rules,
    }


def _baseline(diff: PolicyDiff) -> dict[str, Any]:
    return {
        "summary": diff.summary(),
        "policies": [
            {"change": change, "policy": name}
            for change, names in (
                ("added", diff.policies_added),
                ("removed", diff.policies_removed),
                ("changed", diff.policies_changed),
            )
            for name in names
        ],
        "changes": _records(diff.changes),
    }


def _stages(plan: MigrationPlan) -> list[dict[str, Any]]:
    return [
        {"number": s.number, "namespace": s.namespace, "direction": s.direction,
         "allow": [f"{p.namespace}/{p.name}" for p in s.allow],
         "deny": [f"{p.namespace}/{p.name}" for p in s.deny],
         "flows_at_risk": s.flows_at_risk, "breaks_today": _records(s.breaks_today),
         "flows_denied_after": s.flows_denied_after}
        for s in plan.stages
    ]  # fmt: skip


def _iso(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.astype(object).to_dict(orient="records"):
        out.append({str(k): _plain(v) for k, v in row.items()})
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return _iso(value)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


# --- the page ----------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return (resources.files("netpolgen.explore") / "assets" / name).read_text(encoding="utf-8")


def _table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return '<p class="none">none</p>'
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _policy_html(policy: dict[str, Any]) -> str:
    e = html.escape
    rules = [
        {"rule": f"{r['direction']} {r['index']}", "peers": r["peers"], "ports": r["ports"],
         "flows": r["flows"], "first seen": r["first"], "last seen": r["last"],
         "sample connections": "; ".join(r["samples"]) or "no observed flow"}
        for r in policy["rules"]
    ]  # fmt: skip
    selects = ", ".join(policy["selects"]) or "no observed workload"
    return (
        f'<details class="policy" id="policy-{e(policy["name"])}" '
        f'data-namespace="{e(policy["namespace"])}"><summary><code>{e(policy["name"])}</code> '
        f"<span>{e(', '.join(policy['types']))}; selects {e(policy['selector'])}</span></summary>"
        f"<p>Applies to: {e(selects)}</p>{_table(rules)}</details>"
    )


def _baseline_html(baseline: dict[str, Any] | None) -> str:
    if baseline is None:
        return ""
    return (
        '<section id="baseline"><h2>What changes from the baseline (netpolgen diff)</h2>'
        f"<pre>{html.escape(baseline['summary'])}</pre>{_table(baseline['policies'])}"
        f"<h3>Connections that differ</h3>{_table(baseline['changes'])}</section>"
    )


def render_report(data: dict[str, Any]) -> str:
    """The page: one HTML document with everything inlined (see the module docstring).

    Args:
        data: what :func:`build_report` returned.

    Examples:
        >>> html = render_report(build_report(flows))  # doctest: +SKIP
    """
    e = html.escape
    # "</" cannot appear inside a <script> element: escaped in the JSON, as the HTML spec advises.
    payload = json.dumps(data, sort_keys=True, ensure_ascii=False).replace("</", "<\\/")
    verify_data = data["verify"]
    stages = "".join(
        f'<section class="stage"><h3>Stage {s["number"]}: {e(s["namespace"])} '
        f"{e(s['direction'])}</h3><p>allow: {e(', '.join(s['allow']) or 'none')}; default-deny: "
        f"{e(', '.join(s['deny']) or 'already in place')}; flows default-deny alone would "
        f"break: {s['flows_at_risk']}; denied after this stage: {s['flows_denied_after']}</p>"
        f"{_table(s['breaks_today'])}</section>"
        for s in data["stages"]
    )
    workloads = "".join(
        f'<li data-namespace="{e(w["namespace"])}"><code>{e(w["id"])}</code> '
        f"({e(w['kind'])}): {e(', '.join(w['policies']) or 'no policy selects it')}</li>"
        for w in data["workloads"]
    )
    filters = "".join(
        f'<label><input type="checkbox" class="ns-filter" value="{e(n)}" checked> {e(n)}</label>'
        for n in data["namespaces"]
    )
    warnings = "".join(f"<li>{e(w)}</li>" for w in data["warnings"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{e(data["title"])}</title>
<style>{_asset("report.css")}</style>
</head>
<body>
<header><h1>{e(data["title"])}</h1><p>Reviewing {e(data["reviewing"])}:
{len(data["workloads"])} endpoints, {len(data["edges"])} observed connections,
{len(data["policies"])} policies.</p></header>
<main>
<section id="graph-panel">
<div id="filters"><strong>Namespaces</strong> {filters}
<input id="search" type="search" placeholder="find a workload"></div>
<div id="graph"></div>
<aside id="details"><p>Click a workload to see the policies that select it.</p></aside>
</section>
<section id="verify"><h2>What verify found</h2><pre>{e(verify_data["summary"])}</pre>
<h3>Observed flows the policies deny</h3>{_table(verify_data["denied"])}
<h3>Rules no observed flow used</h3>{_table(verify_data["unused_rules"])}
<h3>Allowed but unused connections between known workloads</h3>
{_table(verify_data["over_permissive"])}</section>
{_baseline_html(data.get("baseline"))}
<section id="policies"><h2>Policies and the flows that justify each rule</h2>
{"".join(_policy_html(p) for p in data["policies"])}</section>
<section id="stages"><h2>Migration to default-deny (netpolgen migrate)</h2>
{stages or '<p class="none">no stage</p>'}</section>
<section id="workloads"><h2>Workloads</h2><ul>{workloads}</ul></section>
<section id="warnings"><h2>Warnings</h2><ul>{warnings or "<li>none</li>"}</ul></section>
</main>
<script type="application/json" id="report-data">{payload}</script>
<script>{_asset("cytoscape.min.js")}</script>
<script>{_asset("report.js")}</script>
</body>
</html>
"""


def write_report(text: str, path: str | os.PathLike[str]) -> Path:
    """Write the page whole or not at all (a temporary file beside it, then one rename).

    Args:
        text: the page (:func:`render_report`, :func:`report_files`).
        path: the file to write; its directory is made if missing.

    Examples:
        >>> write_report(report_files(["flows.csv"]), "review.html")  # doctest: +SKIP
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(
            f"cannot write the report: {error.strerror}", source=str(target)
        ) from None
    return write_text_file(text, target, what="the report")
