"""Hostile documents (issue 21): very deep JSON, zip archives (bombs among them), a pod with a
million labels, a namespace of 10,000 pods. Each gives a clear error or a sensible result, in
bounded memory (peak RSS measured by the child itself, as tests/ingest/test_bombs.py does),
and never a traceback or a crash report.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLE_FLOWS
from tests.faults.helpers import THREE_TIER, cli_env
from tests.peak import PEAK_RSS_KIB_EXPRESSION

INVENTORY = SAMPLE_FLOWS / "online-shop.inventory.json"
DEEP = "[" * 100_000 + "]" * 100_000
# The child reports its own peak RSS (KiB on Linux) at exit.
MEASURED = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: sys.stderr.write("
    "f'MAXRSS={" + PEAK_RSS_KIB_EXPRESSION + "}\\n'))\n"
    "sys.argv = ['netpolgen', *sys.argv[1:]]\n"
    "from netpolgen.cli import main; main()\n"
)


def measured(tmp_path: Path, *args: str, stdin: Path | None = None) -> tuple[int, str, int]:
    """Exit code, standard error (less the measurement) and peak RSS in MiB."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    with open(stdin or "/dev/null", "rb") as feed:
        done = subprocess.run(
            [sys.executable, "-c", MEASURED, *args], stdin=feed, capture_output=True, text=True,
            cwd=tmp_path, env=cli_env(tmp), timeout=600,
        )  # fmt: skip
    stderr, _, peak = done.stderr.rpartition("MAXRSS=")
    assert not list(tmp.iterdir()), "a crash report or spool was left"
    return done.returncode, stderr, int(peak.split()[0]) // 1024


def one_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    return errors[0]


GCP_LOG = "projects/p/logs/compute.googleapis.com%2Fvpc_flows"
DEEP_INPUTS = {
    # (file content, the command's arguments after the file)
    "hubble": ('{"flow": {"IP": ' + DEEP + "}}\n", ["-f", "hubble"]),
    "gcp": ('{"logName": "' + GCP_LOG + '", "jsonPayload": ' + DEEP + "}\n", ["-f", "gcp-vpc"]),
    "azure": ('{"records": [' + DEEP + "]}\n", ["-f", "azure"]),
    "azure, sniffed": ('{"records": [\n{"time": "x", "flowRecords": ' + DEEP + "}]}\n", []),
}


@pytest.mark.parametrize("kind", sorted(DEEP_INPUTS))
def test_deep_json_flows_are_a_clear_error(tmp_path: Path, kind: str) -> None:
    text, extra = DEEP_INPUTS[kind]
    flows = tmp_path / "deep.json"
    flows.write_text(text)
    code, stderr, peak = measured(tmp_path, "from-flows", str(flows), *extra)
    assert code == 1
    assert str(flows) in one_error(stderr)
    assert peak < 400, f"peak RSS {peak} MiB"


@pytest.mark.parametrize("where", ["inventory", "policies"])
def test_deep_json_inventory_and_policies_are_a_clear_error(tmp_path: Path, where: str) -> None:
    document = tmp_path / "deep.json"
    document.write_text('{"apiVersion": "v1", "kind": "List", "items": [' + DEEP + "]}\n")
    if where == "inventory":
        args = ["from-flows", str(THREE_TIER), "-i", str(document)]
    else:
        policies = tmp_path / "policies"
        policies.mkdir()
        document.rename(document := policies / "deep.yaml")
        args = ["verify", str(THREE_TIER), "--policies", str(policies)]
    code, stderr, _ = measured(tmp_path, *args)
    assert code == 1
    line = one_error(stderr)
    assert str(document) in line and "deep" in line, line


def zip_bomb(path: Path, megabytes: int) -> Path:
    """A zip of one member, ``megabytes`` MiB of zeros (deflate: about 1,000 to 1)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("flows.jsonl", "w") as member:
            for _ in range(megabytes):
                member.write(b"\0" * (1 << 20))
    return path


@pytest.mark.parametrize("where", ["flows", "standard input", "inventory"])
def test_a_zip_archive_is_refused_at_once(tmp_path: Path, where: str) -> None:
    bomb = zip_bomb(tmp_path / "logs.zip", 256)
    assert bomb.stat().st_size < 1 << 20
    stdin = None
    if where == "flows":
        args = ["from-flows", str(bomb)]
    elif where == "standard input":
        args, stdin = ["from-flows", "-"], bomb
    else:
        args = ["from-flows", str(THREE_TIER), "-i", str(bomb)]
    code, stderr, peak = measured(tmp_path, *args, stdin=stdin)
    assert code == 1
    line = one_error(stderr)
    assert "is a zip archive" in line and ("<stdin>" if stdin else str(bomb)) in line, line
    assert peak < 400, f"peak RSS {peak} MiB"


def _pod(
    template: dict[str, Any], namespace: str, name: str, ip: str, labels: dict[str, str]
) -> Any:
    pod = copy.deepcopy(template)
    meta = pod["metadata"]
    meta.update(name=name, namespace=namespace, labels=labels, uid=name)
    meta.pop("ownerReferences", None)
    meta.pop("generateName", None)
    pod["status"].update(podIP=ip, podIPs=[{"ip": ip}])
    return pod


def _hostile_cluster(tmp_path: Path, labels: int, pods: int) -> tuple[Path, Path]:
    """The online-shop inventory plus a pod of ``labels`` labels (shop/wide) and a namespace
    of ``pods`` pods of one label each; AWS VPC (version 2) records between them and the
    shop's frontend, which the inventory resolves."""
    base = json.loads(INVENTORY.read_text())
    template = next(item for item in base["items"] if item["kind"] == "Pod")
    frontend = template["status"]["podIP"]
    items = list(base["items"])
    items.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "many"}})
    wide = {f"k{i}.example.com/l": "v" for i in range(labels)} | {"app": "wide"}
    items.append(_pod(template, "shop", "wide", "10.244.9.1", wide))
    ips = [f"10.245.{i // 250}.{i % 250 + 1}" for i in range(pods)]
    items += [_pod(template, "many", f"p{i}", ip, {"app": f"p{i}"}) for i, ip in enumerate(ips)]
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    start = 1795168800
    records = [f"10.244.9.1 {frontend} 40000 8080"] + [f"{ip} {frontend} 40000 8080" for ip in ips]
    flows = tmp_path / "flows.log"
    flows.write_text(
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
        "start end action log-status\n"
        + "".join(f"2 1 eni-a {r} 6 1 100 {start} {start + 60} ACCEPT OK\n" for r in records)
    )
    return flows, inventory


def test_a_pod_with_a_million_labels_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    flows, inventory = _hostile_cluster(tmp_path, labels=1_000_000, pods=0)
    code, stderr, peak = measured(tmp_path, "from-flows", str(flows), "-i", str(inventory))
    assert code == 1
    line = one_error(stderr)
    assert "(Pod wide) has 1,000,001 labels" in line and str(inventory) in line, line
    # Before the limit: 100 s and 1.2 GB, then a result.
    assert peak < 600, f"peak RSS {peak} MiB"


def test_a_flow_record_with_a_million_labels_is_skipped(tmp_path: Path) -> None:
    lines = THREE_TIER.read_text().splitlines(keepends=True)
    wide = ",".join(f"k{i}=v" for i in range(1_000_000))
    flows = tmp_path / "wide.csv"
    flows.write_text(
        lines[0] + lines[1].replace("app=myapp,role=web", wide, 1) + "".join(lines[1:])
    )
    code, stderr, peak = measured(tmp_path, "from-flows", str(flows), "-o", str(tmp_path / "out"))
    assert code == 0, stderr
    assert "wide.csv:2: skipped: line is longer than" in stderr
    assert peak < 400, f"peak RSS {peak} MiB"


@pytest.mark.slow
def test_a_namespace_of_ten_thousand_pods(tmp_path: Path) -> None:
    """One label each (app=p<i>), each reaching the frontend: an egress policy per workload,
    in linear time (the selector search once compared every workload with every other: 2,000
    pods took 100 s, so 10,000 some 40 minutes)."""
    flows, inventory = _hostile_cluster(tmp_path, labels=1, pods=10_000)
    out = tmp_path / "out"
    code, stderr, peak = measured(
        tmp_path, "from-flows", str(flows), "-i", str(inventory), "-o", str(out)
    )
    assert code == 0, stderr
    policies = [p for p in (out / "many").glob("*.yaml") if p.name != "kustomization.yaml"]
    assert len(policies) == 10_000
    sample = (out / "many" / policies[0].name).read_text()
    assert "podSelector:\n    matchLabels:\n      app: p" in sample, sample
    assert peak < 1024, f"peak RSS {peak} MiB"
