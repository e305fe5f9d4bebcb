"""GCP and Azure flow logs are aggregated over a time window, as AWS's are: the reply's record
can come first, and time order inside one window decides nothing (issue 15's DNS case).

The AWS counterparts (tests/cloud/test_aws.py) are
``test_dns_answer_in_the_same_window_is_not_a_rule`` and
``test_dns_pair_without_an_inventory_keeps_the_query_only``; the exchange is the same (web
10.0.1.21:48123 asks CoreDNS 10.0.0.21:53 over UDP, which carries no flags), written as each
provider documents it (FORMATS.md §3, §4).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import netpolgen
from netpolgen.flows import TIME_WINDOW_ATTR
from netpolgen.generator import generate_from_files
from tests.cloud.azure import FLOW_LOG, mac
from tests.cloud.model import EPOCH, inventory
from tests.cloud.test_aws import _dns_cluster, _policies

UNDECIDED = "direction undecided: both directions in one aggregation window, to an ephemeral port"
WEB, DNS = "10.0.1.21", "10.0.0.21"


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _gcp_record(src: str, sport: int, dst: str, dport: int, start: float) -> dict[str, Any]:
    """A vpc_flows LogEntry: ``start_time`` is the first sampled packet of the interval."""
    return {
        "insertId": f"{sport}-{dport}",
        "logName": "projects/shop-4711/logs/compute.googleapis.com%2Fvpc_flows",
        "jsonPayload": {
            "connection": {
                "src_ip": src,
                "src_port": sport,
                "dest_ip": dst,
                "dest_port": dport,
                "protocol": 17,
            },
            "reporter": "SRC",
            "bytes_sent": "74",
            "packets_sent": "1",
            "start_time": _time(start),
            "end_time": _time(start + 0.001),
        },  # fmt: skip
        "timestamp": _time(start + 5),
    }


def _gcp_lines() -> str:
    """The answer's record starts 1.5 s before the query's: the query's first packet was
    sampled away, its retry kept (GCP samples packets; 5 s default aggregation interval)."""
    answer = _gcp_record(DNS, 53, WEB, 48123, EPOCH + 30.0)
    query = _gcp_record(WEB, 48123, DNS, 53, EPOCH + 31.5)
    return "".join(json.dumps(r) + "\n" for r in (answer, query))


def _azure_blob() -> str:
    """The server NIC's inbound tuple is stamped before the client NIC's outbound one (two
    hosts' clocks); both name the initiator as source (VNet flow log v4 tuples)."""

    def record(node: str, tuples: list[str]) -> dict[str, Any]:
        return {
            "time": _time(EPOCH + 59), "flowLogVersion": 4, "flowLogGUID": node,
            "macAddress": mac(node), "category": "FlowLogFlowEvent",
            "flowLogResourceID": FLOW_LOG, "targetResourceID": f"/nic/{node}",
            "operationName": "FlowLogFlowEvent",
            "flowRecords": {"flows": [{"aclID": node, "flowGroups": [
                {"rule": "DefaultRule_AllowVnetInBound", "flowTuples": tuples}]}]},
        }  # fmt: skip

    ms = int((EPOCH + 30) * 1000)
    server = [f"{ms},{WEB},{DNS},48123,53,17,I,B,NX,0,0,0,0",
              f"{ms + 2},{WEB},{DNS},48123,53,17,I,E,NX,1,74,1,120"]  # fmt: skip
    client = [f"{ms + 900},{WEB},{DNS},48123,53,17,O,B,NX,0,0,0,0",
              f"{ms + 902},{WEB},{DNS},48123,53,17,O,E,NX,1,74,1,120"]  # fmt: skip
    return json.dumps({"records": [record("node-a", server), record("node-b", client)]})


CAPTURES = {"gcp": ("vpc_flows.jsonl", _gcp_lines), "azure": ("PT1H.json", _azure_blob)}


@pytest.mark.parametrize("provider", sorted(CAPTURES))
def test_the_readers_set_the_aggregation_window(tmp_path: Path, provider: str) -> None:
    name, text = CAPTURES[provider]
    log = tmp_path / name
    log.write_text(text())
    flows = netpolgen.load_flows(log)
    # GCP: the default aggregation interval (5 s); Azure: a record per minute.
    assert flows.attrs[TIME_WINDOW_ATTR] == {"gcp": 5, "azure": 60}[provider]


@pytest.mark.parametrize("provider", sorted(CAPTURES))
def test_reply_first_without_an_inventory_keeps_the_query_only(
    tmp_path: Path, provider: str
) -> None:
    """As for AWS: no rule on the ephemeral port 48123, the query to 53 kept. Before the GCP
    reader set its window, the earlier answer was taken for the request (a rule to web's
    48123) and the query for its reply."""
    name, text = CAPTURES[provider]
    log = tmp_path / name
    log.write_text(text())
    result = generate_from_files([log])
    assert result.edges[["src", "dst", "dst_port"]].values.tolist() == [
        [f"ip:{WEB}", f"ip:{DNS}", 53]
    ]
    if provider == "gcp":  # Azure's tuples say who began: nothing is left undecided
        assert result.report.filtered[UNDECIDED] == 1


@pytest.mark.parametrize("provider", sorted(CAPTURES))
def test_reply_first_with_the_inventory_is_coredns_ingress_on_53(
    tmp_path: Path, provider: str
) -> None:
    cluster = _dns_cluster()
    (tmp_path / "inventory.json").write_text(json.dumps(inventory(cluster)))
    name, text = CAPTURES[provider]
    log = tmp_path / name
    log.write_text(text())
    result = generate_from_files([log], inventory=[tmp_path / "inventory.json"])
    documents = {d["metadata"]["name"]: d for d in _policies(result.to_yaml())}
    assert documents["coredns-access-ingress"]["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
                   "podSelector": {"matchLabels": {"app": "web"}}}],
         "ports": [{"protocol": "UDP", "port": 53}]}
    ]  # fmt: skip
    assert "web-access-ingress" not in documents  # no rule into web on 48123
