"""The notebook API on the online-shop sample: summaries, edge tables, port matrix, policy effect,
and equality with what the command line writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pandas as pd
import pytest
from click.testing import CliRunner

import netpolgen
from netpolgen.cli import cli
from netpolgen.explore.graph import to_dot
from netpolgen.identity.naming import EDGE_TABLE_COLUMNS
from tests.conftest import SAMPLE_FLOWS

SHOP_CSV = SAMPLE_FLOWS / "online-shop.csv"


@pytest.fixture(scope="module")
def flows() -> pd.DataFrame:
    return netpolgen.load_flows(SHOP_CSV)


@pytest.fixture(scope="module")
def result(flows: pd.DataFrame) -> netpolgen.GenerateResult:
    return netpolgen.generate(flows)


def test_edge_table_has_readable_names_and_every_flow(
    flows: pd.DataFrame, result: netpolgen.GenerateResult
) -> None:
    table = netpolgen.edge_table(result)
    assert tuple(table.columns) == EDGE_TABLE_COLUMNS
    assert len(table) == len(result.edges)
    assert table["flows"].sum() == result.edges["count"].sum()
    assert list(table["flows"]) == sorted(table["flows"], reverse=True)
    row = table[(table["src"] == "shop/cartservice") & (table["dst"] == "shop/redis-cart")]
    assert row[["port", "flows", "src_kind", "dst_kind"]].values.tolist() == [
        ["TCP/6379", 6, "pod", "pod"]
    ]
    outside = table[table["dst"] == "198.51.100.25"]
    assert outside[["src", "port", "dst_kind"]].values.tolist() == [
        ["shop/emailservice", "TCP/587", "world"]
    ]
    assert pd.isna(outside["dst_namespace"].iloc[0])


def test_summarize_counts_and_tables(flows: pd.DataFrame) -> None:
    report = netpolgen.IngestReport()
    flows = netpolgen.load_flows(SHOP_CSV, report=report)
    summary = netpolgen.summarize(flows, report=report, top=5)
    totals = dict(zip(summary.totals["metric"], summary.totals["value"], strict=True))
    assert totals["records read"] == 423
    assert totals["records used"] + totals["records filtered"] + totals["records skipped"] == 423
    assert totals["filtered: denied verdict"] == 5
    assert totals["workloads"] == 17
    assert totals["unresolved addresses"] == 1
    # The caller's report is not consumed by summarising.
    assert report.records_filtered == 0
    assert len(summary.top_talkers) == 5
    assert summary.top_talkers["endpoint"].iloc[0] == "shop/frontend"
    assert summary.protocols.iloc[0][["protocol", "dst_port"]].tolist() == ["UDP", 53]
    assert summary.unresolved.values.tolist() == [["10.244.1.250", 3, "shop/frontend"]]
    workloads = summary.workloads_table.set_index("name")
    assert workloads.loc["redis-cart", "selector"] == "app=redis-cart"
    assert set(summary.tables()) == {
        "totals", "top_talkers", "protocols", "workloads", "edges", "unresolved"
    }  # fmt: skip


def test_summarize_include_denied_adds_the_probes(flows: pd.DataFrame) -> None:
    plain = netpolgen.summarize(flows).edges_table
    with_denied = netpolgen.summarize(flows, include_denied=True).edges_table
    assert len(with_denied) == len(plain) + 2
    assert "shop/redis-cart" in set(
        with_denied.loc[with_denied["src"] == "shop/loadgenerator", "dst"]
    )


def test_port_matrix(result: netpolgen.GenerateResult) -> None:
    matrix = netpolgen.port_matrix(result)
    assert matrix.loc["kube-system/coredns", "UDP/53"] == 45
    assert matrix.loc["shop/frontend", "UDP/53"] == 0
    assert matrix.to_numpy().sum() == result.edges["count"].sum()
    by_source = netpolgen.port_matrix(netpolgen.edge_table(result), by="src")
    assert cast(int, by_source.loc["monitoring/prometheus-k8s", "TCP/9464"]) > 0  # a count
    with pytest.raises(netpolgen.NetpolgenError, match="by must be"):
        netpolgen.port_matrix(result, by="port")


def test_policy_effect_keeps_traffic_and_denies_probes(
    flows: pd.DataFrame, result: netpolgen.GenerateResult
) -> None:
    effect = netpolgen.policy_effect(flows, result.policies)
    allowed = effect[effect["observed"] == "allowed"]
    denied = effect[effect["observed"] == "denied"]
    assert allowed["allowed"].all()
    assert not denied["allowed"].any()
    assert set(zip(denied["src"], denied["dst"], strict=True)) == {
        ("shop/loadgenerator", "shop/redis-cart"),
        ("shop/frontend", "monitoring/prometheus-k8s"),
    }
    # The redis probe is stopped by redis' ingress, the loadgenerator's own egress stops it too.
    probe = denied[denied["dst"] == "shop/redis-cart"].iloc[0]
    assert not probe["ingress_allowed"] and not probe["egress_allowed"]


def test_policy_effect_without_policies_allows_everything(flows: pd.DataFrame) -> None:
    effect = netpolgen.policy_effect(flows, [])
    assert effect["allowed"].all()


def test_api_yaml_equals_cli_output(result: netpolgen.GenerateResult) -> None:
    cli_result = CliRunner().invoke(cli, ["from-flows", str(SHOP_CSV), "-q"])
    assert cli_result.exit_code == 0, cli_result.output
    assert cli_result.stdout == netpolgen.render_yaml(result.policies)


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_api_summary_equals_inspect_output(fmt: str) -> None:
    report = netpolgen.IngestReport()
    flows = netpolgen.load_flows(SHOP_CSV, report=report)
    # Not a terminal (CliRunner): the table format is tab-separated, never wrapped (issue 18).
    expected = netpolgen.format_summary(
        netpolgen.summarize(flows, report=report), fmt, plain=fmt == "table"
    )
    cli_result = CliRunner().invoke(cli, ["inspect", str(SHOP_CSV), "--format", fmt, "-q"])
    assert cli_result.exit_code == 0, cli_result.output
    assert cli_result.stdout == expected


def test_inspect_flows_matches_summarize() -> None:
    summary = netpolgen.inspect_flows([SHOP_CSV])
    document = json.loads(netpolgen.format_summary(summary, "json"))
    assert document["totals"]["records_read"] == 423  # snake_case, as verify's JSON
    assert document["report"]["files"] == [str(SHOP_CSV)]
    assert {r["ip"] for r in document["unresolved"]} == {"10.244.1.250"}
    assert document["edges"][0]["first_seen"].endswith("Z")


def test_format_summary_rejects_unknown_format(result: netpolgen.GenerateResult) -> None:
    summary = netpolgen.inspect_flows([SHOP_CSV])
    with pytest.raises(netpolgen.NetpolgenError, match="unknown output format"):
        netpolgen.format_summary(summary, "xml")


def test_dot_groups_namespaces_and_labels_edges(result: netpolgen.GenerateResult) -> None:
    dot = to_dot(netpolgen.edge_table(result))
    assert dot.startswith("digraph netpolgen {") and dot.endswith("}\n")
    assert 'subgraph "cluster_shop" {' in dot
    assert '"shop/cartservice" -> "shop/redis-cart" [label="TCP/6379 (6)"];' in dot
    assert '"203.0.113.10" [shape=ellipse' in dot


def test_write_graph_rejects_unknown_suffix(
    result: netpolgen.GenerateResult, tmp_path: pytest.TempPathFactory
) -> None:
    with pytest.raises(netpolgen.NetpolgenError, match=r"\.svg, \.png, \.pdf or \.dot"):
        netpolgen.write_graph(netpolgen.edge_table(result), f"{tmp_path}/graph.jpeg")


def test_empty_flows_give_empty_tables() -> None:
    from netpolgen.flows import empty_flows

    summary = netpolgen.summarize(empty_flows())
    assert summary.edges_table.empty and summary.top_talkers.empty
    assert summary.unresolved.empty
    assert netpolgen.port_matrix(summary.edges_table).empty
    assert "none" in netpolgen.format_summary(summary, "table")
    json.loads(netpolgen.format_summary(summary, "json"))


def test_api_prints_nothing(
    capsys: pytest.CaptureFixture[str], flows: pd.DataFrame, result: netpolgen.GenerateResult
) -> None:
    summary = netpolgen.summarize(flows)
    netpolgen.edge_table(result)
    netpolgen.port_matrix(result)
    netpolgen.policy_effect(flows, result.policies)
    netpolgen.format_summary(summary)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_library_pipeline_step_by_step_equals_cli_directory(tmp_path: Path) -> None:
    """load -> aggregate -> identify -> synthesize -> write: the files ``from-flows -o`` writes."""
    flows = netpolgen.validate_flows(netpolgen.load_flows(SHOP_CSV))
    edges, endpoints = netpolgen.aggregate_edges(flows)
    workloads = netpolgen.identify_workloads(flows)
    assert set(endpoints.index) >= set(edges["src"]) | set(edges["dst"])
    assert len(workloads.table) == 17
    result = netpolgen.generate_from_files([SHOP_CSV])
    assert result.edges.equals(edges)
    written = netpolgen.write_policy_dir(result.policies, tmp_path / "api")
    cli_result = CliRunner().invoke(cli, ["from-flows", str(SHOP_CSV), "-o", str(tmp_path / "cli")])
    assert cli_result.exit_code == 0, cli_result.output
    for path in written:
        assert (tmp_path / "api" / path).read_text() == (tmp_path / "cli" / path).read_text()
    files = (tmp_path / "cli").rglob("*.yaml")
    assert sorted(
        p.relative_to(tmp_path / "cli") for p in files if p.name != "kustomization.yaml"
    ) == sorted(written)


def test_addresses_and_inventory_give_the_labelled_policies(flows: pd.DataFrame) -> None:
    """The CSV stripped to addresses (a VPC flow log's view) + the inventory = the CSV."""
    inventory = netpolgen.load_inventory(SAMPLE_FLOWS / "online-shop.inventory.json")
    nothing = pd.Series(False, index=flows.index)
    ip_only = flows.copy()
    for side in ("src", "dst"):
        for column in ("namespace", "pod", "labels"):
            ip_only[f"{side}_{column}"] = ip_only[f"{side}_{column}"].where(nothing)
        ip_only[f"{side}_kind"] = ip_only[f"{side}_kind"].where(nothing, "unknown")
    resolved = netpolgen.resolve_flows(ip_only, inventory)
    assert netpolgen.render_yaml(netpolgen.generate(resolved).policies) == netpolgen.render_yaml(
        netpolgen.generate(flows).policies
    )
    summary = netpolgen.inspect_flows(
        [SAMPLE_FLOWS / "online-shop.hubble.jsonl"],
        inventory=SAMPLE_FLOWS / "online-shop.inventory.json",
    )
    assert len(summary.edges_table) == 62


def test_policy_effect_resolves_named_ports_through_the_inventory() -> None:
    inventory = netpolgen.load_inventory(SAMPLE_FLOWS / "online-shop.inventory.json")
    flows = netpolgen.load_flows(SAMPLE_FLOWS / "online-shop.hubble.jsonl")
    named = netpolgen.generate(
        flows, netpolgen.GenerateOptions(named_ports=True), inventory=inventory
    )
    assert "port: grpc" in netpolgen.render_yaml(named.policies)
    effect = netpolgen.policy_effect(flows, named.policies, inventory=inventory)
    assert effect.loc[effect["observed"] == "allowed", "allowed"].all()
    # Without the inventory a port name means nothing: those rules match no traffic.
    blind = netpolgen.policy_effect(flows, named.policies)
    assert not blind.loc[blind["observed"] == "allowed", "allowed"].all()


@pytest.mark.parametrize(
    "sample",
    [
        "online-shop.csv",
        "online-shop.hubble.jsonl",
        "online-shop.aws-vpc.log.gz",
        "online-shop.gcp-vpc.jsonl",
        "online-shop.azure-vnet.jsonl",
    ],
)
def test_inventory_workloads_are_named_namespace_slash_name_once(sample: str) -> None:
    """With an inventory a workload is its owner (``shop/Deployment/frontend``); the edge table
    names it ``shop/frontend`` as inspect does, never ``shop/shop/app=frontend``."""
    inventory = SAMPLE_FLOWS / "online-shop.inventory.json"
    result = netpolgen.generate_from_files([SAMPLE_FLOWS / sample], inventory=[inventory])
    table = netpolgen.edge_table(result)
    wanted = {
        f"{ns}/{name}"
        for ns, name in zip(
            result.workloads.table["namespace"], result.workloads.table["name"], strict=True
        )
    }
    for side in ("src", "dst"):
        pods = table[table[f"{side}_kind"] == "pod"]
        assert set(pods[side]) <= wanted
        assert (pods[side].str.count("/") == 1).all(), pods[side].tolist()
        assert (pods[side].str.split("/").str[0] == pods[f"{side}_namespace"]).all()
    assert {"shop/frontend", "kube-system/coredns", "monitoring/prometheus-k8s"} <= set(table.src)
    # The command line's inspect, on the same files, names the same endpoints.
    cli_result = CliRunner().invoke(
        cli, ["inspect", str(SAMPLE_FLOWS / sample), "-i", str(inventory), "-F", "json"]
    )
    assert cli_result.exit_code == 0, cli_result.output
    edges = json.loads(cli_result.stdout)["edges"]
    named = {e[side] for e in edges for side in ("src", "dst")}
    assert named == set(table["src"]) | set(table["dst"])
