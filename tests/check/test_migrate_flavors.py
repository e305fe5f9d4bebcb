"""``netpolgen migrate --flavor``: the stages in Calico staged or Cilium form."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from netpolgen import load_policies
from netpolgen.cli import cli
from netpolgen.policy.render import sorted_policies
from tests.conftest import SAMPLE_FLOWS
from tests.crd import assert_valid_custom_resources
from tests.k8s import assert_valid_policies

THREE_TIER = str(SAMPLE_FLOWS / "three-tier.csv")


def _migrate(out: Path, *args: str) -> dict[str, str]:
    result = CliRunner().invoke(cli, ["migrate", THREE_TIER, "-o", str(out), "-q", *args])
    assert result.exit_code == 0, result.output
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


def test_k8s_flavour_is_the_plain_plan(tmp_path: Path) -> None:
    assert _migrate(tmp_path / "a") == _migrate(tmp_path / "b", "--flavor", "k8s")


def test_calico_staged_writes_each_stage_staged_then_enforced(tmp_path: Path) -> None:
    plain = _migrate(tmp_path / "plain")
    files = _migrate(tmp_path / "staged", "--flavor", "calico-staged")
    stages = sorted({p.split("/")[0] for p in plain if "/" in p})
    assert stages
    for stage in stages:
        yaml_names = sorted(
            Path(p).name for p in plain if p.startswith(stage + "/") and p.endswith(".yaml")
        )  # the stage's policies and its kustomization.yaml (kubectl apply -k)
        staged = sorted(Path(p).name for p in files if p.startswith(f"{stage}/1-staged/"))
        enforced = sorted(Path(p).name for p in files if p.startswith(f"{stage}/2-enforced/"))
        assert staged == enforced == yaml_names
        yaml_names.remove("kustomization.yaml")
        for name in yaml_names:
            assert files[f"{stage}/2-enforced/{name}"] == plain[f"{stage}/{name}"]
            assert_valid_custom_resources(files[f"{stage}/1-staged/{name}"])
            assert_valid_policies(files[f"{stage}/2-enforced/{name}"])
        # The staged folder reads back as exactly what the enforced one enforces.
        base = tmp_path / "staged" / stage
        assert sorted_policies(load_policies(base / "1-staged")) == sorted_policies(
            load_policies(base / "2-enforced")
        )
        rollback = files[f"{stage}/rollback.txt"].splitlines()
        assert rollback[0].startswith("kubectl delete networkpolicy ")
        assert rollback[-1].startswith("kubectl delete stagedkubernetesnetworkpolicy ")
    assert "1-staged/" in files["README.md"]


def test_cilium_stages_validate(tmp_path: Path) -> None:
    files = _migrate(tmp_path / "cilium", "--flavor", "cilium")
    manifests = [
        text for path, text in files.items()
        if path.endswith(".yaml") and not path.endswith("kustomization.yaml")
    ]  # fmt: skip
    assert all(
        f"{stage}/kustomization.yaml" in files
        for stage in {p.split("/")[0] for p in files if "/" in p}
    )
    assert manifests
    for text in manifests:
        assert_valid_custom_resources(text)
    assert all(
        line.startswith("kubectl delete ciliumnetworkpolicy ")
        for path, text in files.items() if path.endswith("rollback.txt")
        for line in text.splitlines()
    )  # fmt: skip
