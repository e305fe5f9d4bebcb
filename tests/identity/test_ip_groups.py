from __future__ import annotations

import random

import pandas as pd

from netpolgen.flows import conform_flows
from netpolgen.identity.ip_groups import cluster_endpoints
from netpolgen.reduce.edges import aggregate_edges


def three_tier_ip_only(seed: int = 7) -> pd.DataFrame:
    """Web, app and db tiers known only by address: clients -> web:443 -> app:8080 -> db:5432."""
    rng = random.Random(seed)
    clients = [f"203.0.113.{i}" for i in range(1, 9)]
    web = [f"10.0.1.{i}" for i in range(10, 14)]
    app = [f"10.0.2.{i}" for i in range(20, 25)]
    db = [f"10.0.3.{i}" for i in range(30, 33)]
    rows = []
    for _ in range(400):
        hop = rng.randrange(3)
        src, dst, port = [(clients, web, 443), (web, app, 8080), (app, db, 5432)][hop]
        rows.append({"src_ip": rng.choice(src), "dst_ip": rng.choice(dst), "dst_port": port,
                     "src_port": rng.randrange(32768, 60999), "is_reply": False})  # fmt: skip
    return conform_flows(pd.DataFrame(rows))


def test_three_roles_are_found_from_behaviour_alone() -> None:
    edges, endpoints = aggregate_edges(three_tier_ip_only())
    groups = cluster_endpoints(edges, endpoints)
    # The third octet tells the true role: clients 113, web 1, app 2, db 3.
    roles = groups.groupby("group")["ip"].apply(lambda s: sorted({ip.split(".")[2] for ip in s}))
    assert sorted(roles) == [["1"], ["113"], ["2"], ["3"]]
    names = set(groups["group"])
    assert any(n.startswith("serves-tcp-5432") for n in names)
    assert any(n.startswith("serves-tcp-8080") for n in names)


def test_grouping_is_deterministic_and_threshold_one_merges_everything() -> None:
    edges, endpoints = aggregate_edges(three_tier_ip_only())
    a = cluster_endpoints(edges, endpoints)
    b = cluster_endpoints(edges.sample(frac=1, random_state=3), endpoints)
    pd.testing.assert_frame_equal(a, b)
    assert cluster_endpoints(edges, endpoints, distance_threshold=1.0)["group"].nunique() == 1


def test_groups_reach_the_policies_as_annotations_and_merge_boundaries() -> None:
    from netpolgen import GenerateOptions, generate

    flows = three_tier_ip_only()
    # Give the db tier an identity, so that it gets an ingress policy with the app tier as peers.
    db = flows["dst_ip"].str.startswith("10.0.3.").fillna(False).astype(bool)
    flows.loc[db, ["dst_namespace", "dst_labels"]] = ["data", "app=db"]
    flows.loc[db, "dst_kind"] = "pod"
    result = generate(flows, GenerateOptions(group_ips=True))
    policy = next(p for p in result.policies if p.name == "db-access-ingress")
    groups = dict(policy.annotations)["netpolgen.io/peer-groups"]
    assert groups.startswith("serves-tcp-8080-") and "10.0.2.20/30" in groups
    assert result.ip_groups is not None and len(result.ip_groups) > 0
