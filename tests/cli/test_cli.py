from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from netpolgen.cli import cli
from tests.conftest import SAMPLE_FLOWS
from tests.k8s import assert_valid_policies

THREE_TIER = str(SAMPLE_FLOWS / "three-tier.csv")


def run(*args: str, input: str | bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), input=input)


def test_three_tier_ingress_only_is_the_classic_pair(golden) -> None:  # type: ignore[no-untyped-def]
    result = run("from-flows", THREE_TIER, "--no-egress")
    assert result.exit_code == 0, result.output
    documents = assert_valid_policies(result.stdout)
    assert [d["metadata"]["name"] for d in documents] == [
        "backend-access-ingress",
        "db-access-ingress",
    ]
    backend, db = (d["spec"] for d in documents)
    assert backend["podSelector"] == {"matchLabels": {"app": "myapp", "role": "backend"}}
    assert backend["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {"app": "myapp", "role": "web"}}}],
            "ports": [{"protocol": "TCP", "port": 8080}],
        }
    ]
    assert db["podSelector"] == {"matchLabels": {"app": "myapp", "role": "db"}}
    assert db["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {"app": "myapp", "role": "backend"}}}],
            "ports": [{"protocol": "TCP", "port": 5432}],
        }
    ]
    golden("three-tier/ingress-only.yaml", result.stdout)


def test_three_tier_all_policies_golden(golden) -> None:  # type: ignore[no-untyped-def]
    result = run("from-flows", THREE_TIER)
    assert result.exit_code == 0, result.output
    documents = assert_valid_policies(result.stdout)
    assert [d["metadata"]["name"] for d in documents] == [
        "backend-access-egress",
        "backend-access-ingress",
        "db-access-ingress",
        "web-access-egress",
    ]
    golden("three-tier/all.yaml", result.stdout)


def test_summary_goes_to_stderr_not_stdout() -> None:
    result = run("from-flows", THREE_TIER)
    assert "records read" in result.stderr
    assert "records read" not in result.stdout
    assert "11 records read from 1 file(s): 6 used, 0 skipped, 5 filtered" in result.stderr
    assert "1 denied verdict" in result.stderr and "4 reply traffic" in result.stderr


def test_quiet_prints_nothing_on_stderr() -> None:
    result = run("from-flows", THREE_TIER, "-q")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_output_directory_gets_one_file_per_policy(tmp_path: Path) -> None:
    out = tmp_path / "policies"
    result = run("from-flows", THREE_TIER, "-o", str(out))
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))
    assert files == [
        "default/backend-access-egress.yaml",
        "default/backend-access-ingress.yaml",
        "default/db-access-ingress.yaml",
        "default/kustomization.yaml",
        "default/web-access-egress.yaml",
        "kustomization.yaml",
    ]
    files = [f for f in files if not f.endswith("kustomization.yaml")]
    stream = run("from-flows", THREE_TIER, "-q").stdout
    joined = "".join("---\n" + (out / f).read_text() for f in files)
    assert joined == stream
    assert not [p for p in tmp_path.iterdir() if p.name != "policies"], "no staging left behind"


def test_existing_output_directory_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "policies"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run("from-flows", THREE_TIER, "-o", str(out))
    assert result.exit_code == 1
    assert "not empty" in result.output and "--force" in result.output
    assert (out / "keep.txt").read_text() == "mine"
    forced = run("from-flows", THREE_TIER, "-o", str(out), "--force")
    assert forced.exit_code == 0
    assert not (out / "keep.txt").exists()
    assert (out / "default" / "db-access-ingress.yaml").exists()


def test_namespace_filter_and_min_count() -> None:
    result = run("from-flows", THREE_TIER, "-n", "other")
    assert result.exit_code == 1  # -n matching nothing is not a silent empty result (issue 15)
    assert result.stdout == ""
    result = run("from-flows", THREE_TIER, "--min-count", "10", "--no-egress", "-q")
    documents = list(yaml.safe_load_all(result.stdout))
    # web -> backend was seen 31 times in all, backend -> db 43 times: both stay.
    assert [d["metadata"]["name"] for d in documents] == [
        "backend-access-ingress",
        "db-access-ingress",
    ]
    result = run("from-flows", THREE_TIER, "--min-count", "40", "--no-egress", "-q")
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(result.stdout)] == [
        "db-access-ingress"
    ]


def test_include_denied_opens_the_denied_path() -> None:
    result = run("from-flows", THREE_TIER, "--no-egress", "--include-denied", "-q")
    db = [
        d for d in yaml.safe_load_all(result.stdout) if d["metadata"]["name"] == "db-access-ingress"
    ]
    peers = [
        p["podSelector"]["matchLabels"]["role"] for r in db[0]["spec"]["ingress"] for p in r["from"]
    ]
    assert sorted(peers) == ["backend", "web"]


def test_no_dns_option() -> None:
    with_dns = run("from-flows", THREE_TIER, "--no-ingress", "-q").stdout
    without = run("from-flows", THREE_TIER, "--no-ingress", "--no-allow-dns", "-q").stdout
    assert "kube-dns" in with_dns and "netpolgen.io/dns" in with_dns
    assert "kube-dns" not in without


def test_standard_input() -> None:
    text = Path(THREE_TIER).read_text()
    result = run("from-flows", "-", "--no-egress", "-q", input=text)
    assert result.exit_code == 0
    assert result.stdout == run("from-flows", THREE_TIER, "--no-egress", "-q").stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("src_ip,dst_ip\n10.0.0.1,10.0.0.2\n", "line 1"),
        ("src_ip,dst_ip\n10.0.0.1,10.0.0.2\n", "missing CSV columns: dst_port"),
        ("hello world\nthis is not a flow log\n", "matches no known flow format"),
    ],
)
def test_bad_input_is_a_clean_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(content)
    result = run("from-flows", str(path))
    assert result.exit_code == 1
    assert message in result.output.replace(f"{path}:1:", "line 1")
    assert str(path) in result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_missing_file_and_directory(tmp_path: Path) -> None:
    # A usage error (exit 2) in every command: tests/cli/test_vocabulary.py.
    result = run("from-flows", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2 and "no such file" in result.output
    result = run("from-flows", str(tmp_path))  # a directory: its files, and it has none
    assert result.exit_code == 1 and "directory holds no flow file" in result.output


def test_strict_makes_a_bad_row_an_error(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(
        "src_namespace,src_labels,dst_namespace,dst_labels,dst_port\n"
        "a,app=x,a,app=y,80\n"
        "a,app=x,a,app=y,70000\n"
    )
    lenient = run("from-flows", str(path))
    assert lenient.exit_code == 0
    assert f"{path}:3: skipped: dst_port is not an integer 0-65535" in lenient.stderr
    assert "1 skipped" in lenient.stderr
    strict = run("from-flows", str(path), "--strict")
    assert strict.exit_code == 1
    assert f"{path}:3: dst_port is not an integer 0-65535" in strict.output
    assert strict.stdout == ""


def test_usage_errors_exit_2() -> None:
    assert run("from-flows").exit_code == 2
    assert run("from-flows", THREE_TIER, "--min-count", "0").exit_code == 2
    assert run("from-flows", THREE_TIER, "-f", "nonsense").exit_code == 2
    assert run("no-such-command").exit_code == 2


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_every_command_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for command in cli.commands:
        assert f"netpolgen {command}" in readme, command
