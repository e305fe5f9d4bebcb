"""update --flavor: Calico staged policy directories are updated in place; cilium is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import netpolgen
from netpolgen.check.update import update_policies, write_update
from netpolgen.cli import cli
from netpolgen.errors import OutputError
from netpolgen.policy.flavors import write_flavor_dir
from tests.check.test_update import BACKEND, SAMPLES, _new_flows
from tests.crd import assert_valid_custom_resources
from tests.flowkit import flows


def _staged(tmp_path: Path) -> Path:
    """The three-tier sample's policies as `from-flows --flavor calico-staged -o DIR` writes."""
    result = netpolgen.generate_from_files([SAMPLES / "three-tier.csv"])
    directory = tmp_path / "staged"
    write_flavor_dir(result.policies, directory, "calico-staged")
    return directory


def _kinds(directory: Path) -> set[str]:
    return {
        d["kind"] for p in directory.rglob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d
    }


def test_staged_policies_get_the_missing_rule_in_place(tmp_path: Path) -> None:
    directory = _staged(tmp_path)
    result = update_policies(_new_flows(), directory, flavor="calico-staged")
    assert sorted(map(str, result.changed_files)) == [
        "default/backend-access-ingress.yaml",
        "default/web-access-egress.yaml",
    ]
    write_update(result, tmp_path / "out")
    assert _kinds(tmp_path / "out") == {"StagedKubernetesNetworkPolicy"}
    for path in (tmp_path / "out").rglob("*.yaml"):
        assert_valid_custom_resources(path.read_text())
    # Read back as their enforced form, the updated policies allow the new traffic.
    loaded = netpolgen.load_policies(tmp_path / "out")
    assert netpolgen.verify(_new_flows(), loaded, over_permissive=False).ok


def test_a_new_workload_gets_a_staged_policy(tmp_path: Path) -> None:
    directory = _staged(tmp_path)
    cache = "default/app=myapp,role=cache"
    new = flows({"time": "2026-11-21T10:00:00Z", "src": BACKEND, "dst": cache, "dst_port": 6379})
    result = update_policies(new, directory, flavor="calico-staged", isolate_new=True)
    added = Path("default/cache-access-ingress.yaml")
    assert added in result.changed_files
    (document,) = yaml.safe_load_all(result.files[added])
    assert document["kind"] == "StagedKubernetesNetworkPolicy"
    assert document["spec"]["stagedAction"] == "Set"


def test_without_the_flavour_staged_files_are_left_alone(tmp_path: Path) -> None:
    # The k8s flavour edits NetworkPolicies only (as before): the staged documents are others.
    directory = _staged(tmp_path)
    result = update_policies(_new_flows(), directory)
    assert result.before == [] and result.changed_files == []
    originals = {p.relative_to(directory): p.read_text() for p in directory.rglob("*.yaml")}
    assert {k: v for k, v in result.files.items() if k in originals} == originals


def test_cilium_is_a_clear_error(tmp_path: Path) -> None:
    directory = _staged(tmp_path)
    with pytest.raises(OutputError, match="edits k8s and calico-staged"):
        update_policies(_new_flows(), directory, flavor="cilium")
    flows_file = SAMPLES / "three-tier.csv"
    args = ["update", str(flows_file), "--policies", str(directory), "--flavor", "cilium"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "update edits k8s and calico-staged policy directories" in result.output


def test_cli_flavor_calico_staged(tmp_path: Path) -> None:
    directory = _staged(tmp_path)
    args = ["update", str(SAMPLES / "three-tier.csv"), "--policies", str(directory),
            "--flavor", "calico-staged", "-o", str(tmp_path / "out"), "-q"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert _kinds(tmp_path / "out") == {"StagedKubernetesNetworkPolicy"}
