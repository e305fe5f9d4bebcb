"""``netpolgen verify``, ``diff``, ``migrate`` and ``from-flows --default-deny`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from netpolgen.cli import cli
from tests.conftest import SAMPLE_FLOWS
from tests.flowkit import inventory, namespace, pod
from tests.k8s import assert_valid_policies

THREE_TIER = str(SAMPLE_FLOWS / "three-tier.csv")


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def generated(tmp_path: Path, *options: str) -> Path:
    out = tmp_path / "policies"
    result = run("from-flows", THREE_TIER, "-o", str(out), "-q", *options)
    assert result.exit_code == 0, result.output
    return out


def test_verify_generated_policies_exit_0(tmp_path: Path) -> None:
    policies = generated(tmp_path)
    result = run("verify", "--flows", THREE_TIER, "--policies", str(policies))
    assert result.exit_code == 0, result.output
    assert "denied:  0 flows, 0 edges" in result.stdout
    assert "records read" in result.stderr and "records read" not in result.stdout


def test_verify_denied_flows_exit_3_and_name_the_policy(tmp_path: Path) -> None:
    policies = generated(tmp_path, "--no-egress")
    # Drop backend's ingress policy's peer: web -> backend is then denied.
    path = policies / "default" / "backend-access-ingress.yaml"
    document = yaml.safe_load(path.read_text())
    document["spec"]["ingress"] = []
    path.write_text(yaml.safe_dump(document))
    result = run("verify", "--flows", THREE_TIER, "--policies", str(policies), "--format", "json")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False
    (denied,) = data["denied"]
    assert denied["dst"] == "default/app=myapp,role=backend"  # the workload, not one revision
    assert denied["ingress_policies"] == "default/backend-access-ingress"
    assert denied["dst_port"] == 8080


def test_verify_markdown_and_several_flow_files(tmp_path: Path) -> None:
    policies = generated(tmp_path)
    result = run("verify", "--flows", THREE_TIER, THREE_TIER, "--policies", str(policies),
                 "--format", "markdown", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# netpolgen verify")
    assert result.stderr == ""


def test_verify_bad_policy_file_is_exit_1_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: NetworkPolicy\nmetadata: {name: x}\nspec: {ingress: [{ports: 3}]}\n")
    result = run("verify", "--flows", THREE_TIER, "--policies", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:1: document 0 (x): ports must be a list" in result.output


def test_verify_needs_flows(tmp_path: Path) -> None:
    result = run("verify", "--policies", str(generated(tmp_path)))
    assert result.exit_code == 2


def test_from_flows_default_deny(tmp_path: Path) -> None:
    result = run("from-flows", THREE_TIER, "--default-deny", "-q")
    assert result.exit_code == 0, result.output
    documents = assert_valid_policies(result.stdout)
    names = [d["metadata"]["name"] for d in documents]
    assert "default-deny-ingress" in names and "default-deny-egress" in names
    ingress_only = run("from-flows", THREE_TIER, "--default-deny", "--no-egress", "-q")
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(ingress_only.stdout)]
    assert "default-deny-egress" not in names and "default-deny-ingress" in names
    # The set with default-deny still allows every observed flow.
    out = generated(tmp_path, "--default-deny")
    assert run("verify", "--flows", THREE_TIER, "--policies", str(out)).exit_code == 0


def test_diff_command(tmp_path: Path) -> None:
    both = generated(tmp_path)
    ingress_only = tmp_path / "ingress"
    assert run("from-flows", THREE_TIER, "--no-egress", "-o", str(ingress_only)).exit_code == 0
    result = run("diff", str(both), str(ingress_only))
    assert result.exit_code == 1, result.output  # the sets differ: diff(1)'s and kubectl diff's 1
    assert "Policies removed:" in result.stdout
    assert "default/backend-access-egress" in result.stdout
    same = run("diff", str(both), str(both), "--format", "json")
    assert json.loads(same.stdout)["same"] is True


def test_migrate_command(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = run("migrate", THREE_TIER, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 2 stages for 1 namespace to" in result.stderr
    assert (out / "README.md").exists()
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["01-default-ingress", "02-default-egress"]
    applied = tmp_path / "applied"
    applied.mkdir()
    for folder in folders:
        for policy in (out / folder).glob("*-*.yaml"):  # not the stage's kustomization.yaml
            (applied / f"{folder}-{policy.name}").write_text(policy.read_text())
        verdict = run("verify", "--flows", THREE_TIER, "--policies", str(applied), "-q")
        assert verdict.exit_code == 0, verdict.stdout


def test_migrate_with_existing_policies(tmp_path: Path) -> None:
    existing = generated(tmp_path, "--no-egress")
    out = tmp_path / "plan"
    result = run("migrate", THREE_TIER, "--policies", str(existing), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    # Issue 18: the set from-flows just wrote is recognised, not re-emitted as *-netpolgen.
    assert "2 generated policies are in force already, identical" in readme
    assert "-netpolgen" not in readme and "exists already" not in readme
    # A policy of the same name that allows something else is kept apart, as before.
    changed = existing / "default" / "db-access-ingress.yaml"
    changed.write_text(changed.read_text().replace("5432", "5433"))
    out = tmp_path / "plan2"
    result = run("migrate", THREE_TIER, "--policies", str(existing), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    assert "default/db-access-ingress exists already; the plan names it" in readme
    assert "1 generated policy is in force already" in readme


def test_verify_icmp_ipv6_and_outside_sources(tmp_path: Path) -> None:
    flows = tmp_path / "flows.csv"
    flows.write_text(
        "src_namespace,src_labels,src_ip,dst_namespace,dst_labels,dst_ip,dst_port,protocol,count\n"
        "shop,app=fe,,shop,app=web,,80,TCP,3\n"
        "shop,app=fe,,shop,app=web,,,ICMP,1\n"
        "shop,app=web,,,,2001:db8::5,443,TCP,2\n"
        ",,198.51.100.9,shop,app=web,,80,TCP,1\n"
    )
    policy = tmp_path / "web.yaml"
    policy.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: web, namespace: shop}\n"
        "spec:\n  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Ingress, Egress]\n"
        "  ingress: [{from: [{podSelector: {matchLabels: {app: fe}}}], ports: [{port: 80}]}]\n"
        "  egress: [{to: [{ipBlock: {cidr: '2001:db8::/32'}}]}]\n"
    )
    result = run("verify", "--flows", str(flows), "--policies", str(policy), "--format", "json")
    assert result.exit_code == 3
    denied = {(d["src"], d["protocol"], d["dst_port"]) for d in json.loads(result.stdout)["denied"]}
    assert denied == {("198.51.100.9", "TCP", 80), ("shop/app=fe", "ICMP", None)}


def _inventory_and_flows(tmp_path: Path) -> tuple[Path, Path]:
    pods = []
    for name, labels, ip, ports in (
        ("web-1", {"app": "web"}, "10.244.0.5", [{"name": "http", "containerPort": 8080}]),
        ("fe-1", {"app": "fe"}, "10.244.0.6", []),
    ):
        item = pod("shop", name, labels, ip, ports)
        item["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
        item["status"]["startTime"] = "2026-01-01T00:00:00Z"
        item["status"]["phase"] = "Running"
        pods.append(item)
    inventory_file = tmp_path / "inventory.json"
    inventory_file.write_text(json.dumps(inventory(namespace("shop", {"env": "prod"}), *pods)))
    flows = tmp_path / "flows.csv"
    flows.write_text(
        "time,src_ip,dst_ip,dst_port,protocol\n"
        "2026-01-02T00:00:00Z,10.244.0.6,10.244.0.5,8080,TCP\n"
        "2026-01-02T00:00:01Z,10.244.0.6,10.244.0.5,9090,TCP\n"
    )
    return inventory_file, flows


def test_verify_resolves_addresses_with_the_inventory(tmp_path: Path) -> None:
    inventory_file, flows = _inventory_and_flows(tmp_path)
    policy = tmp_path / "web.yaml"
    policy.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: web, namespace: shop}\n"
        "spec:\n  podSelector: {matchLabels: {app: web}}\n"
        "  ingress: [{from: [{namespaceSelector: {matchLabels: {env: prod}},"
        " podSelector: {matchLabels: {app: fe}}}], ports: [{port: http}]}]\n"
    )
    args = ["verify", "--flows", str(flows), "--policies", str(policy), "--format", "json"]
    result = run(*args, "-i", str(inventory_file))
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["counts"]["flows_allowed"] == 1  # 8080 is web-1's "http"
    assert [(d["src"], d["dst"], d["dst_port"]) for d in data["denied"]] == [
        ("shop/app=fe", "shop/app=web", 9090)
    ]
    # Without the inventory the addresses are outside peers, and web is not even seen.
    assert run(*args).exit_code == 0


def test_migrate_with_an_inventory(tmp_path: Path) -> None:
    inventory_file, flows = _inventory_and_flows(tmp_path)
    out = tmp_path / "plan"
    result = run("migrate", str(flows), "-i", str(inventory_file), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "01-shop-ingress",
        "02-shop-egress",
    ]
    applied = tmp_path / "applied"
    applied.mkdir()
    for policy in out.glob("*/*.yaml"):
        (applied / f"{policy.parent.name}-{policy.name}").write_text(policy.read_text())
    args = ["verify", "--flows", str(flows), "--policies", str(applied), "-q"]
    verdict = run(*args, "-i", str(inventory_file))
    assert verdict.exit_code == 0, verdict.stdout


def test_from_flows_with_inventory_then_verify(tmp_path: Path) -> None:
    inventory_file, flows = _inventory_and_flows(tmp_path)
    out = tmp_path / "policies"
    made = run("from-flows", str(flows), "-i", str(inventory_file), "-o", str(out), "-q")
    assert made.exit_code == 0, made.output
    args = ["verify", "--flows", str(flows), "--policies", str(out), "-i", str(inventory_file)]
    result = run(*args, "--format", "json", "-q")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["counts"]["flows_checked"] == 2
