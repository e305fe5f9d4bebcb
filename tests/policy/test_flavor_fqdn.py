"""DNS names from Hubble's DNS events in the output: annotations (k8s), toFQDNs (cilium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from netpolgen import generate, load_flows, read_dns_map, render_yaml
from netpolgen.cli import cli
from netpolgen.policy.flavors import flavor_yaml
from netpolgen.policy.flavors.cilium_eval import CiliumEvaluator
from netpolgen.policy.fqdn import FQDNS_ANNOTATION, annotate_fqdns
from tests.conftest import SAMPLE_FLOWS
from tests.crd import assert_valid_custom_resources
from tests.k8s import assert_valid_policies
from tests.policy.dns_fixture import write_capture

FRONTEND = ("shop", (("app", "frontend"),), None)


def _egress(text: str) -> dict[str, Any]:
    (document,) = [
        d for d in yaml.safe_load_all(text) if d["metadata"]["name"] == "frontend-access-egress"
    ]
    return dict(document)


def _cli(capture: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["from-flows", str(capture), "-q", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_k8s_annotations_name_the_blocks(tmp_path: Path) -> None:
    text = _cli(write_capture(tmp_path / "capture.jsonl"))
    assert_valid_policies(text)
    notes = _egress(text)["metadata"]["annotations"][FQDNS_ANNOTATION]
    assert "203.0.113.10/32: api.example.com" in notes
    assert "203.0.113.12/32: api.example.com" in notes  # the autopath answer, normalised
    assert "192.0.2.77/32: downloads.example.org" in notes  # destination_names
    assert "192.0.2.200" not in notes and "cluster.local" not in notes


def test_without_dns_events_the_output_is_unchanged() -> None:
    for sample in sorted(SAMPLE_FLOWS.glob("*.csv")):
        policies = generate(load_flows(sample)).policies
        assert flavor_yaml(policies, dns=read_dns_map([sample])) == render_yaml(policies)


def test_cilium_writes_to_fqdns_and_the_dns_proxy_rule(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "capture.jsonl")
    text = _cli(capture, "--flavor", "cilium")
    documents = assert_valid_custom_resources(text)
    egress = _egress(text)["spec"]["egress"]
    fqdn_rules = [r for r in egress if "toFQDNs" in r]
    selectors = [s for r in fqdn_rules for s in r["toFQDNs"]]
    assert {"matchName": "api.example.com"} in selectors
    assert {"matchName": "downloads.example.org"} in selectors
    assert {"matchPattern": "*.cdn.example.net"} in selectors  # three names under one parent
    assert all(
        r["toPorts"] == [{"ports": [{"port": "443", "protocol": "TCP"}]}] for r in fqdn_rules
    )
    cidrs = [c["cidr"] for r in egress for c in r.get("toCIDRSet", [])]
    assert cidrs == ["192.0.2.200/32"]  # no name: stays an address
    proxy = [r for r in egress if any("rules" in p for p in r.get("toPorts", []))]
    resolver = {"k8s-app": "kube-dns", "k8s:io.kubernetes.pod.namespace": "kube-system"}
    assert proxy == [{
        "toEndpoints": [{"matchLabels": resolver}],
        "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}],
                     "rules": {"dns": [{"matchPattern": "*"}]}}],
    }]  # fmt: skip
    # Every observed connection is allowed through the names, and addresses answered for the
    # same names too (that is the point of names); an address of no name is not.
    dns = read_dns_map([capture])
    evaluator = CiliumEvaluator(documents, names_of=dns.names)
    for ip in ("203.0.113.10", "203.0.113.12", "198.51.100.2", "192.0.2.77", "203.0.113.11"):
        assert evaluator.side("egress", FRONTEND, (None, (), ip), "TCP", 443), ip
    assert evaluator.side("egress", FRONTEND, (None, (), "192.0.2.200"), "TCP", 8443)
    assert not evaluator.side("egress", FRONTEND, (None, (), "203.0.113.99"), "TCP", 443)
    assert not evaluator.side("egress", FRONTEND, (None, (), "203.0.113.10"), "TCP", 80)
    assert evaluator.side(
        "egress", FRONTEND, ("kube-system", (("k8s-app", "kube-dns"),), None), "UDP", 53
    )


def test_answers_after_the_last_flow_do_not_name_it(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "capture.jsonl")
    policies = generate(load_flows(capture)).policies
    late = read_dns_map([capture])
    table = late.table.assign(time=late.table["time"] + __import__("pandas").Timedelta(hours=2))
    shifted = type(late)(table)
    assert all(
        FQDNS_ANNOTATION not in dict(p.annotations) for p in annotate_fqdns(policies, shifted)
    )


def test_online_shop_sample_names_its_payment_api(golden: Any) -> None:
    sample = SAMPLE_FLOWS / "online-shop.hubble.jsonl"
    text = _cli(
        sample, "--flavor", "cilium", "-i", str(SAMPLE_FLOWS / "online-shop.inventory.json")
    )
    assert_valid_custom_resources(text)
    assert "matchName: api.payments.example" in text
    golden("cilium/online-shop.yaml", text)
