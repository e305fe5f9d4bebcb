"""Time ``verify`` on a synthetic table: N flows between W workloads against ~P policies.

Run: ``PYTHONPATH=. python benchmarks/bench_verify.py [flows] [workloads]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from netpolgen.check.verify import verify
from netpolgen.flows import conform_flows
from netpolgen.policy.model import Peer, Policy, PortSpec, Rule
from netpolgen.selectors import LabelSelector


def synthetic(n_flows: int, n_workloads: int, seed: int = 0) -> tuple[pd.DataFrame, list[Policy]]:
    rng = np.random.default_rng(seed)
    namespaces = [f"ns{i}" for i in range(10)]
    workloads = [(namespaces[i % 10], f"app=w{i},tier=t{i % 3}") for i in range(n_workloads)]
    ports = [80, 443, 5432, 6379, 8080, 9090]
    src = rng.integers(0, n_workloads, n_flows)
    dst = (src + rng.integers(1, 8, n_flows)) % n_workloads  # a sparse-ish graph
    port = np.array(ports)[dst % len(ports)]
    external = rng.random(n_flows) < 0.05
    frame = pd.DataFrame(
        {
            "src_namespace": [workloads[i][0] for i in src],
            "src_labels": [workloads[i][1] for i in src],
            "dst_namespace": [workloads[i][0] for i in dst],
            "dst_labels": [workloads[i][1] for i in dst],
            "dst_port": port,
            "protocol": "TCP",
            "count": rng.integers(1, 5, n_flows),
            "src_port": rng.integers(32768, 61000, n_flows),
            "time": pd.Timestamp("2026-11-20", tz="UTC")
            + pd.to_timedelta(np.arange(n_flows), unit="ms"),
        }
    )
    frame.loc[external, "dst_namespace"] = None
    frame.loc[external, "dst_labels"] = None
    frame["dst_ip"] = None
    frame.loc[external, "dst_ip"] = [f"203.0.113.{i % 250}" for i in range(int(external.sum()))]
    frame["dst_kind"] = np.where(external, "world", "pod")
    frame["src_kind"] = "pod"
    flows = conform_flows(frame)
    policies = []
    for i, (ns, labels) in enumerate(workloads):
        app = labels.split(",")[0].split("=")[1]
        peers = tuple(
            Peer(
                pod_selector=LabelSelector.of({"app": f"w{(i - k) % n_workloads}"}),
                namespace_selector=LabelSelector.of(
                    {"kubernetes.io/metadata.name": workloads[(i - k) % n_workloads][0]}
                ),
            )
            for k in range(1, 7)  # one peer short of the traffic: some flows are denied
        )
        policies.append(
            Policy(
                name=f"{app}-access-ingress",
                namespace=ns,
                pod_selector=LabelSelector.of({"app": app}),
                policy_types=("Ingress",),
                ingress=(Rule(peers=peers, ports=(PortSpec("TCP", ports[i % len(ports)]),)),),
            )
        )
    return flows, policies


def main() -> None:
    n_flows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_workloads = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    flows, policies = synthetic(n_flows, n_workloads)
    for over in (False, True):
        start = time.perf_counter()
        report = verify(flows, policies, over_permissive=over)
        elapsed = time.perf_counter() - start
        print(
            f"{n_flows} flows, {len(policies)} policies, over_permissive={over}: {elapsed:.2f}s; "
            f"{report.counts['edges_checked']} edges, {report.counts['flows_denied']} denied flows"
        )


if __name__ == "__main__":
    main()
