from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from netpolgen.policy import render
from netpolgen.policy.model import Peer, Policy, PortSpec, Rule
from netpolgen.policy.render import dump_yaml, render_yaml
from netpolgen.selectors import LabelSelector

# Strings that a YAML 1.1 reader (kubectl's go-yaml) would turn into booleans, numbers or null.
AMBIGUOUS = ["y", "Y", "n", "N", "yes", "no", "on", "off", "true", "NULL", "~", "012", "1e3",
             "0x1F", "0b101", "1_000", ".5", "+1", "12:30", ".inf", "-.inf", ".nan", ""]  # fmt: skip  # noqa: E501


@pytest.mark.parametrize("value", AMBIGUOUS)
def test_yaml11_ambiguous_strings_are_quoted(value: str) -> None:
    text = dump_yaml({"v": value})
    assert text.strip() in (f"v: '{value}'", f'v: "{value}"'), text
    assert yaml.safe_load(text) == {"v": value}


@pytest.mark.parametrize("value", ["app", "my-app", "a.b", "web-1", "v1", "x: y", "#x", "a\nb"])
def test_other_strings_round_trip(value: str) -> None:
    assert yaml.safe_load(dump_yaml({"v": value})) == {"v": value}


def _policy(name: str, namespace: str = "ns") -> Policy:
    return Policy(
        name=name,
        namespace=namespace,
        pod_selector=LabelSelector.of({"app": "on"}),
        policy_types=("Ingress",),
        ingress=(
            Rule((Peer(pod_selector=LabelSelector.of({"app": "y"})),), (PortSpec("TCP", 1),)),
        ),
    )


def test_stream_is_sorted_and_label_values_stay_strings() -> None:
    text = render_yaml([_policy("b"), _policy("a", "z"), _policy("a")])
    documents = list(yaml.safe_load_all(text))
    assert [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in documents] == [
        ("ns", "a"), ("ns", "b"), ("z", "a"),
    ]  # fmt: skip
    assert documents[0]["spec"]["podSelector"]["matchLabels"] == {"app": "on"}
    assert documents[0]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "app": "y"
    }


def test_manifest_round_trip_through_the_model() -> None:
    policy = _policy("a")
    assert Policy.from_manifest(yaml.safe_load(dump_yaml(policy.to_manifest()))) == policy


# The fast layout of dump_yaml must write what PyYAML writes, byte for byte.
TRICKY = AMBIGUOUS + ["app", "x: y", "#x", "a #b", "a\nb", " lead", "trail ", "- x", "? x",
                      "[a]", "{a}", "a, b (c=d) on UDP/TCP 53", "é ünïcode", "tab\there", "'q'",
                      '"q"', "2026-01-01T00:00:00Z", "10.0.0.0/8", "*", "&a", "!t", "%p", "@x",
                      "`x", "|", ">", "a" * 1200, "0", "-", "a:b", "x" * 130]  # fmt: skip


@pytest.mark.parametrize("value", [*TRICKY, 0, 1, 65535, True, False, None, 1.5, [], {}])
def test_fast_layout_matches_pyyaml(value: object) -> None:
    from netpolgen.policy.render import _pyyaml

    documents = [
        {"v": value},
        {"k": {"inner": value, "list": [value, {"a": value, "b": [value]}]}},
        {"spec": {"egress": [{"to": [{"ipBlock": {"cidr": value}}], "ports": [value]}]}},
        {"k": [[value]]},
    ]
    if isinstance(value, str):
        documents.append({value: value, "x": {value: [value]}})
    for document in documents:
        assert dump_yaml(document) == _pyyaml(document)


def test_fast_layout_matches_pyyaml_on_generated_policies() -> None:
    from netpolgen import generate, load_flows
    from netpolgen.policy.render import _pyyaml

    result = generate(load_flows("sample_flows/three-tier.csv"))
    assert result.policies
    for policy in result.policies:
        assert dump_yaml(policy.to_manifest()) == _pyyaml(policy.to_manifest())


def test_policies_load_the_same_with_and_without_libyaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netpolgen import generate, load_flows
    from netpolgen.policy.load import load_policies

    policies = generate(load_flows("sample_flows/three-tier.csv")).policies
    text = render_yaml(policies) + "---\n# empty\n---\napiVersion: v1\nkind: List\nitems: []\n"
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    fast_notes: list[str] = []
    fast = load_policies(path, notes=fast_notes)
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    slow_notes: list[str] = []
    slow = load_policies(path, notes=slow_notes)
    assert fast == slow and fast_notes == slow_notes
    assert sorted(fast, key=lambda p: (p.namespace, p.name)) == sorted(
        policies, key=lambda p: (p.namespace, p.name)
    )


# Scalars like the ones policies hold (names, label values, addresses, ports), and the texts
# near them that YAML 1.1 or PyYAML read as something else (numbers, booleans, null, times).
_SCALAR_TEXT = st.text(alphabet="aAyYnNoOeEx019._/-:+~ #'\"", max_size=12)


@given(
    st.one_of(
        _SCALAR_TEXT,
        st.integers(),
        st.booleans(),
        st.sampled_from(
            [
                "10.0.0.0/8",
                "fd00::/8",
                "0x1F",
                "1e3",
                "1_0",
                "12:30",
                ".inf",
                "y",
                "no",
                "Null",
                "-",
                "a-",
            ]
        ),
    )
)
@example("app.kubernetes.io")
@example("1.5")
@example("0o17")
@example("2024-01-01")  # a timestamp to YAML 1.1 (PyYAML quotes it)
def test_a_scalar_known_plain_is_written_as_pyyaml_writes_it(value: str | int | bool) -> None:
    # Known plain without PyYAML (render._value_text's shortcut) must be PyYAML's own text.
    try:
        emitted = render._emitted_text(value)
    except render._Unusual:
        return
    assert render._value_text.__wrapped__(value) == emitted
