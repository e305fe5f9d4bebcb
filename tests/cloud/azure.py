"""Azure's view of a :class:`~tests.cloud.model.Cluster`: VNet flow logs (version 4), one blob
per NIC and hour.

Written from Microsoft's documentation ("Virtual network flow logs": log format, and the
NSG flow log format it extends; FORMATS.md §4), not from netpolgen's reader:

* AKS with Azure CNI: pod IPs are secondary IP configurations of their node's NIC, so a
  connection between pods of two nodes is logged by both nodes' NICs, and one between pods of
  one node by neither ("intra-node traffic is never seen").
* Network Watcher writes a blob per NIC (by MAC) per hour:
  ``.../flowLogResourceID=/<ID>/y=<yyyy>/m=<mm>/d=<dd>/h=<hh>/m=00/macAddress=<MAC>/PT1H.json``,
  a document ``{"records": [...]}`` with a record per minute or so; each record's
  ``flowRecords.flows[].flowGroups[].flowTuples`` are
  ``epoch-ms,src,dst,sport,dport,protocol(IANA),direction(I|O),state,encryption,
  packets S2D,bytes S2D,packets D2S,bytes D2S``.
* A tuple's source is the connection's initiator, whichever NIC logs it; state ``B`` (begin,
  counters 0), ``C`` (continuing: counters are deltas since the previous tuple, every five
  minutes here), ``E`` (end, the last deltas), ``D`` (denied).
* A connection refused at the server's NIC is ``D`` there, while the client's NIC logs the
  attempt going out as ``B`` then ``E`` (the request's packets, nothing back).
"""

from __future__ import annotations

import json
import random
import zlib
from datetime import UTC, datetime
from typing import Any

from tests.cloud.model import PROTOCOL_NUMBERS, Cluster, Connection

FLOW_LOG = (
    "/SUBSCRIPTIONS/00000000-0000-4000-8000-000000000001/RESOURCEGROUPS/NETWORKWATCHERRG/"
    "PROVIDERS/MICROSOFT.NETWORK/NETWORKWATCHERS/NETWORKWATCHER_EASTUS/FLOWLOGS/AKS"
)
_CONTINUE_EVERY = 300.0  # seconds between C tuples of a long connection


def mac(node: str) -> str:
    return "0022" + f"{zlib.crc32(node.encode()):08X}"


def _tuples(c: Connection, client_ip: str, server_ip: str, direction: str, server_side: bool
            ) -> list[tuple[float, str]]:  # fmt: skip
    head = f"{client_ip},{server_ip},{c.client_port},{c.server_port},{PROTOCOL_NUMBERS[c.protocol]}"

    def at(seconds: float, state: str, counters: tuple[int, int, int, int]) -> tuple[float, str]:
        ms = int(seconds * 1000)
        return seconds, f"{ms},{head},{direction},{state},NX," + ",".join(map(str, counters))

    if c.denied and server_side:
        return [at(c.start, "D", (c.request_packets, c.request_bytes, 0, 0))]
    out = [at(c.start, "B", (0, 0, 0, 0))]
    end = c.start + c.duration
    # Counters are deltas: split the totals over the C tuples and the E tuple.
    count = int(c.duration // _CONTINUE_EVERY)
    steps = [c.start + _CONTINUE_EVERY * k for k in range(1, count + 1)]
    marks = [*steps, end]
    totals = (c.request_packets, c.request_bytes, c.response_packets, c.response_bytes)
    sent = [0, 0, 0, 0]
    for i, moment in enumerate(marks):
        share = (i + 1) / len(marks)
        now = [round(t * share) for t in totals]
        delta = tuple(n - s for n, s in zip(now, sent, strict=True))
        sent = now
        out.append(at(moment, "E" if i == len(marks) - 1 else "C", delta))  # type: ignore[arg-type]
    return out


def render(cluster: Cluster, *, seed: int = 0) -> dict[str, str]:
    """Blob path -> ``PT1H.json`` text, for every node NIC and hour that logged something."""
    rng = random.Random(seed)
    per_nic: dict[tuple[str, int], list[tuple[float, int, str]]] = {}
    for index, c in enumerate(cluster.connections):
        if c.node_local:
            continue
        client, server = cluster.pod(c.client), cluster.pod(c.server)
        for node, direction, server_side in ((client.node, "O", False), (server.node, "I", True)):
            for moment, text in _tuples(c, client.ip, server.ip, direction, server_side):
                hour = int(moment // 3600) * 3600
                per_nic.setdefault((node, hour), []).append((moment, index, text))
    blobs = {}
    for (node, hour), tuples in sorted(per_nic.items()):
        minutes: dict[int, list[str]] = {}
        for moment, _, text in sorted(tuples):
            minutes.setdefault(int(moment // 60) * 60, []).append(text)
        records: list[dict[str, Any]] = []
        for minute, texts in sorted(minutes.items()):
            allowed = [t for t in texts if ",D," not in t]
            denied = [t for t in texts if ",D," in t]
            groups = [g for g in ({"rule": "DefaultRule_AllowVnetInBound", "flowTuples": allowed},
                                  {"rule": "UserRule_deny-db", "flowTuples": denied})
                      if g["flowTuples"]]  # fmt: skip
            records.append({
                "time": datetime.fromtimestamp(minute + 59, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%S.0000000Z"),
                "flowLogVersion": 4, "flowLogGUID": f"{rng.getrandbits(64):016x}",
                "macAddress": mac(node), "category": "FlowLogFlowEvent",
                "flowLogResourceID": FLOW_LOG,
                "targetResourceID": f"/subscriptions/x/resourceGroups/mc/providers/"
                                    f"Microsoft.Network/networkInterfaces/{node}-nic",
                "operationName": "FlowLogFlowEvent",
                "flowRecords": {"flows": [{"aclID": f"acl-{node}", "flowGroups": groups}]},
            })  # fmt: skip
        start = datetime.fromtimestamp(hour, UTC)
        path = (
            f"flowLogResourceID={FLOW_LOG}/y={start:%Y}/m={start:%m}/d={start:%d}/"
            f"h={start:%H}/m=00/macAddress={mac(node)}/PT1H.json"
        )
        blobs[path] = json.dumps({"records": records})
    return blobs
