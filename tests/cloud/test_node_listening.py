"""Node addresses listen: a NodePort Service's ``nodePort`` on every node (kube-proxy opens it
there: Kubernetes "Service", type NodePort), and a hostNetwork pod's ``containerPorts`` on its
node's address (the pod shares the node's network namespace). That is direction evidence
(rule b, :mod:`netpolgen.cluster.listening`) for records that carry no direction.

The capture is AWS's (FORMATS.md §2): the node's ENI logs each direction of a connection as
its own record of one aggregation window, ``tcp-flags`` 0 (a window after the handshake's), in
either order. The client's port, 24567, lies below Linux's ephemeral range (32768-60999): a
NAT or load balancer in front of the client picks such ports, so the port alone says nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netpolgen.cluster.inventory import load_inventory
from netpolgen.cluster.listening import listening_addresses
from netpolgen.generator import generate_from_files
from tests.cloud.aws import ACCOUNT, V5_FIELDS
from tests.cloud.model import EPOCH
from tests.flowkit import inventory, namespace, pod

NODE = "10.0.0.10"
CLIENT = "198.51.100.9"
EXPORTER = 9100


def _inventory() -> dict[str, Any]:
    node = {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-0-0-10"},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": NODE}]},
    }  # fmt: skip
    web = pod("shop", "web-0", {"app": "web"}, "10.244.0.5",
              [{"containerPort": 8080, "protocol": "TCP"}])  # fmt: skip
    web["spec"]["nodeName"] = "ip-10-0-0-10"
    exporter = pod("monitoring", "node-exporter-x7k2q", {"app": "node-exporter"}, NODE,
                   [{"containerPort": EXPORTER, "protocol": "TCP"}])  # fmt: skip
    exporter["spec"] |= {"hostNetwork": True, "nodeName": "ip-10-0-0-10"}
    exporter["status"]["hostIP"] = NODE
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "shop", "name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "172.20.0.50",
                 "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080,
                            "nodePort": 30080}]},
    }  # fmt: skip
    return inventory(namespace("shop"), namespace("monitoring"), node, web, exporter, service)


def _lines(server_port: int, first: str) -> list[str]:
    values = {f: "-" for f in V5_FIELDS}
    values.update({"version": "5", "protocol": "6", "type": "IPv4", "packets": "4",
                   "account-id": ACCOUNT, "interface-id": "eni-001",
                   "instance-id": "i-00000000000000001", "action": "ACCEPT", "tcp-flags": "0",
                   "start": str(EPOCH + 60), "end": str(EPOCH + 119),
                   "log-status": "OK"})  # fmt: skip
    request = {**values, "srcaddr": CLIENT, "dstaddr": NODE, "srcport": "24567",
               "dstport": str(server_port), "pkt-srcaddr": CLIENT, "pkt-dstaddr": NODE,
               "bytes": "300", "flow-direction": "ingress"}  # fmt: skip
    reply = {**values, "srcaddr": NODE, "dstaddr": CLIENT, "srcport": str(server_port),
             "dstport": "24567", "pkt-srcaddr": NODE, "pkt-dstaddr": CLIENT, "bytes": "900",
             "flow-direction": "egress", "traffic-path": "8"}  # fmt: skip
    pair = [reply, request] if first == "reply" else [request, reply]
    return [" ".join(V5_FIELDS)] + [" ".join(r[f] for f in V5_FIELDS) for r in pair]


def test_node_addresses_listen_on_node_ports_and_host_network_ports(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(_inventory()))
    table = listening_addresses(load_inventory([path]))
    assert table.values.tolist() == [[NODE, "TCP", EXPORTER], [NODE, "TCP", 30080]]


@pytest.mark.parametrize("server_port", [30080, EXPORTER])
@pytest.mark.parametrize("first", ["reply", "request"])
def test_a_capture_to_a_node_port_is_decided_by_the_inventory(
    tmp_path: Path, server_port: int, first: str
) -> None:
    """Without the node's listening ports both records of the window were kept as requests
    (neither goes to an ephemeral port): an edge node -> client on 24567 beside the real one."""
    (tmp_path / "inventory.json").write_text(json.dumps(_inventory()))
    log = tmp_path / "flows.log"
    log.write_text("\n".join(_lines(server_port, first)) + "\n")
    result = generate_from_files([log], inventory=[tmp_path / "inventory.json"])
    edges = result.edges
    assert edges[["src", "dst", "dst_port"]].values.tolist() == [
        [f"ip:{CLIENT}", f"ip:{NODE}", server_port]
    ]
    assert result.report.filtered["reply traffic"] == 1
