"""JUnit XML for CI: ``verify`` and ``diff`` results as test reports (``--junit FILE``).

CI systems (GitHub Actions test reporters, GitLab's ``artifacts:reports:junit``, Jenkins) show
JUnit XML as a list of test cases with failures. The layout follows the schema those tools read
(the Ant/Jenkins ``junit.xsd``): a ``<testsuites>`` root holding one ``<testsuite name tests
failures errors skipped>``, with one ``<testcase classname name>`` per check and a
``<failure message type>`` child, whose text gives the details, for each failed one.

* ``verify``: one test case per checked edge (source, destination, protocol and port, the unit
  ``verify`` replays); an edge the policies deny is a failure naming the side that blocks it and
  the isolating policies. With no checked edge at all there is one case, passing.
* ``diff``: one test case per policy added, removed or changed (failures: a reviewer must look
  at each) and one per connection range whose verdict differs; when the sets behave the same,
  one passing case says so.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from netpolgen.check.diff import PolicyDiff
from netpolgen.check.edges import describe_endpoint
from netpolgen.check.report import VerificationReport
from netpolgen.errors import OutputError
from netpolgen.policy.write import write_text_file

__all__ = ["diff_junit", "verify_junit", "write_junit"]


def _suite(name: str, cases: list[ET.Element]) -> str:
    root = ET.Element("testsuites", name="netpolgen")
    failures = sum(1 for c in cases if c.find("failure") is not None)
    suite = ET.SubElement(
        root, "testsuite", name=name, tests=str(len(cases)), failures=str(failures),
        errors="0", skipped="0",
    )  # fmt: skip
    suite.extend(cases)
    root.set("tests", str(len(cases)))
    root.set("failures", str(failures))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _case(classname: str, name: str, failure: str | None = None, details: str = "") -> ET.Element:
    case = ET.Element("testcase", classname=classname, name=name)
    if failure is not None:
        element = ET.SubElement(case, "failure", message=failure, type="netpolgen")
        element.text = details or failure
    return case


def _isolating(row: pd.Series, direction: str) -> str:
    value = row.get(f"{direction}_policies")
    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return ""
    return ", ".join(value) if isinstance(value, list | tuple) else str(value)


def verify_junit(report: VerificationReport) -> str:
    """The report as JUnit XML: one test case per checked edge, failures for denied ones."""
    cases = []
    edges = report.edges
    isolation: dict[tuple[str, str], str] = {}
    if not report.isolation.empty and {"endpoint", "direction", "policies"} <= set(
        report.isolation.columns
    ):
        for row in report.isolation.astype(object).to_dict(orient="records"):
            isolation[(str(row["endpoint"]), str(row["direction"]))] = str(row["policies"])
    for row in edges.astype(object).to_dict(orient="records"):
        src = describe_endpoint(row["src_namespace"], row["src_labels"], row["src_ip"])
        dst = describe_endpoint(row["dst_namespace"], row["dst_labels"], row["dst_ip"])
        port = "" if pd.isna(row["dst_port"]) else f"/{int(row['dst_port'])}"
        name = f"{src} -> {dst} {row['protocol']}{port}"
        classname = (
            f"verify.{row['dst_namespace'] if not pd.isna(row['dst_namespace']) else 'external'}"
        )
        if bool(row["allowed"]):
            cases.append(_case(classname, name))
            continue
        sides = [d for d in ("egress", "ingress") if not bool(row[f"{d}_allowed"])]
        blocked = "+".join(sides)
        details = [f"{int(row['flows'])} observed flow(s) denied by {blocked}"]
        for side, endpoint in (("egress", src), ("ingress", dst)):
            if side in sides and (endpoint, side) in isolation:
                details.append(f"{side} of {endpoint} isolated by {isolation[(endpoint, side)]}")
        cases.append(_case(classname, name, f"denied by {blocked}", "\n".join(details)))
    if not cases:
        cases.append(_case("verify", "no observed flow to check"))
    return _suite("netpolgen verify", cases)


def diff_junit(diff: PolicyDiff) -> str:
    """The diff as JUnit XML: a failure per changed policy and per differing connection range."""
    cases = []
    for what, names in (
        ("added", diff.policies_added),
        ("removed", diff.policies_removed),
        ("changed", diff.policies_changed),
    ):
        for name in names:
            cases.append(_case("diff.policies", name, f"policy {what}"))
    for row in diff.changes.astype(object).to_dict(orient="records"):
        src = _side(row, "src")
        dst = _side(row, "dst")
        low, high = int(row["port_from"]), int(row["port_to"])
        ports = str(low) if low == high else f"{low}-{high}"
        name = f"{src} -> {dst} {row['protocol']}/{ports}"
        allows = "only NEW allows it" if row["change"] == "added" else "only OLD allows it"
        cases.append(_case("diff.connections", name, f"connection {row['change']}", allows))
    if not cases:
        cases.append(_case("diff", "both policy sets allow the same connections"))
    return _suite("netpolgen diff", cases)


def _side(row: Mapping[Any, Any], side: str) -> str:
    addresses = row.get(f"{side}_addresses")
    if addresses is not None and not pd.isna(addresses):
        return str(addresses)
    return f"{row[f'{side}_namespace']}/{row[f'{side}_labels'] or '<no labels>'}"


def write_junit(xml: str, path: str | os.PathLike[str]) -> Path:
    """Write ``xml`` to ``path`` whole or not at all (a temporary file beside it, renamed)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot write JUnit XML: {error.strerror}", source=str(target)) from None
    return write_text_file(xml, target, what="JUnit XML")
