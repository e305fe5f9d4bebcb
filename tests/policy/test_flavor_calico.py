"""--flavor calico-staged: Calico StagedKubernetesNetworkPolicy (projectcalico.org/v3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from netpolgen import GenerateOptions, generate, load_flows, load_policies, render_yaml, verify
from netpolgen.check.report import format_report
from netpolgen.errors import OutputError
from netpolgen.policy.flavors import flavor_yaml, write_flavor_dir
from netpolgen.policy.render import sorted_policies
from tests.conftest import SAMPLE_FLOWS
from tests.crd import assert_valid_custom_resources
from tests.policy.flavor_samples import SAMPLES, sample_id

THREE_TIER = SAMPLE_FLOWS / "three-tier.csv"

# The example of Calico's "StagedKubernetesNetworkPolicy" reference page (docs.tigera.io,
# calico/latest/reference/resources/stagedkubernetesnetworkpolicy), which is the Kubernetes
# documentation's NetworkPolicy example under the staged kind: written from the docs, not from
# our renderer, so that reading it checks our understanding of the kind.
CALICO_DOCS_EXAMPLE = """
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
"""


def test_k8s_flavour_is_render_yaml_byte_for_byte() -> None:
    policies = generate(load_flows(THREE_TIER), GenerateOptions(default_deny=True)).policies
    assert flavor_yaml(policies) == render_yaml(policies)
    assert flavor_yaml(policies, "k8s") == render_yaml(policies)


def test_unknown_flavour_is_an_output_error() -> None:
    with pytest.raises(OutputError, match="unknown flavor 'calico'"):
        flavor_yaml([], "calico")


def test_golden_three_tier(golden: Any) -> None:
    policies = generate(load_flows(THREE_TIER), GenerateOptions(default_deny=True)).policies
    text = flavor_yaml(policies, "calico-staged")
    golden("calico-staged/three-tier.yaml", text)


def test_staged_spec_is_the_networkpolicy_spec_plus_staged_action() -> None:
    policies = generate(load_flows(THREE_TIER)).policies
    staged = list(yaml.safe_load_all(flavor_yaml(policies, "calico-staged")))
    plain = list(yaml.safe_load_all(render_yaml(policies)))
    for s, p in zip(staged, plain, strict=True):
        assert (s["apiVersion"], s["kind"]) == (
            "projectcalico.org/v3",
            "StagedKubernetesNetworkPolicy",
        )
        assert s["metadata"] == p["metadata"]
        assert s["spec"].pop("stagedAction") == "Set"
        assert s["spec"] == p["spec"]


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_every_sample_validates_and_verifies_clean_as_staged(sample: Path, tmp_path: Path) -> None:
    table = load_flows(sample)
    policies = generate(table, GenerateOptions(default_deny=True)).policies
    assert_valid_custom_resources(flavor_yaml(policies, "calico-staged"))
    write_flavor_dir(policies, tmp_path / "out", "calico-staged")
    notes: list[str] = []
    loaded = load_policies(tmp_path / "out", notes=notes)
    assert not notes
    # Read back as their enforced form: the very policies that were rendered.
    assert sorted_policies(loaded) == sorted_policies(policies)
    report = verify(table, loaded, over_permissive=False)
    assert report.ok, format_report(report)


def test_the_calico_documentation_example_validates_and_loads(tmp_path: Path) -> None:
    assert_valid_custom_resources(CALICO_DOCS_EXAMPLE)
    path = tmp_path / "staged.yaml"
    path.write_text(CALICO_DOCS_EXAMPLE, encoding="utf-8")
    (policy,) = load_policies(path)
    assert (policy.namespace, policy.name) == ("default", "test-network-policy")
    assert policy.policy_types == ("Ingress", "Egress")
    (rule,) = policy.ingress
    assert rule.peers[0].ip_block is not None and rule.peers[0].ip_block.except_ == (
        "172.17.1.0/24",
    )
    assert [(p.protocol, p.port) for p in rule.ports] == [("TCP", 6379)]


def test_staged_delete_enforces_nothing_and_is_noted(tmp_path: Path) -> None:
    # stagedAction Delete stages the removal of the enforced policy of that name (Calico docs):
    # as an enforced form it is no policy at all.
    document = yaml.safe_load(CALICO_DOCS_EXAMPLE)
    document["spec"]["stagedAction"] = "Delete"
    path = tmp_path / "delete.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    notes: list[str] = []
    assert load_policies(path, notes=notes) == []
    assert len(notes) == 1 and "stagedAction Delete" in notes[0]


def test_staged_list_is_unpacked(tmp_path: Path) -> None:
    document = yaml.safe_load(CALICO_DOCS_EXAMPLE)
    listing = {"apiVersion": "projectcalico.org/v3", "kind": "StagedKubernetesNetworkPolicyList",
               "items": [document]}  # fmt: skip
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump(listing), encoding="utf-8")
    assert [p.name for p in load_policies(path)] == ["test-network-policy"]


def test_schema_catches_a_misspelt_field() -> None:
    # The validator must be able to fail: an unknown spec field is refused.
    document = yaml.safe_load(CALICO_DOCS_EXAMPLE)
    document["spec"]["stagedActoin"] = "Set"
    with pytest.raises(AssertionError, match="stagedActoin"):
        assert_valid_custom_resources(yaml.safe_dump(document))
