"""Issue 18: what from-flows and migrate write is ready for kubectl: ``kubectl apply -k DIR``.

kustomize builds a directory from its kustomization.yaml; ``kubectl kustomize DIR`` is the build
``kubectl apply -k DIR`` does, offline (no cluster needed), so the tests run it when kubectl is
installed (https://kubectl.docs.kubernetes.io/references/kubectl/kustomize/).
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from netpolgen.cli import cli
from tests.conftest import SAMPLE_FLOWS

SHOP = str(SAMPLE_FLOWS / "online-shop.hubble.jsonl")
INVENTORY = str(SAMPLE_FLOWS / "online-shop.inventory.json")
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl")


def kustomize(directory: Path) -> list[dict[str, object]]:
    built = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True,
                           text=True, check=True, timeout=120).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(built) if d]


def names(documents: list[dict[str, object]]) -> list[tuple[str, str]]:
    return sorted((d["metadata"]["namespace"], d["metadata"]["name"]) for d in documents)  # type: ignore[index]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("kubectl")
    policies, plan = root / "policies", root / "plan"
    runner = CliRunner()
    stream = runner.invoke(cli, ["from-flows", SHOP, "-i", INVENTORY, "-q"]).stdout
    for args in (["from-flows", SHOP, "-i", INVENTORY, "-o", str(policies)],
                 ["migrate", SHOP, "-i", INVENTORY, "-o", str(plan)]):  # fmt: skip
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    return policies, plan, stream


def test_from_flows_says_how_to_apply(tmp_path: Path) -> None:
    out = tmp_path / "p"
    result = CliRunner().invoke(cli, ["from-flows", SHOP, "-i", INVENTORY, "-o", str(out)])
    assert f"(kubectl apply -k {out})" in result.stderr


def test_directories_are_world_readable(written: tuple[Path, Path, str]) -> None:
    # Under the usual umask 022 (the tests' own umask may differ: compare with it).
    for top in written[:2]:
        for path in [top, *top.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o055 == 0o055 if path.is_dir() else mode & 0o044 == 0o044, path


@needs_kubectl
def test_kubectl_kustomize_builds_exactly_the_policies(written: tuple[Path, Path, str]) -> None:
    policies, _, stream = written
    expected = [d for d in yaml.safe_load_all(stream) if d]
    assert names(kustomize(policies)) == names(expected)
    # One namespace on its own, too: each namespace folder has its kustomization.
    assert names(kustomize(policies / "shop")) == [n for n in names(expected) if n[0] == "shop"]


@needs_kubectl
def test_each_migrate_stage_is_a_kustomization(written: tuple[Path, Path, str]) -> None:
    _, plan, _ = written
    stages = sorted(p for p in plan.iterdir() if p.is_dir())
    assert stages and not (plan / "kustomization.yaml").exists()  # stages go one at a time
    readme = (plan / "README.md").read_text()
    for stage in stages:
        files = sorted(p.name for p in stage.glob("*.yaml") if p.name != "kustomization.yaml")
        built = kustomize(stage)
        assert len(built) == len(files)
        assert f"kubectl apply -k {stage.name}/" in readme
