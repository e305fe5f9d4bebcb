"""--cluster-policies: a Baseline-tier ClusterNetworkPolicy default deny (v1alpha2)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from netpolgen import GenerateOptions, generate, load_flows, load_policies, verify
from netpolgen.cli import cli
from netpolgen.policy.flavors import cluster_policy_manifests, flavor_yaml
from netpolgen.policy.flavors.cluster_policy import baseline_default_deny
from tests.conftest import SAMPLE_FLOWS
from tests.crd import SCHEMAS, assert_valid_custom_resources

THREE_TIER = SAMPLE_FLOWS / "three-tier.csv"
UPSTREAM_EXAMPLE = SCHEMAS / "network-policy-api-v0.2.0_example_cluster-wide-deny.yaml"


def test_the_upstream_example_validates() -> None:
    # The API authors' own valid object: the validator reads the CRD as they meant it.
    assert_valid_custom_resources(UPSTREAM_EXAMPLE.read_text(encoding="utf-8"))


def test_baseline_default_deny_validates_and_says_what_it_covers() -> None:
    manifest = baseline_default_deny(["shop", "default", "shop"])
    (document,) = assert_valid_custom_resources(yaml.safe_dump(manifest))
    spec = document["spec"]
    assert (spec["tier"], spec["priority"]) == ("Baseline", 1000)
    assert spec["subject"]["namespaces"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["default", "shop"]}
    ]
    assert [r["action"] for r in spec["ingress"] + spec["egress"]] == ["Deny", "Deny"]
    assert {"networks": ["0.0.0.0/0", "::/0"]} in spec["egress"][0]["to"]
    assert "metadata" in document and "namespace" not in document["metadata"]  # cluster-scoped


def test_the_schema_refuses_more_than_25_rules() -> None:
    manifest = baseline_default_deny(["shop"])
    too_many = copy.deepcopy(manifest)
    too_many["spec"]["egress"] = manifest["spec"]["egress"] * 26
    with pytest.raises(AssertionError, match="too long|expected at most"):
        assert_valid_custom_resources(yaml.safe_dump(too_many))


def test_directions_follow_the_policies() -> None:
    policies = generate(load_flows(THREE_TIER), GenerateOptions(egress=False)).policies
    (manifest,) = cluster_policy_manifests(policies)
    assert "ingress" in manifest["spec"] and "egress" not in manifest["spec"]
    assert cluster_policy_manifests([]) == []


def test_cli_appends_it_after_the_policies(golden: Any) -> None:
    result = CliRunner().invoke(cli, ["from-flows", str(THREE_TIER), "-q", "--cluster-policies"])
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.stdout))
    assert documents[-1]["kind"] == "ClusterNetworkPolicy"
    assert all(d["kind"] == "NetworkPolicy" for d in documents[:-1])
    plain = CliRunner().invoke(cli, ["from-flows", str(THREE_TIER), "-q"]).stdout
    assert result.stdout.startswith(plain)  # the policies themselves are unchanged
    golden("cluster-policies/three-tier.yaml", result.stdout[len(plain) :])


def test_directory_output_and_verify(tmp_path: Path) -> None:
    table = load_flows(THREE_TIER)
    policies = generate(table).policies
    from netpolgen.policy.flavors import write_flavor_dir

    written = write_flavor_dir(policies, tmp_path / "out", "cilium", cluster_policies=True)
    assert Path("_cluster/netpolgen-baseline-default-deny.yaml") in written
    assert_valid_custom_resources(
        (tmp_path / "out" / "_cluster" / "netpolgen-baseline-default-deny.yaml").read_text()
    )
    text = flavor_yaml(policies, "k8s", cluster_policies=True)
    assert_valid_custom_resources(text.split("---\n")[-1])
    # verify does not evaluate cluster policies yet: it reads the NetworkPolicies and notes
    # the ClusterNetworkPolicy as skipped; the observed flows stay allowed.
    write_flavor_dir(policies, tmp_path / "k8s", "k8s", cluster_policies=True)
    notes: list[str] = []
    loaded = load_policies(tmp_path / "k8s", notes=notes)
    assert len(loaded) == len(policies) and any("ClusterNetworkPolicy" in n for n in notes)
    assert verify(table, loaded, over_permissive=False).ok
