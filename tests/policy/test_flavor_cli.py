"""``netpolgen from-flows --flavor``: a thin switch over ``netpolgen.flavor_yaml``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from netpolgen import generate, load_flows, load_policies
from netpolgen.cli import cli
from netpolgen.policy.flavors import flavor_yaml
from tests.conftest import SAMPLE_FLOWS

THREE_TIER = str(SAMPLE_FLOWS / "three-tier.csv")


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["from-flows", THREE_TIER, "-q", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_default_flavour_is_k8s_and_unchanged() -> None:
    assert _run() == _run("--flavor", "k8s")
    assert _run().count("kind: NetworkPolicy\n") > 0


def test_calico_staged_and_cilium_on_stdout_are_the_library_output() -> None:
    policies = generate(load_flows(THREE_TIER)).policies
    for flavor in ("calico-staged", "cilium"):
        assert _run("--flavor", flavor) == flavor_yaml(policies, flavor)


def test_staged_directory_output_reads_back(tmp_path: Path) -> None:
    _run("--flavor", "calico-staged", "-o", str(tmp_path / "out"))
    files = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.yaml"))
    assert files and all(p.parent.name == "default" for p in files)
    texts = [(tmp_path / "out" / p).read_text() for p in files]
    assert all("kind: StagedKubernetesNetworkPolicy" in text for text in texts)
    assert len(load_policies(tmp_path / "out")) == len(files)


def test_unknown_flavour_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["from-flows", THREE_TIER, "--flavor", "calico"])
    assert result.exit_code == 2
    assert "calico" in result.output and "Traceback" not in result.output
