"""A cluster's connections as AWS VPC Flow Logs record them on EKS (VPC CNI), from AWS's docs.

Written from FORMATS.md §2 and the AWS VPC user guide ("Flow log records", "Flow log
limitations", "Flow log record examples"), not from netpolgen's reader. What it encodes:

* **Per ENI, per direction, per 5-tuple, per aggregation window** ("each record captures a
  network internet protocol (IP) traffic flow (characterized by a 5-tuple on a per network
  interface basis) that occurs within an aggregation interval"): a connection between pods on
  two nodes is logged by both nodes' ENIs, each with a request record and a response record.
* **Windows** of 600 s (the default maximum; 60 s on Nitro), each ENI with its own phase.
  ``start``/``end`` are the first/last packet of the 5-tuple within the window, "up to 60
  seconds after the packet was transmitted or received": each record gets its own delay of
  0-60 s, so a response's ``start`` can precede its request's.
* **tcp-flags** (v3+), OR-ed over the window: SYN 2 on the client's side of the first window,
  SYN-ACK 18 on the server's, FIN 1 in the window where the connection closes, 0 otherwise
  (a bare ACK is not recorded). UDP has none: 0.
* **Addresses**: pods use secondary IPs of their node's ENI. ``srcaddr``/``dstaddr`` show "the
  primary private IPv4 address" of the ENI for traffic from or to a secondary IP (Flow log
  limitations); ``pkt-srcaddr``/``pkt-dstaddr`` (v3+) the packet's, the pod IPs.
* **action** is the security group's decision: a connection the server side refuses is
  REJECT on the server's ENI, ACCEPT on the client's (its outbound rules allow it), and has no
  response records.
* **Absent**: traffic between two pods of one node never reaches an ENI (FORMATS.md §2.4).
* **Delivery**: S3 text files (a header line of field names; CloudWatch has none, the default
  format only), records in any order within a file, a window's records spread over files by
  publishing delay; NODATA records (``-`` fields) for idle ENIs.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.cloud.model import EPOCH, PROTOCOL_NUMBERS, Cluster, Connection

V2_FIELDS = (
    "version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport",
    "protocol", "packets", "bytes", "start", "end", "action", "log-status",
)  # fmt: skip
# A custom format with the packet addresses but no tcp-flags: version 3 (the highest field's).
V3_NO_FLAGS = (*V2_FIELDS[:5], "pkt-srcaddr", "pkt-dstaddr", *V2_FIELDS[5:])
V3_FIELDS = (
    "version", "vpc-id", "subnet-id", "instance-id", "interface-id", "account-id", "type",
    "srcaddr", "dstaddr", "srcport", "dstport", "pkt-srcaddr", "pkt-dstaddr", "protocol",
    "bytes", "packets", "start", "end", "action", "tcp-flags", "log-status",
)  # fmt: skip
V5_FIELDS = (
    "version", "srcaddr", "dstaddr", "srcport", "dstport", "protocol", "start", "end", "type",
    "packets", "bytes", "account-id", "vpc-id", "subnet-id", "instance-id", "interface-id",
    "region", "az-id", "sublocation-type", "sublocation-id", "action", "tcp-flags",
    "pkt-srcaddr", "pkt-dstaddr", "pkt-src-aws-service", "pkt-dst-aws-service",
    "traffic-path", "flow-direction", "log-status",
)  # fmt: skip
FORMATS = {"v2": V2_FIELDS, "v3-no-flags": V3_NO_FLAGS, "v3": V3_FIELDS, "v5": V5_FIELDS}
ACCOUNT = "123456789012"
FIN, SYN, SYN_ACK = 1, 2, 18
DELAY = 60  # "up to 60 seconds after the packet was transmitted or received"


@dataclass(frozen=True)
class Record:
    """One flow-log record: what one ENI saw of one direction of a connection in one window."""

    eni: str
    instance: str
    eni_ip: str  # the ENI's primary address (the node's)
    src: str  # packet addresses
    dst: str
    src_port: int
    dst_port: int
    protocol: str
    packets: int
    bytes: int
    start: int
    end: int
    action: str
    flags: int
    egress: bool  # flow-direction relative to the ENI

    def fields(self, version: str) -> dict[str, str]:
        src_ip = self.eni_ip if self.egress else self.src  # secondary IPs: the primary shows
        dst_ip = self.dst if self.egress else self.eni_ip
        udp = self.protocol == "UDP"
        return {
            "version": {"v2": "2", "v3-no-flags": "3", "v3": "3", "v5": "5"}[version],
            "account-id": ACCOUNT, "interface-id": self.eni, "srcaddr": src_ip,
            "dstaddr": dst_ip, "srcport": str(self.src_port), "dstport": str(self.dst_port),
            "protocol": str(PROTOCOL_NUMBERS[self.protocol]), "packets": str(self.packets),
            "bytes": str(self.bytes), "start": str(self.start), "end": str(self.end),
            "action": self.action, "log-status": "OK", "vpc-id": "vpc-0a1b2c3d4e5f60718",
            "subnet-id": "subnet-0123456789abcdef0", "instance-id": self.instance,
            "type": "IPv4", "pkt-srcaddr": self.src, "pkt-dstaddr": self.dst,
            "tcp-flags": "0" if udp else str(self.flags), "region": "us-east-1",
            "az-id": "use1-az1", "sublocation-type": "-", "sublocation-id": "-",
            "pkt-src-aws-service": "-", "pkt-dst-aws-service": "-",
            "traffic-path": "1" if self.egress else "-",
            "flow-direction": "egress" if self.egress else "ingress",
        }  # fmt: skip


def _windows(start: float, end: float, width: int, phase: int) -> list[tuple[float, float]]:
    """The parts of ``[start, end]`` in each aggregation window (aligned to ``phase``)."""
    parts = []
    first = int((start - phase) // width)
    last = int((end - phase) // width)
    for w in range(first, last + 1):
        low, high = phase + w * width, phase + (w + 1) * width
        parts.append((max(start, low), min(end, high - 0.001)))
    return parts


def connection_records(
    cluster: Cluster, c: Connection, rng: random.Random, width: int, phases: dict[str, int]
) -> list[Record]:
    """The records both ENIs write for connection ``c`` (none when it is node-local)."""
    if c.node_local:
        return []
    client, server = cluster.pod(c.client), cluster.pod(c.server)
    records: list[Record] = []
    rtt = rng.uniform(0.0002, 0.002)
    end = c.start + c.duration
    tcp = c.protocol == "TCP"
    for pod, is_client in ((client, True), (server, False)):
        node = cluster.node(pod.node)
        directions = [True] if c.denied else [True, False]  # request; response
        for request in directions:
            first_packet = c.start if request else c.start + rtt
            parts = _windows(first_packet, end + (0 if request else rtt), width, phases[node.eni])
            packets = c.request_packets if request else c.response_packets
            size = c.request_bytes if request else c.response_bytes
            for i, (low, high) in enumerate(parts):
                share = max(1, round(packets / len(parts)))
                flags = 0
                if tcp and i == 0:
                    flags = SYN if request else SYN_ACK
                if tcp and i == len(parts) - 1 and not c.denied:
                    flags |= FIN
                rejected = c.denied and not is_client  # the server's security group
                records.append(
                    Record(
                        eni=node.eni, instance=node.instance_id, eni_ip=node.ip,
                        src=client.ip if request else server.ip,
                        dst=server.ip if request else client.ip,
                        src_port=c.client_port if request else c.server_port,
                        dst_port=c.server_port if request else c.client_port,
                        protocol=c.protocol, packets=share,
                        bytes=max(40, size // max(1, len(parts))),
                        start=int(low) + rng.randint(0, DELAY),
                        end=int(high) + rng.randint(0, DELAY),
                        action="REJECT" if rejected else "ACCEPT", flags=flags,
                        egress=(request == is_client),
                    )
                )  # fmt: skip
    return [r if r.end >= r.start else Record(**{**r.__dict__, "end": r.start}) for r in records]


def render(
    cluster: Cluster,
    version: str,
    *,
    seed: int = 0,
    width: int = 600,
    files: int = 3,
    nodata: int = 2,
) -> list[list[str]]:
    """The flow-log lines of ``files`` S3 text files (header first unless ``version`` is v2
    delivered to CloudWatch, which a coin decides): each record goes to the file of its
    publishing time, records shuffled within each file."""
    rng = random.Random(seed)
    phases = {n.eni: rng.randrange(0, width) for n in cluster.nodes}
    fields = FORMATS[version]
    records = [
        r for c in cluster.connections for r in connection_records(cluster, c, rng, width, phases)
    ]
    out: list[list[str]] = [[] for _ in range(files)]
    span = max([r.end for r in records], default=EPOCH) - EPOCH + 1
    for r in records:
        # Published a few minutes after the window closes; files cover consecutive periods.
        published = r.end - EPOCH + rng.randint(0, 600)
        index = min(files - 1, int(published * files // (span + 600)))
        values = r.fields(version)
        out[index].append(" ".join(values[f] for f in fields))
    for _ in range(nodata):  # an idle ENI's window: no traffic, "-" in the flow fields
        node = rng.choice(cluster.nodes)
        idle = {f: "-" for f in fields}
        t = EPOCH + rng.randrange(0, int(span))
        idle.update({"version": "2" if version == "v2" else idle["version"],
                     "account-id": ACCOUNT, "interface-id": node.eni, "start": str(t),
                     "end": str(t + width), "log-status": "NODATA"})  # fmt: skip
        if version != "v2":
            idle["version"] = {"v3-no-flags": "3", "v3": "3", "v5": "5"}[version]
        rng.choice(out).append(" ".join(idle[f] for f in fields))
    header = version != "v2" or rng.random() < 0.5
    for lines in out:
        rng.shuffle(lines)
        if header:
            lines.insert(0, " ".join(fields))
    return out


def write(
    cluster: Cluster,
    directory: Path,
    version: str,
    *,
    seed: int = 0,
    gzipped: bool = False,
    **options: int,
) -> list[Path]:
    """:func:`render` into files named as S3 delivers them (gzip when ``gzipped``); empty
    files (a period without records) are not written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, lines in enumerate(render(cluster, version, seed=seed, **options)):
        if len(lines) <= 1:
            continue
        stamp = f"20261102T10{i:02d}Z_{seed:08x}"
        name = f"{ACCOUNT}_vpcflowlogs_us-east-1_fl-0123456789abcdef0_{stamp}.log"
        data = ("\n".join(lines) + "\n").encode()
        path = directory / (name + (".gz" if gzipped else ""))
        path.write_bytes(gzip.compress(data) if gzipped else data)
        paths.append(path)
    return paths


def records_of(lines: Sequence[str]) -> list[dict[str, str]]:
    """Parse rendered lines back (tests of the renderer itself)."""
    header = lines[0].split() if lines and lines[0].startswith("version") else list(V2_FIELDS)
    body = lines[1:] if lines and lines[0].startswith("version") else lines
    return [dict(zip(header, line.split(), strict=True)) for line in body]
