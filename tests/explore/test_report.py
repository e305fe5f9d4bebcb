"""``netpolgen report``: the self-contained HTML review page.

Encodes issue 20: one file that opens without a network (scripts and styles inlined, the
vendored cytoscape.js with its licence), holding every workload and policy name, whose graph
draws (a screenshot is not blank), where clicking a workload shows its policies, and which
makes no network request. The browser tests run Debian's `chromium` headless and are skipped,
with the reason, when it is not installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from click.testing import CliRunner

import netpolgen
from netpolgen.cli import cli
from netpolgen.explore.report import build_report, render_report, report_files

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
HUBBLE = SAMPLES / "online-shop.hubble.jsonl"
INVENTORY = SAMPLES / "online-shop.inventory.json"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(cli, ["report", str(HUBBLE), "-i", str(INVENTORY), "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _data(text: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S
    )
    assert match is not None
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    # No external script, style, image or frame: everything is inline.
    assert not re.search(r"<(script|img|iframe|link)[^>]+(src|href)=", text)
    assert "Copyright (c) 2016-2026, The Cytoscape Consortium" in text  # the licence header
    assert "default-src 'none'" in text


def test_every_workload_and_policy_is_in_the_static_html(page: Path) -> None:
    text = page.read_text()
    data = _data(text)
    static = text.split('<script type="application/json"')[0]
    inventory = netpolgen.load_inventory(INVENTORY)
    flows = netpolgen.resolve_flows(netpolgen.load_flows(HUBBLE), inventory)
    result = netpolgen.generate(flows, inventory=inventory)
    assert {p["name"] for p in data["policies"]} == {
        f"{p.namespace}/{p.name}" for p in result.policies
    }
    for policy in result.policies:
        assert f"{policy.namespace}/{policy.name}" in static
    for workload in (
        "shop/frontend",
        "shop/cartservice",
        "shop/redis-cart",
        "kube-system/coredns",
        "monitoring/prometheus-k8s",
        "ingress-nginx/ingress-nginx-controller",
    ):
        assert f"<code>{workload}</code>" in static


def test_rule_evidence_adds_up() -> None:
    # Every generated policy has rules justified by observed flows (DNS rules may have none:
    # allowed observed or not), each with its first/last seen and at most five samples.
    inventory = netpolgen.load_inventory(INVENTORY)
    flows = netpolgen.resolve_flows(netpolgen.load_flows(HUBBLE), inventory)
    data = build_report(flows, inventory=inventory)
    for policy in data["policies"]:
        observed = [r for r in policy["rules"] if r["flows"]]
        assert observed, policy["name"]
        for rule in observed:
            assert rule["first"] <= rule["last"]
            assert 1 <= len(rule["samples"]) <= 5


def test_given_policies_denied_flows_are_reported(tmp_path: Path) -> None:
    inventory = netpolgen.load_inventory(INVENTORY)
    flows = netpolgen.resolve_flows(netpolgen.load_flows(HUBBLE), inventory)
    policies = [
        p
        for p in netpolgen.generate(flows, inventory=inventory).policies
        if p.name != "cartservice-access-ingress"
    ]
    policies += netpolgen.default_deny_policies(["shop"])
    data = build_report(flows, inventory=inventory, policies=policies)
    denied = data["verify"]["denied"]
    assert denied and all("cartservice" in row["dst"] for row in denied)
    assert "default-deny" in render_report(data)


def test_bad_flow_file_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("nothing,useful\n1,2\n")
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", str(bad), "-o", str(out)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert not out.exists()


# --- in a real browser --------------------------------------------------------------------------

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_chromium
def test_dom_after_scripts_holds_every_name_and_the_graph(page: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'data-graph="ready"' in dom  # the script ran to the end
    assert "<canvas" in dom  # cytoscape drew into its canvases
    data = _data(page.read_text())
    for workload in data["workloads"]:
        assert workload["id"] in dom
    for policy in data["policies"]:
        assert policy["name"] in dom


@needs_chromium
def test_clicking_a_workload_shows_its_policies(page: Path, tmp_path: Path) -> None:
    # #select=<workload> runs the click handler on load (report.js).
    dom = _chromium(
        tmp_path, "--dump-dom", page.as_uri() + "#select=" + quote("shop/frontend", safe="")
    ).stdout
    details = dom.split('<aside id="details">', 1)[1].split("</aside>", 1)[0]
    assert "<h3>shop/frontend</h3>" in details
    assert "shop/frontend-access-ingress" in details and "shop/frontend-access-egress" in details
    assert "shop/cartservice-access-ingress" not in details


@needs_chromium
def test_screenshot_is_not_blank(page: Path, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image", reason="Pillow (with matplotlib) reads PNG")
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, "--window-size=1400,1000", f"--screenshot={shot}", page.as_uri())
    image = image_module.open(shot).convert("RGB")
    # The graph panel (left, below the filters): many distinct colours and drawn pixels.
    graph = image.crop((30, 130, 1000, 800))
    colours = graph.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50
    white = sum(count for count, rgb in colours if min(rgb) >= 245)
    assert white < 0.97 * graph.width * graph.height


def _page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked for (its site is file://), other than file: and data:."""
    events = json.loads(netlog.read_text())["events"]
    urls = set()
    for event in events:
        params = event.get("params", {})
        url = params.get("url", "")
        if "site=file://" in str(params.get("site_for_cookies", "")) and not url.startswith(
            ("file:", "data:")
        ):
            urls.add(url)
    return sorted(urls)


@needs_chromium
def test_no_network_request(page: Path, tmp_path: Path) -> None:
    log = tmp_path / "net.json"
    _chromium(tmp_path, f"--log-net-log={log}", "--dump-dom", page.as_uri())
    assert _page_requests(log) == []
    # The check can fail: a page with an outside image is caught.
    control = tmp_path / "control.html"
    control.write_text('<img src="http://example.invalid/x.png">')
    control_log = tmp_path / "control.json"
    _chromium(tmp_path, f"--log-net-log={control_log}", "--dump-dom", control.as_uri())
    assert _page_requests(control_log) == ["http://example.invalid/x.png"]


def test_report_files_matches_the_command(page: Path) -> None:
    text = report_files([HUBBLE], inventory=[INVENTORY])
    assert text == page.read_text()  # deterministic, and the command is a thin wrapper


def test_baseline_adds_the_semantic_diff(tmp_path: Path) -> None:
    inventory = netpolgen.load_inventory(INVENTORY)
    flows = netpolgen.resolve_flows(netpolgen.load_flows(HUBBLE), inventory)
    generated = netpolgen.generate(flows, inventory=inventory).policies
    old = [p for p in generated if p.name != "cartservice-access-ingress"]
    netpolgen.write_policy_dir(old, tmp_path / "old")
    netpolgen.write_policy_dir(generated, tmp_path / "new")
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, [
        "report", str(HUBBLE), "-i", str(INVENTORY), "--policies", str(tmp_path / "new"),
        "--baseline", str(tmp_path / "old"), "-o", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    baseline = _data(out.read_text())["baseline"]
    expected = netpolgen.diff_policies(old, generated, inventory)
    assert baseline["summary"] == expected.summary()
    assert {"change": "added", "policy": "shop/cartservice-access-ingress"} in baseline["policies"]
    assert 'id="baseline"' in out.read_text()


def test_sample_connections_carry_source_ports_when_the_flows_have_them() -> None:
    """three-tier.csv has source ports (web -> backend:8080 from 41234, 52010, 60712, ...);
    the same flows without them give samples without ports (and other replies: a reply is
    told by its ports too)."""
    flows = netpolgen.load_flows(SAMPLES / "three-tier.csv")
    samples = [s for p in build_report(flows)["policies"] for r in p["rules"] for s in r["samples"]]
    web = [s for s in samples if s.startswith("default/web → default/backend TCP/8080")]
    assert web and all(" (source ports 41234, 52010, 60712, …)" in s for s in web)
    for sample in samples:  # each names its edge's lowest three ports, in order
        if "(source ports " in sample:
            ports = sample.split("(source ports ", 1)[1].rstrip(")").split(", ")
            numbers = [int(p) for p in ports if p != "…"]
            assert numbers == sorted(numbers) and 1 <= len(numbers) <= 3
    portless = flows.assign(src_port=pd.array([None] * len(flows), dtype="UInt16"))
    bare = [s for p in build_report(portless)["policies"] for r in p["rules"] for s in r["samples"]]
    assert bare and not any("source ports" in s for s in bare)


def test_update_and_report_are_public(tmp_path: Path) -> None:
    """``netpolgen.update_files``/``update_policies``/``write_update``/``format_update`` and
    ``netpolgen.report_files``/``build_report``/``render_report``/``write_report`` are the
    library functions the ``update`` and ``report`` commands run."""
    csv = SAMPLES / "three-tier.csv"
    policies = tmp_path / "policies"
    netpolgen.write_policy_dir(netpolgen.generate(netpolgen.load_flows(csv)).policies, policies)
    same = netpolgen.update_files([csv], policies)
    assert isinstance(same, netpolgen.UpdateResult) and not same.changed
    assert "no change" in netpolgen.format_update(same)
    netpolgen.write_update(same, tmp_path / "copy")
    assert (tmp_path / "copy").is_dir()
    page = netpolgen.report_files([csv])
    assert page == netpolgen.render_report(netpolgen.build_report(netpolgen.load_flows(csv)))
    assert netpolgen.write_report(page, tmp_path / "r.html").read_text() == page
    for name in ("update_files", "update_policies", "write_update", "format_update",
                 "UpdateResult", "report_files", "build_report", "render_report",
                 "write_report"):  # fmt: skip
        assert name in netpolgen.__all__
