"""JUnit XML from verify and diff (``--junit FILE``), parsed back with xml.etree.

Encodes the layout CI tools read (the Ant/Jenkins junit.xsd): <testsuites> holding one
<testsuite name tests failures errors skipped>, <testcase classname name> children, and a
<failure message type> child for each failed case; counts agree with the cases.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

import netpolgen
from netpolgen.cli import cli

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
DENIED = """\
time,src_namespace,src_labels,dst_namespace,dst_labels,dst_port,protocol,verdict
2026-11-21T10:00:00Z,default,"app=myapp,role=web",default,"app=myapp,role=db",22,TCP,allowed
"""


def _check_structure(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(suite.get("tests", "-1")) == len(cases) == int(root.get("tests", "-1"))
    assert int(suite.get("failures", "-1")) == len(failed) == int(root.get("failures", "-1"))
    assert suite.get("errors") == "0" and suite.get("skipped") == "0"
    for case in cases:
        assert case.get("classname") and case.get("name")
    for case in failed:
        failure = case.find("failure")
        assert failure is not None and failure.get("message") and failure.text
    return suite


def _policies(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    netpolgen.write_policy_dir(
        netpolgen.generate_from_files([SAMPLES / "three-tier.csv"]).policies, directory
    )
    return directory


def test_verify_junit_one_case_per_edge_and_a_failure_per_denied_one(tmp_path: Path) -> None:
    policies = _policies(tmp_path)
    denied = tmp_path / "denied.csv"
    denied.write_text(DENIED)
    junit = tmp_path / "reports" / "verify.xml"
    result = CliRunner().invoke(
        cli,
        [
            "verify",
            "--flows",
            str(SAMPLES / "three-tier.csv"),
            str(denied),
            "--policies",
            str(policies),
            "--junit",
            str(junit),
            "-q",
        ],
    )
    assert result.exit_code == 3
    suite = _check_structure(junit)
    report = netpolgen.verify_files([SAMPLES / "three-tier.csv", denied], policies)
    cases = suite.findall("testcase")
    assert len(cases) == len(report.edges)
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1
    assert "TCP/22" in failed[0].get("name", "")
    text = failed[0].findtext("failure") or ""
    assert "default/db-access-ingress" in text and "default/web-access-egress" in text


def test_verify_junit_passes_when_all_allowed(tmp_path: Path) -> None:
    policies = _policies(tmp_path)
    junit = tmp_path / "verify.xml"
    result = CliRunner().invoke(
        cli,
        [
            "verify",
            "--flows",
            str(SAMPLES / "three-tier.csv"),
            "--policies",
            str(policies),
            "--junit",
            str(junit),
        ],
    )
    assert result.exit_code == 0
    suite = _check_structure(junit)
    assert suite.get("failures") == "0" and int(suite.get("tests", "0")) > 0


def test_diff_junit(tmp_path: Path) -> None:
    policies = _policies(tmp_path)
    other = tmp_path / "other"
    kept = [p for p in netpolgen.load_policies(policies) if p.name != "db-access-ingress"]
    netpolgen.write_policy_dir(kept, other)
    same = tmp_path / "same.xml"
    assert (
        CliRunner()
        .invoke(cli, ["diff", str(policies), str(policies), "--junit", str(same)])
        .exit_code
        == 0
    )
    suite = _check_structure(same)
    assert suite.get("failures") == "0" and suite.get("tests") == "1"
    changed = tmp_path / "changed.xml"
    assert (
        CliRunner()
        .invoke(cli, ["diff", str(policies), str(other), "--junit", str(changed)])
        .exit_code
        == 1  # the sets differ: diff exits 1, as diff(1) and kubectl diff do
    )
    suite = _check_structure(changed)
    names = {c.get("name"): c for c in suite.findall("testcase")}
    assert names["default/db-access-ingress"].find("failure") is not None
    diff = netpolgen.diff_files(policies, other)
    connection_cases = [
        c for c in suite.findall("testcase") if c.get("classname") == "diff.connections"
    ]
    assert len(connection_cases) == len(diff.changes)
