"""Looking at traffic before writing policies: summary tables for notebooks and ``inspect``.

Every function here returns pandas DataFrames (or a :class:`Summary` of them) and never prints;
``netpolgen inspect`` renders the same tables in the terminal with :func:`format_summary`.

Endpoints are shown by readable names: ``<namespace>/<workload name>`` for workloads (the name
the policies are called by) and the address for everything a policy can only reach by
``ipBlock`` (outside peers, nodes, addresses nothing resolved).
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from netpolgen.check.tables import render_table
from netpolgen.cluster.inventory import Inventory, load_inventory
from netpolgen.engine import load_flow_table
from netpolgen.errors import NetpolgenError
from netpolgen.explore.tables import edge_table
from netpolgen.flows import validate_flows
from netpolgen.identity.workloads import Workloads, identify_workloads
from netpolgen.ingest import Source
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES, IngestReport
from netpolgen.reduce.edges import EdgeOptions, aggregate_edges
from netpolgen.resolve import resolve_flows

__all__ = [
    "Summary",
    "edge_table",
    "format_summary",
    "inspect_flows",
    "summarize",
]
OUTPUT_FORMATS = ("table", "csv", "json")


@dataclass
class Summary:
    """What a set of flows holds, as tables (what ``netpolgen inspect`` prints).

    Attributes:
        totals: ``metric``/``value`` rows: records read, used, skipped, filtered (by reason),
            flows kept for policies, workloads, edges, outside peers, unresolved addresses.
        top_talkers: the busiest endpoints: ``endpoint``, ``namespace``, ``kind``, ``flows_out``,
            ``flows_in``, ``flows``, ``peers`` (distinct endpoints talked to).
        protocols: flows per ``protocol`` and ``dst_port``, with the number of ``edges``.
        workloads: one row per workload: ``namespace``, ``name``, ``selector``, ``pods`` seen,
            ``flows_in``, ``flows_out``.
        edges_table: the :func:`edge_table`.
        unresolved: addresses that nothing identified (kind ``unknown``), with ``flows`` and
            the endpoints they talked to (``peers``).
        edges, endpoints, workloads: the aggregation behind the tables (see
            ``netpolgen.aggregate_edges`` and ``netpolgen.identify_workloads``).
        report: the ingest report (records read, used, skipped and filtered).

    Examples:
        >>> summary = summarize(netpolgen.load_flows("flows.csv"))  # doctest: +SKIP
        >>> summary.tables()["edges"].head()  # doctest: +SKIP
    """

    totals: pd.DataFrame
    top_talkers: pd.DataFrame
    protocols: pd.DataFrame
    workloads_table: pd.DataFrame
    edges_table: pd.DataFrame
    unresolved: pd.DataFrame
    edges: pd.DataFrame
    endpoints: pd.DataFrame
    workloads: Workloads
    report: IngestReport
    warnings: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The summary tables by name, in the order ``inspect`` prints them."""
        return {
            "totals": self.totals,
            "top_talkers": self.top_talkers,
            "protocols": self.protocols,
            "workloads": self.workloads_table,
            "edges": self.edges_table,
            "unresolved": self.unresolved,
        }


def summarize(
    flows: pd.DataFrame,
    *,
    report: IngestReport | None = None,
    include_denied: bool = False,
    top: int = 10,
) -> Summary:
    """Summarise a flow table: totals, top talkers, protocols, workloads, edges, unresolved IPs.

    Replies and (unless ``include_denied``) denied flows are left out of the edge tables, as
    ``generate`` leaves them out of the policies; the totals say how many.

    Args:
        flows: a flow table (``load_flows``).
        report: the ingest report of ``flows``; it is copied, not changed.
        include_denied: count denied flows as traffic, as ``--include-denied`` does.
        top: how many endpoints ``top_talkers`` lists.

    Returns:
        A :class:`Summary`.

    Examples:
        >>> summary = summarize(netpolgen.load_flows("sample_flows/online-shop.csv"))
        ... # doctest: +SKIP
        >>> summary.top_talkers  # doctest: +SKIP
    """
    validate_flows(flows)
    report = (
        copy.deepcopy(report)
        if report is not None
        else IngestReport(records_read=len(flows), records_used=len(flows))
    )
    edges, endpoints = aggregate_edges(flows, EdgeOptions(include_denied=include_denied), report)
    workloads = identify_workloads(flows)
    holder = _Aggregation(edges, endpoints, workloads)
    table = edge_table(holder)
    unresolved = _unresolved(flows, table)
    talkers = _top_talkers(table, top)
    protocols = (
        table.groupby(["protocol", "dst_port"], dropna=False, observed=True)
        .agg(flows=("flows", "sum"), edges=("flows", "size"))
        .reset_index()
        .sort_values(["flows", "protocol", "dst_port"], ascending=[False, True, True])
        .reset_index(drop=True)
    )
    workload_rows = _workload_rows(workloads, table)
    outside = int((~endpoints.index.str.startswith("pod:")).sum())
    totals = [
        ("records read", report.records_read),
        ("records used", report.records_used),
        ("records skipped", report.records_skipped),
        *((f"skipped: {reason}", n) for reason, n in sorted(report.skipped.items())),
        ("records filtered", report.records_filtered),
        *((f"filtered: {reason}", n) for reason, n in sorted(report.filtered.items())),
        ("flows in edges", int(table["flows"].sum()) if len(table) else 0),
        ("workloads", len(workloads.table)),
        ("edges", len(table)),
        ("outside peers (ipBlock)", outside),
        ("unresolved addresses", len(unresolved)),
    ]
    return Summary(
        totals=pd.DataFrame(totals, columns=["metric", "value"]).astype({"value": "int64"}),
        top_talkers=talkers,
        protocols=protocols,
        workloads_table=workload_rows,
        edges_table=table,
        unresolved=unresolved,
        edges=edges,
        endpoints=endpoints,
        workloads=workloads,
        report=report,
        warnings=[],
    )


@dataclass(frozen=True)
class _Aggregation:
    edges: pd.DataFrame
    endpoints: pd.DataFrame
    workloads: Workloads


def _top_talkers(table: pd.DataFrame, top: int) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "endpoint": table["src"],
            "namespace": table["src_namespace"],
            "kind": table["src_kind"],
            "flows_out": table["flows"],
            "flows_in": 0,
            "peer": table["dst"],
        }
    )
    into = pd.DataFrame(
        {
            "endpoint": table["dst"],
            "namespace": table["dst_namespace"],
            "kind": table["dst_kind"],
            "flows_out": 0,
            "flows_in": table["flows"],
            "peer": table["src"],
        }
    )
    both = pd.concat([out, into], ignore_index=True)
    if both.empty:
        columns = ["endpoint", "namespace", "kind", "flows_out", "flows_in", "flows", "peers"]
        return pd.DataFrame(columns=columns)
    talkers = (
        both.groupby("endpoint", observed=True)
        .agg(
            namespace=("namespace", "first"),
            kind=("kind", "first"),
            flows_out=("flows_out", "sum"),
            flows_in=("flows_in", "sum"),
            peers=("peer", "nunique"),
        )
        .reset_index()
    )
    talkers["flows"] = talkers["flows_out"] + talkers["flows_in"]
    talkers = talkers.sort_values(["flows", "endpoint"], ascending=[False, True]).head(top)
    columns = ["endpoint", "namespace", "kind", "flows_out", "flows_in", "flows", "peers"]
    return talkers[columns].astype({c: "int64" for c in columns[3:]}).reset_index(drop=True)


def _workload_rows(workloads: Workloads, table: pd.DataFrame) -> pd.DataFrame:
    frame = workloads.table
    names = (frame["namespace"].astype("string") + "/" + frame["name"].astype("string")).tolist()
    selectors = [
        ",".join(f"{k}={v}" for k, v in workloads.selectors[w].match_labels) for w in frame.index
    ]
    flows_in = table.groupby("dst")["flows"].sum()
    flows_out = table.groupby("src")["flows"].sum()
    rows = pd.DataFrame(
        {
            "namespace": frame["namespace"].astype("string").tolist(),
            "name": frame["name"].astype("string").tolist(),
            "selector": selectors,
            "pods": [len(p) for p in frame["pods"]],
            "flows_in": [int(flows_in.get(n, 0)) for n in names],
            "flows_out": [int(flows_out.get(n, 0)) for n in names],
        }
    )
    return rows.sort_values(["namespace", "name"]).reset_index(drop=True)


def _unresolved(flows: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """IP endpoints that nothing identified: neither a pod, nor a node, nor an outside peer.

    ``flows`` counts the connections (replies and denied flows left out, as in ``table``) that
    the address took part in; ``peers`` names the endpoints on the other side.
    """
    addresses = pd.concat(
        [
            flows.loc[(flows[f"{side}_kind"] == "unknown").fillna(False).astype(bool), f"{side}_ip"]
            for side in ("src", "dst")
        ]
    ).dropna()
    unknown = sorted(set(addresses.astype(str)))
    links = pd.concat(
        [
            table[["src", "dst", "flows"]].set_axis(["ip", "peer", "flows"], axis=1),
            table[["dst", "src", "flows"]].set_axis(["ip", "peer", "flows"], axis=1),
        ],
        ignore_index=True,
    )
    links = links[links["ip"].isin(unknown)].sort_values("peer")
    flows_per_ip = links.groupby("ip")["flows"].sum()
    peers = (
        links.drop_duplicates(["ip", "peer"])
        .groupby("ip")["peer"]
        .agg(lambda names: ", ".join(map(str, names)))
    )
    out = pd.DataFrame({"ip": pd.array(unknown, dtype="string")})
    out["flows"] = out["ip"].map(flows_per_ip).fillna(0).astype("int64")
    # As text first: with no links at all the aggregation is a float column, which cannot hold "".
    out["peers"] = out["ip"].map(peers).astype("string").fillna("")
    return out.sort_values(["flows", "ip"], ascending=[False, True]).reset_index(drop=True)


def inspect_flows(
    sources: Source | Iterable[Source],
    format: str = "auto",
    *,
    inventory: Inventory | str | Path | Sequence[str | Path] | None = None,
    strict: bool = False,
    include_denied: bool = False,
    top: int = 10,
    on_chunk: Callable[[str, int], None] | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    engine: str = "pandas",
    scheduler: str | None = None,
) -> Summary:
    """Read flow files and :func:`summarize` them (what ``netpolgen inspect`` runs).

    Args:
        sources: paths, ``-`` for standard input, or open binary files.
        format: ``auto`` or a flow format name (``netpolgen.FORMATS``).
        inventory: inventory snapshot files (``kubectl get pods,services,namespaces,nodes -A
            -o json``) or an :class:`~netpolgen.cluster.inventory.Inventory`, to resolve
            addresses to pods, services and nodes at each flow's time.
        strict: make the first malformed record an error.
        include_denied: count denied flows as traffic.
        top: how many endpoints the top-talker table lists.
        on_chunk: called as ``on_chunk(source, records)`` after each chunk read (progress).
        max_line_bytes: longer lines of line-based formats are skipped and counted.
        engine: ``pandas``, or ``dask``: the files (paths, globs, fsspec URLs) are read on a
            Dask cluster, the scheduler at ``scheduler`` or a local one (same summary).

    Examples:
        >>> inspect_flows(["sample_flows/online-shop.csv"]).edges_table  # doctest: +SKIP
    """
    report = IngestReport(strict=strict, max_line_bytes=max_line_bytes)
    if isinstance(sources, str | Path) or hasattr(sources, "read"):
        sources = [sources]  # type: ignore[list-item]
    flows = load_flow_table(
        list(sources), format, report, engine=engine, scheduler=scheduler, on_chunk=on_chunk
    )
    if isinstance(inventory, str | Path):
        inventory = [inventory]
    if inventory is not None and not isinstance(inventory, Inventory):
        inventory = load_inventory(list(inventory)) if inventory else None
    if inventory is not None:
        flows = resolve_flows(flows, inventory, report=report)
    return summarize(flows, report=report, include_denied=include_denied, top=top)


# --- rendering (for the CLI) -------------------------------------------------------------------


def format_summary(
    summary: Summary, fmt: str = "table", *, width: int | None = None, plain: bool = False
) -> str:
    """Render a :class:`Summary` as terminal tables, CSV sections or one JSON document.

    Args:
        summary: what :func:`summarize` returned.
        fmt: ``table`` (rich tables), ``csv`` (one ``# name`` section per table) or ``json``.
        width: the terminal width for ``table`` (default: 120 columns).
        plain: ``table`` as titled tab-separated sections instead of boxes fitted to
            ``width``: for a pipe or a file, where nothing should wrap in the middle of a name.

    Returns:
        The text, ending with a newline: what ``netpolgen inspect --format FMT`` prints.

    Examples:
        >>> print(format_summary(summary, "csv"))  # doctest: +SKIP
    """
    if fmt not in OUTPUT_FORMATS:
        raise NetpolgenError(f"unknown output format {fmt!r}; known: {', '.join(OUTPUT_FORMATS)}")
    tables = summary.tables()
    if fmt == "json":
        document: dict[str, Any] = {name: _records(frame) for name, frame in tables.items()}
        document["totals"] = _json_totals(summary.totals)
        document["report"] = summary.report.to_dict()
        return json.dumps(document, indent=2) + "\n"
    if fmt == "csv":
        parts = []
        for name, frame in tables.items():
            parts.append(f"# {name}\n" + _plain(frame).to_csv(index=False, lineterminator="\n"))
        return "\n".join(parts)
    if plain:
        return _plain_tables(tables)
    return _rich_tables(tables, width or 120)


TITLES = {
    "totals": "Records",
    "top_talkers": "Top talkers",
    "protocols": "Protocols and ports",
    "workloads": "Workloads",
    "edges": "Edges (who talks to whom)",
    "unresolved": "Unresolved addresses",
}


def _terminal_view(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    frame = _plain(frame)
    if name == "edges":
        # The terminal view: names, port, count and times; the rest is in csv/json.
        frame = frame[["src", "dst", "port", "flows", "first_seen", "last_seen"]].copy()
        for column in ("first_seen", "last_seen"):
            frame[column] = frame[column].str.slice(0, 19).str.replace("T", " ")
    return frame


def _plain_tables(tables: Mapping[str, pd.DataFrame]) -> str:
    """Each table under its title, one tab-separated line per row: never wrapped."""
    parts = []
    for name, frame in tables.items():
        title = TITLES.get(name, name)
        if frame.empty:
            parts.append(f"{title}: none\n")
        else:
            parts.append(f"{title}:\n" + render_table(_terminal_view(name, frame), limit=None,
                                                       plain=True))  # fmt: skip
    return "\n".join(parts)


def _json_totals(totals: pd.DataFrame) -> dict[str, Any]:
    """The totals with snake_case keys, as every JSON netpolgen writes (verify's included);
    the reasons records were skipped or filtered, which are text, under ``skipped`` and
    ``filtered`` as in ``--summary json``."""
    out: dict[str, Any] = {"skipped": {}, "filtered": {}}
    for metric, value in zip(totals["metric"], totals["value"], strict=True):
        metric = str(metric)
        kind, _, reason = metric.partition(": ")
        if reason and kind in out:
            out[kind][reason] = int(value)
        else:
            key = metric.replace(" (ipBlock)", "").replace(" ", "_")
            out[key] = int(value)
    return out


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Times as RFC 3339 text, NA as empty: the same cells in CSV, JSON and the terminal."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    text = _plain(frame).to_json(orient="records", date_format="iso")
    records: list[dict[str, Any]] = json.loads(text)
    return records


def _rich_tables(tables: Mapping[str, pd.DataFrame], width: int) -> str:
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    titles = TITLES
    for name, frame in tables.items():
        frame = _terminal_view(name, frame)
        table = Table(title=titles.get(name, name), title_justify="left")
        for column in frame.columns:
            numeric = pd.api.types.is_numeric_dtype(frame[column])
            table.add_column(
                str(column),
                justify="right" if numeric else "left",
                overflow="fold",
                no_wrap=column in ("first_seen", "last_seen", "port"),
            )
        for row in frame.itertuples(index=False):
            table.add_row(*("" if pd.isna(v) else str(v) for v in row))
        if frame.empty:
            console.print(f"{titles.get(name, name)}: none")
        else:
            console.print(table)
        console.print()
    return buffer.getvalue()
