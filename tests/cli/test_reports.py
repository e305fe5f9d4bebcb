"""Issue 18: reports a platform engineer can read, the same way in every command.

Each test names the behaviour it pins down. The fixtures are the bundled samples (the online
shop with its inventory; the three-tier CSV without one) and, for the inventory-as-flows case,
the kubelet PodList in /work/shared/samples/k8s (a real capture, not written by this reader).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from netpolgen.cli import cli
from netpolgen.policy.peers import describe_address
from tests.conftest import SAMPLE_FLOWS

SHOP = str(SAMPLE_FLOWS / "online-shop.hubble.jsonl")
INVENTORY = str(SAMPLE_FLOWS / "online-shop.inventory.json")
THREE_TIER = str(SAMPLE_FLOWS / "three-tier.csv")
PODLIST = Path("/work/shared/samples/k8s/honeycomb-agent_kubelet-podlist.json")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("shop")
    full, ingress, plan = root / "full", root / "ingress.yaml", root / "plan"
    for args in (["from-flows", SHOP, "-i", INVENTORY, "-o", str(full)],
                 ["from-flows", SHOP, "-i", INVENTORY, "--no-egress", "-o", str(ingress)],
                 ["migrate", SHOP, "-i", INVENTORY, "-o", str(plan)]):  # fmt: skip
        assert run(*args).exit_code == 0
    return {"full": full, "ingress": ingress, "plan": plan,
            "verify": run("verify", SHOP, "--policies", str(ingress), "-i", INVENTORY),
            "diff": run("diff", str(full), str(ingress), "-i", INVENTORY)}  # fmt: skip


def test_workloads_are_namespace_slash_name_with_an_inventory(shop: dict[str, Any]) -> None:
    # The inventory names each workload by its pods' owner (a Deployment): reports say
    # monitoring/grafana, as inspect does, never the 100-character label set.
    readme = (shop["plan"] / "README.md").read_text()
    for text in (shop["verify"].stdout, shop["diff"].stdout, readme):
        assert "monitoring/grafana" in text or "shop/frontend" in text
        assert "app.kubernetes.io/component=" not in text
    lines = [*shop["verify"].stdout.splitlines(), *shop["diff"].stdout.splitlines()]
    rows = [line for line in lines if "\t" in line]  # table rows (the summary lines are prose)
    assert rows and max(len(row) for row in rows) < 100


def test_labels_stay_where_no_name_tells_workloads_apart(tmp_path: Path) -> None:
    # three-tier has no inventory and its workloads share app=myapp: the name label would
    # call all three default/myapp, so the report keeps their labels.
    policies = tmp_path / "p.yaml"
    assert run("from-flows", THREE_TIER, "--no-egress", "-o", str(policies)).exit_code == 0
    ingress_only = tmp_path / "i.yaml"
    assert run("from-flows", THREE_TIER, "-o", str(ingress_only)).exit_code == 0
    result = run("diff", str(policies), str(ingress_only))
    assert "default/app=myapp,role=web" in result.stdout
    assert "default/myapp\t" not in result.stdout


def test_tables_are_tab_separated_when_not_on_a_terminal(shop: dict[str, Any]) -> None:
    # CliRunner's stdout is not a terminal: every table row is one tab-separated line.
    for text in (shop["verify"].stdout, shop["diff"].stdout, run("inspect", SHOP, "-q").stdout):
        header = next(
            line
            for line in text.splitlines()
            if line.startswith(("src\t", "change\t")) or "\t" in line
        )
        assert "\t" in header
        assert "│" not in text and "┃" not in text  # no boxes, so nothing to wrap


def snake_keys(value: Any, path: str = "") -> list[str]:
    """Keys that are not snake_case, outside the maps whose keys are data (file names,
    reasons, policy names)."""
    data_maps = {"formats", "skipped", "filtered", "notes", "workload_names", "by_reason"}
    wrong: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", str(key)):
                wrong.append(f"{path}/{key}")
            if str(key) not in data_maps:
                wrong += snake_keys(item, f"{path}/{key}")
    elif isinstance(value, list):
        for item in value:
            wrong += snake_keys(item, path + "[]")
    return wrong


def test_one_json_key_style(shop: dict[str, Any], tmp_path: Path) -> None:
    inspect = json.loads(run("inspect", SHOP, "-i", INVENTORY, "-F", "json", "-q").stdout)
    assert inspect["totals"]["records_read"] == 765
    verify = json.loads(run("verify", SHOP, "--policies", str(shop["ingress"]), "-i", INVENTORY,
                            "-F", "json", "-q").stdout)  # fmt: skip
    diff = json.loads(run("diff", str(shop["full"]), str(shop["ingress"]), "-F", "json").stdout)
    for document in (inspect, verify, diff):
        assert snake_keys(document) == []


def test_plurals(tmp_path: Path) -> None:
    policies = tmp_path / "p.yaml"
    assert run("from-flows", THREE_TIER, "-o", str(policies)).exit_code == 0
    report = run("verify", THREE_TIER, "--policies", str(policies)).stdout
    assert "1 record the network denied" in report and "1 records" not in report
    plan = run("migrate", THREE_TIER, "-o", str(tmp_path / "plan"))
    assert "for 1 namespace to" in plan.stderr


@pytest.mark.parametrize("flows", [THREE_TIER, SHOP])
def test_the_accounting_line_is_the_same_in_every_command(flows: str, tmp_path: Path) -> None:
    # read = used + skipped + filtered, where used is what the command treats as traffic:
    # replies and flows the network denied are filtered in all four (they were "used" by
    # verify and migrate, which left them unchecked: 11 used against from-flows' 6).
    extra = ["-i", INVENTORY] if flows == SHOP else []
    policies = tmp_path / "p.yaml"
    generated = run("from-flows", flows, *extra, "-o", str(policies))
    lines = {
        "from-flows": generated.stderr.splitlines()[-1],
        "verify": run("verify", flows, "--policies", str(policies), *extra).stderr.splitlines()[-1],
        "migrate": run("migrate", flows, *extra, "-o", str(tmp_path / "m")).stderr.splitlines()[-1],
        "inspect": run("inspect", flows, *extra, "-v").stderr.splitlines()[-1],
    }
    assert len(set(lines.values())) == 1, lines
    assert "records read" in lines["verify"] and "reply traffic" in lines["verify"]


def test_no_hint_names_a_file_that_is_not_shipped() -> None:
    result = run("inspect", THREE_TIER, "-f", "hubble")
    assert result.exit_code == 1
    assert "DESIGN.md" not in result.stderr and "try -f csv" in result.stderr


@pytest.mark.parametrize("flow_format", ["auto", "hubble", "csv"])
@pytest.mark.parametrize("document", [INVENTORY, str(PODLIST)])
def test_an_inventory_given_as_flows_says_use_i(document: str, flow_format: str) -> None:
    # kubectl get pods,services,namespaces,nodes -A -o json is a List; the kubelet's /pods a
    # PodList: either way the user meant -i.
    result = run("inspect", document, "-f", flow_format, "-q")
    assert result.exit_code == 1
    assert "-i/--inventory" in result.stderr and "Traceback" not in result.output


def test_the_plan_readme_lists_every_row(shop: dict[str, Any]) -> None:
    readme = (shop["plan"] / "README.md").read_text()
    assert "more rows" not in readme and "more row" not in readme


def test_ip_block_notes_describe_blocks_wider_than_one_address() -> None:
    # Two nodes at 10.0.0.12 and 10.0.0.13 merge into 10.0.0.12/31 (README: adjacent
    # addresses are merged into their exact covering CIDRs); the note says what it covers.
    notes = {"10.0.0.12": "node kind-worker", "10.0.0.13": "node kind-worker2"}
    assert describe_address("10.0.0.12/31", notes) == (
        "covers 10.0.0.12 (node kind-worker), 10.0.0.13 (node kind-worker2)"
    )
    assert describe_address("10.0.0.12/32", notes) == "node kind-worker"
    assert describe_address("10.0.0.14/31", notes) is None
    assert "NodeLocal DNSCache" in (describe_address("169.254.20.0/24") or "")
