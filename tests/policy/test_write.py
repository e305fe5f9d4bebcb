"""Writing policies: no name becomes a path outside the output; the output is kubectl-ready.

kubectl-ready (issue 18): a kustomization.yaml in every directory (`kubectl apply -k DIR`) and
the modes any other tool would give (0755 directories, 0644 files under umask 022).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from netpolgen.errors import OutputError
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.render import render_yaml
from netpolgen.policy.write import (
    KUSTOMIZATION,
    kustomizations,
    policy_path,
    write_policy_dir,
    write_policy_file,
    write_tree,
)
from netpolgen.selectors import LabelSelector

HOSTILE = ["../x", "/etc", "a/b", "..", "Shop", "a" * 300, "x\ny", "", " x", "x.", "-x", "ä"]


def policy(name: str = "web-access-ingress", namespace: str = "shop") -> Policy:
    return Policy(
        name=name, namespace=namespace, pod_selector=LabelSelector.of({"app": "web"}),
        policy_types=("Ingress",),
    )  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_namespaces_and_names_are_refused(value: str) -> None:
    with pytest.raises(OutputError):
        policy_path(policy(namespace=value))
    with pytest.raises(OutputError):
        policy_path(policy(name=value))


@pytest.mark.parametrize("value", HOSTILE)
def test_nothing_is_written_for_a_hostile_policy(tmp_path: Path, value: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(OutputError):
        write_policy_dir([policy(), policy(namespace=value)], out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("relative", ["../escape.yaml", "/abs.yaml", "a/../../b.yaml"])
def test_write_tree_refuses_paths_outside(tmp_path: Path, relative: str) -> None:
    with pytest.raises(OutputError, match="outside the output directory"):
        write_tree({Path(relative): "x"}, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_valid_names_are_written_where_expected(tmp_path: Path) -> None:
    written = write_policy_dir([policy(), policy("db.v2-access-ingress", "a" * 63)], tmp_path / "o")
    assert sorted(map(str, written)) == [f"{'a' * 63}/db.v2-access-ingress.yaml",
                                         "shop/web-access-ingress.yaml"]  # fmt: skip


# --- kubectl-ready output (issue 18) -----------------------------------------------------------


def test_every_directory_gets_a_kustomization_listing_its_files(tmp_path: Path) -> None:
    # kustomize: `resources` lists files and directories that hold a kustomization of their own
    # (https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/resource/).
    out = tmp_path / "o"
    written = write_policy_dir([policy(), policy("db-access-ingress"), policy(namespace="x")], out)
    assert KUSTOMIZATION not in {p.name for p in written}  # only policies are counted
    top = yaml.safe_load((out / KUSTOMIZATION).read_text())
    assert top == {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                   "resources": ["shop", "x"]}  # fmt: skip
    shop = yaml.safe_load((out / "shop" / KUSTOMIZATION).read_text())
    assert shop["resources"] == ["db-access-ingress.yaml", "web-access-ingress.yaml"]
    assert yaml.safe_load((out / "x" / KUSTOMIZATION).read_text())["resources"] == [
        "web-access-ingress.yaml"
    ]
    # load_policies (verify, diff, migrate --policies) reads the directory without a warning.
    notes: list[str] = []
    assert len(load_policies(out, notes=notes)) == 3 and notes == []


def test_kustomizations_only_where_asked() -> None:
    files = {Path("01-a/p.yaml"): "", Path("01-a/rollback.txt"): "", Path("README.md"): ""}
    assert list(kustomizations(files, directories=[Path("01-a")])) == [
        Path("01-a/" + KUSTOMIZATION)
    ]
    assert set(kustomizations(files)) == {Path(KUSTOMIZATION), Path("01-a/" + KUSTOMIZATION)}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_modes_follow_the_umask(tmp_path: Path, umask: int) -> None:
    # Directories 0777 and files 0666 less the umask (0755/0644 under 022), as mkdir and open
    # would make them; tempfile's 0700 staging directory must not leak into the output.
    previous = os.umask(umask)
    try:
        write_policy_dir([policy()], tmp_path / "d")
        write_policy_file([policy()], tmp_path / "f.yaml")
    finally:
        os.umask(previous)
    for directory in (tmp_path / "d", tmp_path / "d" / "shop"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o777 & ~umask
    for file in (tmp_path / "d" / KUSTOMIZATION, tmp_path / "d/shop/web-access-ingress.yaml",
                 tmp_path / "f.yaml"):  # fmt: skip
        assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask


def test_write_policy_file_is_the_yaml_stream_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "all.yaml"
    write_policy_file([policy(), policy(namespace="x")], target)
    assert target.read_text() == render_yaml([policy(), policy(namespace="x")])
    with pytest.raises(OutputError, match="exists"):
        write_policy_file([policy()], target)
    write_policy_file([policy()], target, force=True)
    assert target.read_text() == render_yaml([policy()])
    with pytest.raises(OutputError, match="is a directory"):
        write_policy_file([policy()], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.yaml"]  # no staging left


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_kustomize_builds_the_written_directory(tmp_path: Path) -> None:
    # `kubectl apply -k DIR` builds with kustomize first; `kubectl kustomize` is that build,
    # offline. It must yield exactly the policies written, each once.
    out = tmp_path / "o"
    policies = [policy(), policy("db-access-ingress"), policy(namespace="x")]
    write_policy_dir(policies, out)
    built = subprocess.run(["kubectl", "kustomize", str(out)], capture_output=True, text=True,
                           check=True, timeout=60).stdout  # fmt: skip
    names = sorted(
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in yaml.safe_load_all(built)
    )
    assert names == sorted((p.namespace, p.name) for p in policies)


# --- many files: written on threads (write._write_files) ---------------------------------------


def test_many_files_are_all_written_whole(tmp_path: Path) -> None:
    """Hundreds of files over uneven directories (the threaded path): every one there, with
    its own text, and nothing else."""
    files = {
        Path(f"ns{i % 7 if i % 3 else 0}") / f"p{i}.yaml": f"name: p{i}\n" + "x" * (i * 37)
        for i in range(150)
    }
    written = write_tree(files, tmp_path / "out")
    assert written == list(files)
    on_disk = {
        p.relative_to(tmp_path / "out"): p.read_text() for p in (tmp_path / "out").rglob("*.yaml")
    }
    assert on_disk == files


def test_a_file_that_fails_among_many_leaves_nothing(tmp_path: Path) -> None:
    """One of many files cannot be written (its path is a directory, as another file's parent):
    an OutputError, no output and no staging copy left, whatever the threads were doing."""
    files = {Path(f"ns{i % 5}") / f"p{i}.yaml": "x" for i in range(100)}
    files[Path("ns3/p8.yaml/inner.yaml")] = "y"  # makes ns3/p8.yaml a directory
    with pytest.raises(OutputError, match="cannot write output"):
        write_tree(files, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
