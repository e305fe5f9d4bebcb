"""The cilium flavour's options: --world-as-entity, --fqdn-min-names, --fqdn-pattern-min."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from click.testing import CliRunner

from netpolgen import GenerateOptions, generate, load_flows, load_inventory
from netpolgen.cli import cli
from netpolgen.policy.flavors import flavor_manifests
from netpolgen.policy.flavors.cilium import CiliumOptions
from netpolgen.policy.flavors.cilium_eval import CiliumEvaluator
from netpolgen.policy.semantics import Evaluator
from tests.conftest import SAMPLE_FLOWS
from tests.crd import assert_valid_custom_resources
from tests.policy.dns_fixture import write_capture
from tests.policy.test_flavor_cilium import _key

HUBBLE = SAMPLE_FLOWS / "online-shop.hubble.jsonl"
INVENTORY = SAMPLE_FLOWS / "online-shop.inventory.json"


def _cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["from-flows", *args, "-q"])
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


def _peers(text: str, key: str) -> list[Any]:
    return [
        peer
        for document in yaml.safe_load_all(text)
        for direction in ("ingress", "egress")
        for rule in document["spec"].get(direction, [])
        for peer in rule.get(key, [])
    ]


# --- --world-as-entity -------------------------------------------------------------------------


def test_world_replaces_every_address_blocks(golden: Any) -> None:
    args = [str(HUBBLE), "-i", str(INVENTORY), "--flavor", "cilium", "--cidr-prefix-min", "0"]
    plain = _cli(*args)
    world = _cli(*args, "--world-as-entity")
    assert_valid_custom_resources(world)
    every = [p["cidr"] for p in _peers(plain, "toCIDRSet") + _peers(plain, "fromCIDRSet")]
    assert "0.0.0.0/0" in every  # the sample widened to /0 has such blocks ...
    left = [p["cidr"] for p in _peers(world, "toCIDRSet") + _peers(world, "fromCIDRSet")]
    assert "0.0.0.0/0" not in left  # ... which become the entity
    assert "world" in _peers(world, "toEntities") and "world" in _peers(world, "fromEntities")
    assert "world" not in plain  # off by default
    golden("cilium/online-shop-world.yaml", world)


def test_world_allows_every_observed_edge() -> None:
    # The observed connections stay allowed through the entity (the evaluator reads world as
    # every address without a cluster identity, as Cilium's docs define it).
    inventory = load_inventory(INVENTORY)
    result = generate(
        load_flows(HUBBLE), GenerateOptions(cidr_prefix_v4=0, default_deny=True),
        inventory=inventory,
    )  # fmt: skip
    options = CiliumOptions(world_as_entity=True)
    manifests = [m for _, m in flavor_manifests(result.policies, "cilium", cilium=options)]
    assert "world" in str(manifests)
    cilium = CiliumEvaluator(manifests)
    k8s = Evaluator(result.policies)
    checked = 0
    for src, dst, protocol, port in result.edges[["src", "dst", "protocol", "dst_port"]].itertuples(
        index=False
    ):
        s, d = _key(src), _key(dst)
        number = None if pd.isna(port) else int(port)
        assert k8s.allows(s, d, protocol, number) == (True, True)
        if d[2] is not None:  # to an outside address
            assert cilium.side("egress", s, d, protocol, number), (src, dst, port)
            checked += 1
        if s[2] is not None:  # from one
            assert cilium.side("ingress", d, s, protocol, number), (src, dst, port)
            checked += 1
    assert checked > 5


def test_a_block_that_excepts_a_denied_network_stays_a_cidr_set(tmp_path: Path) -> None:
    guardrails = tmp_path / "g.yaml"
    guardrails.write_text(
        "deny: [{from: {pods: all}, to: {networks: [169.254.169.254/32]}}]\n", encoding="utf-8"
    )
    args = [str(HUBBLE), "-i", str(INVENTORY), "--flavor", "cilium", "--cidr-prefix-min", "0"]
    text = _cli(*args, "--world-as-entity", "--guardrails", str(guardrails))
    # Widened blocks except a denied network in both directions (one set of protected
    # networks), so none of them is world.
    blocks = _peers(text, "toCIDRSet") + _peers(text, "fromCIDRSet")
    assert blocks and all("169.254.169.254/32" in b.get("except", []) for b in blocks)
    assert "world" not in _peers(text, "toEntities") + _peers(text, "fromEntities")


def test_world_needs_the_cilium_flavour() -> None:
    output = _cli(str(HUBBLE), "--world-as-entity", code=2)
    assert "--world-as-entity needs --flavor cilium" in output


# --- --fqdn-min-names, --fqdn-pattern-min ------------------------------------------------------


def test_fqdn_min_names(tmp_path: Path) -> None:
    capture = str(write_capture(tmp_path / "capture.jsonl"))
    default = _cli(capture, "--flavor", "cilium")
    assert default == _cli(capture, "--flavor", "cilium", "--fqdn-min-names", "1")
    names = _peers(default, "toFQDNs")
    assert {"matchName": "api.example.com"} in names
    # 0: no block becomes names, and no DNS-proxy rule is needed.
    never = _cli(capture, "--flavor", "cilium", "--fqdn-min-names", "0")
    assert_valid_custom_resources(never)
    assert not _peers(never, "toFQDNs") and "rules" not in never
    assert {"cidr": "203.0.113.10/32"} in _peers(never, "toCIDRSet")
    # 2: only blocks with two names or more become names: 198.51.100.2/31 was answered for
    # b. and c.cdn.example.net; the others, one name each, stay addresses.
    two = _cli(capture, "--flavor", "cilium", "--fqdn-min-names", "2")
    assert_valid_custom_resources(two)
    assert _peers(two, "toFQDNs") == [
        {"matchName": "b.cdn.example.net"},
        {"matchName": "c.cdn.example.net"},
    ]
    assert {"cidr": "203.0.113.10/32"} in _peers(two, "toCIDRSet")
    # k8s cannot name hosts: the option leaves its output as it is (names in the annotation).
    k8s = _cli(capture)
    assert k8s == _cli(capture, "--fqdn-min-names", "0") and "netpolgen.io/fqdns" in k8s


def test_fqdn_pattern_min(tmp_path: Path) -> None:
    capture = str(write_capture(tmp_path / "capture.jsonl"))
    default = _peers(_cli(capture, "--flavor", "cilium"), "toFQDNs")
    assert {"matchPattern": "*.cdn.example.net"} in default  # three names under one parent
    four = _peers(_cli(capture, "--flavor", "cilium", "--fqdn-pattern-min", "4"), "toFQDNs")
    assert not any("matchPattern" in s for s in four)
    assert len([s for s in four if s["matchName"].endswith(".cdn.example.net")]) == 3


def test_fqdn_min_names_on_the_online_shop_hubble_sample() -> None:
    # The sample's DNS events name the payment API (one name for its address).
    args = [str(HUBBLE), "-i", str(INVENTORY), "--flavor", "cilium"]
    default = _cli(*args)
    assert {"matchName": "api.payments.example"} in _peers(default, "toFQDNs")
    for n in ("0", "2"):
        text = _cli(*args, "--fqdn-min-names", n)
        assert_valid_custom_resources(text)
        assert not _peers(text, "toFQDNs")
        assert "api.payments.example" in text  # still named, in the annotation
