"""The `update` command (netpolgen/cli/review.py), through click's CliRunner.

Encodes issue 20: update prints the semantic summary `netpolgen diff BEFORE AFTER` prints,
writes whole or not at all, and exits 1 with a message naming the file on bad input.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

import netpolgen
from netpolgen.cli import cli

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
NEW = """\
time,src_namespace,src_labels,dst_namespace,dst_labels,dst_port,protocol,verdict,count
2026-11-21T10:00:00Z,default,"app=myapp,role=web",default,"app=myapp,role=backend",9090,TCP,allowed,3
"""


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    policies = tmp_path / "policies"
    result = netpolgen.generate_from_files([SAMPLES / "three-tier.csv"])
    netpolgen.write_policy_dir(result.policies, policies)
    new = tmp_path / "new.csv"
    new.write_text(NEW)
    return policies, new


def test_update_summary_is_the_diff(tmp_path: Path) -> None:
    policies, new = _setup(tmp_path)
    runner = CliRunner()
    out = tmp_path / "out"
    updated = runner.invoke(cli, ["update", str(new), "--policies", str(policies), "-o", str(out)])
    assert updated.exit_code == 0, updated.output
    diff = runner.invoke(cli, ["diff", str(policies), str(out)])
    assert diff.exit_code == 1  # the sets differ: diff says so by its exit code, as diff(1) does
    assert updated.stdout == diff.stdout
    assert "9090" in updated.stdout
    assert "added: default/backend-access-ingress ingress" in updated.stderr


def test_update_in_place_then_nothing_changes(tmp_path: Path) -> None:
    policies, new = _setup(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["update", str(new), "--policies", str(policies)])
    assert first.exit_code == 0, first.output
    assert "port: 9090" in (policies / "default" / "backend-access-ingress.yaml").read_text()
    snapshot = {p: p.read_bytes() for p in policies.rglob("*") if p.is_file()}
    second = runner.invoke(cli, ["update", str(new), "--policies", str(policies)])
    assert second.exit_code == 0
    assert "no change" in second.stderr
    assert {p: p.read_bytes() for p in policies.rglob("*") if p.is_file()} == snapshot


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    policies, new = _setup(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(policies, copy)
    result = CliRunner().invoke(cli, ["update", str(new), "--policies", str(policies),
                                      "--dry-run"])  # fmt: skip
    assert result.exit_code == 0
    for file in copy.rglob("*.yaml"):
        assert file.read_bytes() == (policies / file.relative_to(copy)).read_bytes()


def test_bad_policy_file_exit_1_names_it(tmp_path: Path) -> None:
    policies, new = _setup(tmp_path)
    (policies / "default" / "bad.yaml").write_text("apiVersion: networking.k8s.io/v1\n"
                                                   "kind: NetworkPolicy\nspec: [\n")  # fmt: skip
    before = {p: p.read_bytes() for p in policies.rglob("*") if p.is_file()}
    result = CliRunner().invoke(cli, ["update", str(new), "--policies", str(policies)])
    assert result.exit_code == 1
    assert "bad.yaml" in result.stderr
    assert "Traceback" not in result.output
    assert {p: p.read_bytes() for p in policies.rglob("*") if p.is_file()} == before


def test_bad_duration_is_an_error(tmp_path: Path) -> None:
    policies, new = _setup(tmp_path)
    result = CliRunner().invoke(
        cli, ["update", str(new), "--policies", str(policies), "--prune-after", "soon"]
    )
    assert result.exit_code == 1
    assert "not a duration" in result.stderr


def test_in_place_update_keeps_the_directory_mode(tmp_path: Path) -> None:
    policies, new = _setup(tmp_path)
    policies.chmod(0o755)
    result = CliRunner().invoke(cli, ["update", str(new), "--policies", str(policies)])
    assert result.exit_code == 0, result.output
    assert policies.stat().st_mode & 0o777 == 0o755


def test_refuses_a_repository_root(tmp_path: Path) -> None:
    policies, new = _setup(tmp_path)
    (policies / ".git").mkdir()
    result = CliRunner().invoke(cli, ["update", str(new), "--policies", str(policies)])
    assert result.exit_code == 1
    assert "Git repository" in result.stderr
    assert (policies / ".git").is_dir()
