"""verify and diff on every flavour's output (issue 19: "verify on each flavour's output is clean
on every sample"; the cilium and staged flavours allow exactly what the k8s one does).

Each sample is generated once, as ``from-flows`` does (the online-shop files with their
inventory, as the README runs them; Hubble DNS answers for names), written in each flavour, and
read back by ``verify`` (the same flows) and ``diff`` (k8s against each other flavour). The
property test does the same over random clusters and random traffic.
"""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen import GenerateOptions, generate_from_files, read_dns_map
from netpolgen.check.diff import diff_files
from netpolgen.check.report import VerificationReport
from netpolgen.check.verify import verify_files
from netpolgen.cluster.inventory import load_inventory
from netpolgen.policy.flavors import write_flavor_dir
from netpolgen.policy.flavors.cilium_read import entities_from_inventory
from tests.conftest import SAMPLE_FLOWS
from tests.policy.flavor_samples import SAMPLES, sample_id

INVENTORY = SAMPLE_FLOWS / "online-shop.inventory.json"
ALL_SAMPLES = sorted({*SAMPLES, *SAMPLE_FLOWS.glob("*.log.gz")})
FLAVOURS = {"k8s": ("k8s", False), "cilium": ("cilium", False),
            "calico-staged": ("calico-staged", False), "k8s+cluster": ("k8s", True)}  # fmt: skip


def _inventories(sample: Path) -> list[Path]:
    return [INVENTORY] if sample.name.startswith("online-shop.") else []


def _comparable(report: VerificationReport) -> dict[str, Any]:
    """What a report says about traffic (rule numbering differs between APIs by design: one
    NetworkPolicy rule is up to three Cilium rules)."""
    edges = report.edges[["src_namespace", "src_labels", "src_ip", "dst_namespace",
                          "dst_labels", "dst_ip", "protocol", "dst_port", "allowed"]]  # fmt: skip
    counts = {k: v for k, v in report.counts.items() if not k.startswith("rules")}
    return {
        "ok": report.ok,
        "counts": counts,
        "edges": edges.astype(str).values.tolist(),
        "over": report.over_permissive.astype(str).values.tolist(),
        "denied": report.denied.astype(str).values.tolist(),
    }


def write_all(policies: Any, root: Path, dns: Any) -> dict[str, Path]:
    out = {}
    for name, (flavor, cluster) in FLAVOURS.items():
        out[name] = root / name
        write_flavor_dir(policies, out[name], flavor, dns=dns, cluster_policies=cluster)
    return out


@pytest.mark.parametrize("sample", ALL_SAMPLES, ids=sample_id)
def test_verify_is_clean_on_every_flavour_and_diff_finds_them_the_same(
    sample: Path, tmp_path: Path
) -> None:
    inventories = _inventories(sample)
    result = generate_from_files([sample], GenerateOptions(), inventory=inventories)
    if not result.policies:
        pytest.skip("no policy from this sample (only denied traffic, or no pod without inventory)")
    dirs = write_all(result.policies, tmp_path, read_dns_map([sample]))
    reports = {name: verify_files([sample], d, inventories) for name, d in dirs.items()}
    for name, report in reports.items():
        assert report.ok, (name, report.summary())
        assert report.counts["flows_checked"] > 0
    # (No cluster policy when every policy is in a system namespace, as with --default-deny.)
    written = (dirs["k8s+cluster"] / "_cluster").exists()
    assert reports["k8s+cluster"].counts.get("cluster_policies", 0) == int(written)
    k8s = _comparable(reports["k8s"])
    for name in ("cilium", "calico-staged"):
        assert _comparable(reports[name]) == k8s, name
    assert diff_files(dirs["k8s"], dirs["calico-staged"], inventories).same
    diff = diff_files(dirs["k8s"], dirs["cilium"], inventories)
    assert diff.same or _only_other_nodes(diff, inventories), diff.changes.to_dict("records")


def _only_other_nodes(diff: Any, inventories: list[Path]) -> bool:
    """Whether the only differences are egress to nodes that the k8s output does not name: the
    cilium flavour writes a node's address as the ``remote-node`` entity, which is every node
    (Cilium's CIDR rules cannot select one node), so where the logs saw traffic to some nodes
    only (cloud logs miss traffic within a node) Cilium allows the other nodes too."""
    nodes = {
        ipaddress.ip_address(a)
        for a, e in entities_from_inventory(load_inventory(inventories)).items()
        if "remote-node" in e
    }
    for row in diff.changes.to_dict("records"):
        if row["change"] != "added" or pd.isna(row["dst_addresses"]):
            return False
        low, _, high = str(row["dst_addresses"]).partition("-")
        first = ipaddress.ip_network(low, strict=False)
        last = ipaddress.ip_address(high) if high else first.broadcast_address
        start = int(first.network_address)
        if any(ipaddress.ip_address(i) not in nodes for i in range(start, int(last) + 1)):
            return False
    return not diff.changes.empty


# --- random clusters -----------------------------------------------------------------------------

_NAMESPACES = ("shop", "pay", "ops")
_APPS = ("web", "api", "db", "cache")
_OUTSIDE = ("203.0.113.7", "198.51.100.20", "192.0.2.55")


def _random_flows(rng: random.Random) -> str:
    """A CSV of random pod-to-pod and pod-to-outside connections (README's CSV columns)."""
    pods = [(ns, app) for ns in _NAMESPACES for app in rng.sample(_APPS, rng.randint(1, 3))]
    lines = ["src_namespace,src_labels,dst_namespace,dst_labels,dst_ip,dst_port,protocol"]
    for _ in range(rng.randint(3, 25)):
        src = rng.choice(pods)
        port = rng.choice((53, 80, 443, 5432, 6379, 8080, 9090))
        protocol = rng.choice(("TCP", "TCP", "UDP"))
        if rng.random() < 0.25:
            dst_ip = rng.choice(_OUTSIDE)
            lines.append(f"{src[0]},app={src[1]},,,{dst_ip},{port},{protocol}")
        else:
            dst = rng.choice(pods)
            lines.append(f"{src[0]},app={src[1]},{dst[0]},app={dst[1]},,{port},{protocol}")
    return "\n".join(lines) + "\n"


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1_000_000), default_deny=st.booleans())
def test_verify_reports_on_cilium_and_k8s_output_are_the_same(
    seed: int, default_deny: bool, tmp_path_factory: Any
) -> None:
    root = tmp_path_factory.mktemp("flavours")
    flows = root / "flows.csv"
    flows.write_text(_random_flows(random.Random(seed)))
    options = GenerateOptions(default_deny=default_deny)
    result = generate_from_files([flows], options)
    dirs = write_all(result.policies, root, None)
    reports = {name: verify_files([flows], d) for name, d in dirs.items()}
    assert all(r.ok for r in reports.values())
    k8s = _comparable(reports["k8s"])
    assert _comparable(reports["cilium"]) == k8s
    assert _comparable(reports["calico-staged"]) == k8s
    assert diff_files(dirs["k8s"], dirs["cilium"]).same


def test_the_report_comparison_can_fail(tmp_path: Path) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text(_random_flows(random.Random(3)))
    result = generate_from_files([flows], GenerateOptions())
    dirs = write_all(result.policies, tmp_path, None)
    first = next(p for p in sorted(dirs["cilium"].rglob("*.yaml")))
    first.unlink()  # one policy fewer: other verdicts or over-permissiveness
    k8s = _comparable(verify_files([flows], dirs["k8s"]))
    assert _comparable(verify_files([flows], dirs["cilium"])) != k8s
