"""The same cluster's traffic in every format, plus its inventory, gives the CSV path's policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from netpolgen.cluster.inventory import load_inventory
from netpolgen.generator import generate
from netpolgen.ingest import load_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.resolve import resolve_flows
from tests.cluster import fixtures as cluster


def policies(path: Path, inventory_path: Path) -> tuple[list[dict[str, Any]], IngestReport]:
    report = IngestReport()
    flows = load_flows(str(path), report=report)
    resolved = resolve_flows(flows, load_inventory(inventory_path), report=report)
    documents = list(yaml.safe_load_all(generate(resolved, report=report).to_yaml()))
    return [d for d in documents if d], report


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cluster")
    files = {"inventory": root / "inventory.json"}
    files["inventory"].write_text(json.dumps(cluster.inventory_document()))
    for name, render in cluster.RENDERERS.items():
        files[name] = root / f"flows-{name}.txt"  # no telling suffix: formats are sniffed
        files[name].write_text(render())
    return files


@pytest.fixture(scope="module")
def expected(rendered: dict[str, Path]) -> list[dict[str, Any]]:
    documents, report = policies(rendered["csv"], rendered["inventory"])
    assert report.formats[str(rendered["csv"])] == "csv"
    return documents


def test_csv_path_has_the_expected_policies(expected: list[dict[str, Any]]) -> None:
    names = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in expected}
    assert ("shop", "api-access-ingress") in names
    assert ("shop", "db-access-ingress") in names
    api = next(d for d in expected if d["metadata"]["name"] == "api-access-ingress")
    ports = sorted(p["port"] for rule in api["spec"]["ingress"] for p in rule.get("ports", []))
    assert ports == [8080, 9090]


@pytest.mark.parametrize("fmt", ["hubble", "aws-vpc", "gcp-vpc", "azure"])
def test_every_format_gives_the_csv_policies(
    fmt: str, rendered: dict[str, Path], expected: list[dict[str, Any]]
) -> None:
    documents, report = policies(rendered[fmt], rendered["inventory"])
    assert report.formats[str(rendered[fmt])] == fmt
    assert documents == expected


@pytest.mark.parametrize("fmt", ["csv", "hubble", "aws-vpc", "gcp-vpc", "azure"])
def test_cli_from_flows_with_inventory(
    fmt: str, rendered: dict[str, Path], expected: list[dict[str, Any]]
) -> None:
    from click.testing import CliRunner

    from netpolgen.cli import cli

    for args in (["-f", fmt], []):  # named and sniffed
        result = CliRunner().invoke(
            cli, ["from-flows", str(rendered[fmt]), *args, "-i", str(rendered["inventory"])]
        )
        assert result.exit_code == 0, result.output
        assert [d for d in yaml.safe_load_all(result.stdout) if d] == expected


def test_cli_inventory_error_is_a_message_not_a_traceback(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from netpolgen.cli import cli

    bad = tmp_path / "pods.json"
    bad.write_text("{oops")
    result = CliRunner().invoke(cli, ["from-flows", str(rendered["aws-vpc"]), "-i", str(bad)])
    assert result.exit_code == 1
    assert str(bad) in result.output and "Traceback" not in result.output


def test_cli_strict_on_a_malformed_record(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from netpolgen.cli import cli

    path = tmp_path / "vpc.log"
    path.write_text(cluster.render_aws() + "5 eni-1 too few fields\n")
    result = CliRunner().invoke(cli, ["from-flows", str(path), "--strict"])
    assert result.exit_code == 1
    assert f"{path}:22: expected 17 fields, found 5" in result.output


def test_csv_with_addresses_only_resolves_through_the_inventory(
    rendered: dict[str, Path], expected: list[dict[str, Any]], tmp_path: Path
) -> None:
    lines = ["time,src_ip,dst_ip,protocol,dst_port"]
    for time, src, dst, protocol, port, _ in cluster.connections():
        dst_ip = dst if isinstance(dst, str) else dst.ip
        lines.append(f"{time.isoformat()},{src.ip},{dst_ip},{protocol},{port}")
    path = tmp_path / "ip-only.csv"
    path.write_text("\n".join(lines) + "\n")
    documents, _ = policies(path, rendered["inventory"])
    assert documents == expected


def test_standard_input_and_gzip(rendered: dict[str, Path], expected: list[dict[str, Any]]) -> None:
    import gzip

    from click.testing import CliRunner

    from netpolgen.cli import cli

    data = gzip.compress(rendered["hubble"].read_bytes())
    result = CliRunner().invoke(
        cli, ["from-flows", "-", "-i", str(rendered["inventory"])], input=data
    )
    assert result.exit_code == 0, result.output
    assert [d for d in yaml.safe_load_all(result.stdout) if d] == expected
