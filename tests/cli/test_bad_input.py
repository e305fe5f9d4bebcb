"""Bad input through the real command line: exit code, message, no traceback, no partial output.

Every error case runs with ``-o DIR`` and checks that ``DIR`` was not created, and that nothing
reached standard output; the cases that succeed check that what they wrote is valid Kubernetes.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from netpolgen.cli import cli
from tests.cluster import fixtures as cluster
from tests.conftest import SAMPLE_FLOWS
from tests.ingest.helpers import DATA, SHARED_SAMPLES
from tests.k8s import assert_valid_policies

THREE_TIER = SAMPLE_FLOWS / "three-tier.csv"
HEADER = "src_namespace,src_labels,dst_namespace,dst_labels,dst_port,protocol\n"
GOOD_ROW = "shop,app=web,shop,app=api,8080,TCP\n"


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def fails(tmp_path: Path, *args: str, message: str, input: bytes | None = None) -> Result:
    """Run ``from-flows ARGS -o DIR`` and check the error contract (exit 1, nothing written)."""
    out = tmp_path / "policies"
    result = run("from-flows", *args, "-o", str(out), input=input)
    assert result.exit_code == 1, result.output
    assert message in result.stderr, result.stderr
    assert result.stderr.count("Error: ") == 1
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert not out.exists(), "an error must not leave output behind"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".policies")], "no staging"
    return result


def succeeds(*args: str, input: str | bytes | None = None) -> Result:
    result = run("from-flows", *args, input=input)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert_valid_policies(result.stdout)
    return result


def reads(*args: str) -> Result:
    """Run ``from-flows ARGS``: an address-only log without an inventory gives no policy, which
    is an error that says so (issue 15), after the skip messages."""
    result = run("from-flows", *args)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert_valid_policies(result.stdout)
    else:
        assert result.exit_code == 1 and "no policy from" in result.stderr, result.output
    return result


def write(tmp_path: Path, name: str, data: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def hubble_line(**changes: Any) -> str:
    """One Hubble flow (web -> api, TCP 8080) with fields of source/destination replaced."""
    flow: dict[str, Any] = {
        "time": "2024-05-01T10:00:00Z",
        "verdict": "FORWARDED",
        "IP": {"source": "10.1.0.10", "destination": "10.1.0.20", "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 40000, "destination_port": 8080, "flags": {"SYN": True}}},
        "source": {"namespace": "shop", "labels": ["k8s:app=web"], "pod_name": "web-1"},
        "destination": {"namespace": "shop", "labels": ["k8s:app=api"], "pod_name": "api-1"},
    }
    for side in ("source", "destination"):
        flow[side].update(changes.get(side, {}))
    for key, value in changes.items():
        if key not in ("source", "destination"):
            flow[key] = value
    return json.dumps({"flow": flow}) + "\n"


# --- files that are not flow logs at all --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"\n\n  \n", "empty file"),
        (bytes(range(256)) * 40, "it is binary"),
        (b'{"flow": {"IP": {"source": "10.0.0.1"', "starts like JSON but does not parse"),
        (b"42\n", "the first value is a number"),
        (b"null\n", "the first value is null"),
        (b'{"flow": null}\n', "not a flow record (keys: flow)"),
        (b"[1, 2, 3]\n", "the first value is an array"),
        (b"hello world\n", "matches no known flow format"),
    ],
    ids=["empty", "blank", "binary", "truncated-json", "42", "null", "flow-null", "array", "text"],
)
def test_not_a_flow_log(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, "flows.log", data)
    result = fails(tmp_path, path, message=message)
    assert path in result.stderr


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        (b"42\n", "hubble", "1 skipped: not a JSON object"),
        (b"null\n", "gcp-vpc", "1 skipped: not a JSON object"),
        (b'{"flow": null}\n', "hubble", "1 skipped: not a Hubble flow record"),
        (
            b'{"flow": {"IP": 5}}\n{"flow": {"IP": {"source": "x", "destination": "y"}}}\n',
            "hubble",
            "1 skipped: IP.source or IP.destination is not an IP address",
        ),
        (b'{"records": 5}', "azure", "no usable flows"),
    ],  # fmt: skip
    ids=["42", "null", "flow-null", "odd-ip", "azure-records"],
)
def test_json_that_is_not_a_flow_with_a_forced_format(
    tmp_path: Path, data: bytes, fmt: str, message: str
) -> None:
    fails(tmp_path, write(tmp_path, "flows.json", data), "-f", fmt, message=message)


def usage_fails(tmp_path: Path, *args: str, message: str) -> None:
    """A missing or unusable path is a usage error (exit 2) in every command, nothing written."""
    out = tmp_path / "policies"
    result = run("from-flows", *args, "-o", str(out))
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_directory_and_missing_path(tmp_path: Path) -> None:
    usage_fails(tmp_path, str(tmp_path / "nope.csv"), message="nope.csv: no such file")
    folder = tmp_path / "logs"
    folder.mkdir()
    # A directory is read as the files under it (issue 15); one without any is an error.
    fails(tmp_path, str(folder), message="logs: directory holds no flow file")


# --- a wrong -f: the hint names the format the content has ----------------------------------------


@pytest.mark.parametrize(
    ("fixture", "fmt", "looks_like"),
    [
        ("aws-v2-default.log", "csv", "-f aws-vpc"),
        ("hubble-edge-cases.jsonl", "aws-vpc", "-f hubble"),
        ("gcp-vpc-flows.jsonl", "hubble", "-f gcp-vpc"),
        ("azure-nsg-v2.json", "gcp-vpc", "-f azure"),
    ],
)
def test_wrong_format_names_the_right_one(
    tmp_path: Path, fixture: str, fmt: str, looks_like: str
) -> None:
    result = fails(tmp_path, str(DATA / fixture), "-f", fmt, message=f"try {looks_like}")
    assert "looks like" in result.stderr and fixture in result.stderr


def test_csv_read_as_hubble(tmp_path: Path) -> None:
    result = fails(tmp_path, str(THREE_TIER), "-f", "hubble", message="try -f csv")
    assert "none of its 12 record(s) could be read as hubble" in result.stderr


# --- malformed records: skipped, counted, named; an error only when nothing is left --------------


def test_non_utf8_csv_is_an_error_naming_the_file(tmp_path: Path) -> None:
    data = HEADER.encode() + b"shop,app=\xff\xfe,shop,app=api,80,TCP\n"
    path = write(tmp_path, "flows.csv", data)
    fails(tmp_path, path, message="flows.csv:2: not UTF-8 text (byte 0xff)")


def test_non_utf8_line_in_aws_is_skipped(tmp_path: Path) -> None:
    lines = (DATA / "aws-v2-default.log").read_bytes().splitlines(keepends=True)
    path = write(tmp_path, "vpc.log", b"".join(lines[:2] + [b"2 \xff\xfe garbage\n"] + lines[2:]))
    result = reads(path)
    assert "vpc.log:3: skipped: line is not UTF-8 text" in result.stderr


def test_missing_csv_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "flows.csv", "src_ip,dst_ip\n10.0.0.1,10.0.0.2\n")
    fails(tmp_path, path, message="flows.csv:1: missing CSV columns: dst_port")


def test_ports_out_of_range_are_skipped(tmp_path: Path) -> None:
    rows = GOOD_ROW + "shop,app=web,shop,app=api,70000,TCP\n" + "shop,app=web,shop,app=api,-1,TCP\n"
    result = succeeds(write(tmp_path, "flows.csv", HEADER + rows))
    assert "flows.csv:3: skipped: dst_port is not an integer 0-65535" in result.stderr
    assert "3 records read from 1 file(s): 1 used, 2 skipped" in result.stderr


def test_only_bad_ports_is_no_usable_flows(tmp_path: Path) -> None:
    rows = "shop,app=web,shop,app=api,70000,TCP\nshop,app=web,shop,app=api,-1,TCP\n"
    result = fails(
        tmp_path, write(tmp_path, "flows.csv", HEADER + rows), message="no usable flows in"
    )
    assert "2 skipped: dst_port is not an integer 0-65535" in result.stderr
    assert "flows.csv:2: skipped" in result.stderr  # the first bad line is named


def test_unknown_protocol(tmp_path: Path) -> None:
    rows = GOOD_ROW + "shop,app=web,shop,app=api,80,QUIC\nshop,app=web,shop,app=api,80,300\n"
    result = succeeds(write(tmp_path, "flows.csv", HEADER + rows))
    assert "2 unknown protocol" in result.stderr


def test_strict_stops_at_the_first_bad_record(tmp_path: Path) -> None:
    rows = GOOD_ROW + "shop,app=web,shop,app=api,80,QUIC\n"
    fails(
        tmp_path, write(tmp_path, "flows.csv", HEADER + rows), "--strict",
        message="flows.csv:3: unknown protocol (hint: without --strict it is skipped)",
    )  # fmt: skip


def test_blank_lines_do_not_shift_the_line_named(tmp_path: Path) -> None:
    # Both CSV parsers skip blank lines; the message still names the line in the file.
    rows = "\n" + GOOD_ROW + "\n\n\r\n" + "shop,app=web,shop,app=api,80,QUIC\n"
    path = write(tmp_path, "flows.csv", HEADER + rows)
    assert "flows.csv:7: skipped: unknown protocol" in succeeds(path).stderr
    fails(tmp_path, path, "--strict", message="flows.csv:7: unknown protocol")


# --- limits ----------------------------------------------------------------------------------


def test_a_50_mb_csv_line_is_skipped_not_read(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    with path.open("wb") as handle:
        handle.write((HEADER + GOOD_ROW).encode())
        handle.write(b"shop,app=" + b"x" * (50 << 20) + b",shop,app=api,80,TCP\n")
        handle.write(GOOD_ROW.encode())
    result = succeeds(str(path))
    assert f"{path}:3: skipped: line is longer than 1048576 bytes" in result.stderr
    assert "3 records read from 1 file(s): 2 used, 1 skipped" in result.stderr


def test_a_50_mb_hubble_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    with path.open("wb") as handle:
        handle.write(hubble_line().encode())
        handle.write(b'{"flow": {"IP": "' + b"y" * (50 << 20) + b'"}}\n')
        handle.write(hubble_line(time="2024-05-01T11:00:00Z").encode())
    result = succeeds(str(path))
    assert f"{path}:2: skipped: line is longer than 1048576 bytes" in result.stderr


def test_max_line_bytes_option_and_strict(tmp_path: Path) -> None:
    path = write(tmp_path, "flows.csv", HEADER + GOOD_ROW + "shop,app=" + "x" * 500 + ",a,b=c,1\n")
    result = succeeds(path, "--max-line-bytes", "200")
    assert "flows.csv:3: skipped: line is longer than 200 bytes" in result.stderr
    fails(tmp_path, path, "--max-line-bytes", "200", "--strict", message="flows.csv:3: line is")
    fails(tmp_path, path, "--max-line-bytes", "10", message="flows.csv:1: the header line is")


@pytest.mark.parametrize("fmt", ["csv", "hubble", "aws-vpc", "gcp-vpc", "azure"])
def test_truncated_gzip_names_the_file(tmp_path: Path, fmt: str) -> None:
    text = cluster.RENDERERS[fmt]().encode()
    packed = gzip.compress(text * 50)
    path = write(tmp_path, f"flows.{fmt}.gz", packed[: len(packed) * 2 // 3])
    fails(tmp_path, path, message=f"{path}: compressed input is truncated or corrupt")


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(THREE_TIER.read_bytes() * 20))
    packed[len(packed) // 2 : len(packed) // 2 + 16] = b"\x00" * 16
    path = write(tmp_path, "flows.csv.gz", bytes(packed))
    fails(tmp_path, path, message="compressed input is truncated or corrupt")


# --- names and labels from the logs ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a:b", "#x", "{x}", "[x]", "a\nb", "x y", "-x", "x" * 64, "y: {z: [1]}", "é"],
    ids=["colon", "hash", "braces", "brackets", "newline", "space", "dash", "long", "yaml", "utf8"],
)
def test_invalid_label_values_are_reported_and_left_out(tmp_path: Path, value: str) -> None:
    labels = json.dumps({"app": "web", "odd": value})
    row = f'shop,"{labels.replace(chr(34), chr(34) * 2)}",shop,app=api,8080,TCP\n'
    result = succeeds(write(tmp_path, "flows.csv", HEADER + row))
    assert "invalid label(s) left out of selectors" in result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert documents and "odd" not in json.dumps(documents)


@pytest.mark.parametrize("key", ["Bad Key", "a/b/c", "-app", "UPPER.example.com/x", "x" * 64, ""])
def test_invalid_label_keys_are_reported_and_left_out(tmp_path: Path, key: str) -> None:
    labels = json.dumps({"app": "web", key: "v"})
    row = f'shop,"{labels.replace(chr(34), chr(34) * 2)}",shop,app=api,8080,TCP\n'
    result = succeeds(write(tmp_path, "flows.csv", HEADER + row))
    assert "invalid label(s) left out of selectors" in result.stderr


def test_invalid_hubble_labels_are_reported_and_left_out() -> None:
    line = hubble_line(source={"labels": ["k8s:app=web", "k8s:bad key=1", "k8s:odd=a:b"]})
    result = succeeds("-", input=line)
    assert "<stdin>:1: invalid label(s) left out of selectors" in result.stderr
    assert "bad key" not in result.stdout and "a:b" not in result.stdout


def test_a_pod_whose_labels_are_all_invalid_is_not_selected_by_an_empty_selector() -> None:
    line = hubble_line(destination={"labels": ["k8s:bad key=1"]})
    result = run("from-flows", "-", input=line)
    # The destination has no usable identity and no inventory: nothing to generate, and
    # certainly no podSelector {} that would select every pod of the namespace.
    assert "podSelector: {}" not in result.stdout
    assert "Traceback" not in result.output


def test_uppercase_namespace_is_skipped(tmp_path: Path) -> None:
    rows = GOOD_ROW + "Shop,app=web,shop,app=api,8080,TCP\n"
    result = succeeds(write(tmp_path, "flows.csv", HEADER + rows))
    assert "flows.csv:3: skipped: src_namespace is not a valid namespace name" in result.stderr


@pytest.mark.parametrize(
    "namespace",
    ["../../etc", "/etc/cron.d", "Shop", "a" * 300, "shop/../../x", "sh op", "..", "kube system"],
)
def test_hostile_hubble_namespaces_never_become_paths(tmp_path: Path, namespace: str) -> None:
    lines = hubble_line() + hubble_line(
        source={"namespace": namespace},
        destination={"namespace": namespace},
        IP={"source": "10.1.0.11", "destination": "10.1.0.21"},
    )
    out = tmp_path / "out" / "policies"
    result = run("from-flows", "-", "-o", str(out), input=lines)
    assert result.exit_code == 0, result.output
    assert "skipped: src namespace is not a valid namespace name" in result.stderr
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    written.remove("out/policies/kustomization.yaml")  # the top one lists the namespace folders
    assert written and all(w.startswith("out/policies/shop/") for w in written), written


def test_hostile_pod_names_are_dropped_not_used() -> None:
    line = hubble_line(source={"pod_name": "../../evil"}, destination={"pod_name": "A" * 300})
    result = succeeds("-", input=line)
    assert "not a valid pod name" in result.stderr
    assert "evil" not in result.stdout


# --- the inventory ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "is not a Kubernetes object or List"),
        ('{"kind": "List", "items": 5}', "items is not a list"),
        ('{"apiVersion": "v1"}', "neither kind nor items"),
        ("", "empty inventory file"),
    ],
    ids=["syntax", "array", "items", "no-kind", "empty"],
)
def test_broken_inventory(tmp_path: Path, data: str, message: str) -> None:
    inventory = write(tmp_path, "pods.json", data)
    flows = write(tmp_path, "vpc.log", cluster.render_aws())
    result = fails(tmp_path, flows, "-i", inventory, message=message)
    assert "pods.json" in result.stderr


def test_missing_inventory(tmp_path: Path) -> None:
    flows = write(tmp_path, "vpc.log", cluster.render_aws())
    usage_fails(
        tmp_path, flows, "-i", str(tmp_path / "nope.json"), message="nope.json: no such file"
    )


def test_gzip_bomb_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 64 MiB of JSON in 64 KiB of gzip: refused at the cap (lowered here), not decompressed.
    monkeypatch.setattr("netpolgen.cluster.inventory.MAX_INVENTORY_BYTES", 4 << 20)
    bomb = tmp_path / "pods.json.gz"
    with gzip.open(bomb, "wb") as out:
        out.write(b" " * (64 << 20) + json.dumps(cluster.inventory_document()).encode())
    flows = write(tmp_path, "vpc.log", cluster.render_aws())
    fails(
        tmp_path, flows, "-i", str(bomb),
        message=f"{bomb}: inventory exceeds the size limit of 4 MiB (decompressed)",
    )  # fmt: skip


def _inventory(transform: Callable[[dict[str, Any]], None]) -> str:
    document = cluster.inventory_document()
    transform(document)
    return json.dumps(document)


def test_pod_without_an_ip(tmp_path: Path) -> None:
    def pending(document: dict[str, Any]) -> None:
        pod = next(i for i in document["items"] if i["kind"] == "Pod")
        pod["status"].pop("podIP", None)
        pod["status"].pop("podIPs", None)
        pod["status"]["phase"] = "Pending"

    inventory = write(tmp_path, "pods.json", _inventory(pending))
    succeeds(write(tmp_path, "vpc.log", cluster.render_aws()), "-i", inventory)


def test_invalid_names_and_labels_in_the_inventory_are_left_out(tmp_path: Path) -> None:
    def vandalise(document: dict[str, Any]) -> None:
        pods = [i for i in document["items"] if i["kind"] == "Pod"]
        pods[0]["metadata"]["labels"]["evil"] = "a: {b}"
        pods[1]["metadata"]["namespace"] = "../../etc"

    inventory = write(tmp_path, "pods.json", _inventory(vandalise))
    result = succeeds(write(tmp_path, "vpc.log", cluster.render_aws()), "-i", inventory)
    assert "invalid label(s) left out of selectors" in result.stderr
    assert "'../../etc' is not a valid namespace name" in result.stderr
    assert "evil" not in result.stdout and "etc" not in result.stdout


# --- valid but unusual traffic -----------------------------------------------------------------


def test_ipv6_flows(tmp_path: Path) -> None:
    header = "src_ip,dst_namespace,dst_labels,dst_port,protocol\n"
    rows = "2001:db8::7,shop,app=api,443,TCP\n::ffff:203.0.113.9,shop,app=api,443,TCP\n"
    result = succeeds(write(tmp_path, "flows.csv", header + rows))
    assert "2001:db8::7/128" in result.stdout


def test_icmp_flows(tmp_path: Path) -> None:
    rows = GOOD_ROW + "shop,app=web,shop,app=db,,ICMP\nshop,app=web,shop,app=db,,58\n"
    result = succeeds(write(tmp_path, "flows.csv", HEADER + rows))
    # NetworkPolicy has no ICMP: whatever happens to these flows, it must be said, not hidden.
    assert "ICMP" in result.stderr


def test_input_that_filters_down_to_zero_flows(tmp_path: Path) -> None:
    header = "src_namespace,src_labels,dst_namespace,dst_labels,dst_port,verdict\n"
    rows = "shop,app=web,shop,app=db,5432,denied\nshop,app=web,shop,app=db,5432,dropped\n"
    result = fails(
        tmp_path, write(tmp_path, "flows.csv", header + rows), message="no usable flows in"
    )
    assert "2 filtered: denied verdict" in result.stderr
    assert "--include-denied" in result.stderr
    succeeds(str(tmp_path / "flows.csv"), "--include-denied")


def test_zero_flows_does_not_replace_an_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "policies"
    assert run("from-flows", str(THREE_TIER), "-o", str(out), "-q").exit_code == 0
    before = sorted(p.read_text() for p in out.rglob("*.yaml"))
    header = "src_namespace,src_labels,dst_namespace,dst_labels,dst_port,verdict\n"
    denied = write(tmp_path, "denied.csv", header + "a,app=x,a,app=y,80,denied\n")
    result = run("from-flows", denied, "-o", str(out), "--force")
    assert result.exit_code == 1 and "no usable flows" in result.stderr
    assert sorted(p.read_text() for p in out.rglob("*.yaml")) == before


# --- the accounting ------------------------------------------------------------------------------


def test_summary_json_balances(tmp_path: Path) -> None:
    rows = GOOD_ROW + "shop,app=web,shop,app=api,70000,TCP\nShop,app=web,shop,app=api,1,TCP\n"
    result = run(
        "from-flows", write(tmp_path, "flows.csv", HEADER + rows), "--summary", "json", "-q"
    )
    assert result.exit_code == 0
    summary = json.loads(result.stderr)
    assert summary["records_read"] == 3 and summary["records_used"] == 1
    assert summary["skipped"] == {
        "dst_port is not an integer 0-65535": 1,
        "src_namespace is not a valid namespace name": 1,
    }
    assert summary["balanced"] is True and summary["policies"] == 2


def test_summary_json_on_error(tmp_path: Path) -> None:
    path = write(tmp_path, "flows.csv", HEADER + "shop,app=web,shop,app=api,70000,TCP\n")
    result = run("from-flows", path, "--summary", "json")
    assert result.exit_code == 1
    summary = json.loads(result.stderr.splitlines()[0])
    assert summary["error"].startswith("no usable flows") and summary["records_skipped"] == 1


# --- the other commands that read flows: verify and migrate -----------------------------------


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    out = tmp_path / "generated"
    assert run("from-flows", str(THREE_TIER), "-o", str(out), "-q").exit_code == 0
    return out


def test_verify_with_no_usable_flows(tmp_path: Path, policies: Path) -> None:
    flows = write(tmp_path, "flows.csv", HEADER + "Shop,app=web,shop,app=api,8080,TCP\n")
    result = run("verify", "--flows", flows, "--policies", str(policies))
    assert result.exit_code == 1, result.output
    assert "no usable flows in" in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""


def test_verify_json_carries_the_accounting(tmp_path: Path, policies: Path) -> None:
    rows = GOOD_ROW + "shop,app=web,shop,app=api,70000,TCP\n"
    flows = write(tmp_path, "flows.csv", HEADER + rows)
    result = run("verify", "--flows", flows, "--policies", str(policies), "--format", "json")
    assert result.exit_code in (0, 3), result.output
    ingest = json.loads(result.stdout)["ingest"]
    assert ingest["records_read"] == 2 and ingest["records_skipped"] == 1
    assert ingest["balanced"] is True


def test_verify_skips_long_lines_and_prints_a_json_summary(tmp_path: Path, policies: Path) -> None:
    data = HEADER + GOOD_ROW + "shop,app=" + "x" * 300 + ",shop,app=api,8080,TCP\n"
    flows = write(tmp_path, "flows.csv", data)
    result = run(
        "verify", "--flows", flows, "--policies", str(policies), "--max-line-bytes", "100",
        "--summary", "json",
    )  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["skipped"] == {"line is longer than 100 bytes (--max-line-bytes)": 1}


@pytest.mark.parametrize(
    "text", ["{not yaml: [", "kind: Pod\n", "42\n"], ids=["syntax", "not-a-policy", "scalar"]
)
def test_verify_and_diff_with_a_broken_policy_file(
    tmp_path: Path, policies: Path, text: str
) -> None:
    broken = write(tmp_path, "broken.yaml", text)
    for args in (
        ["verify", "--flows", str(THREE_TIER), "--policies", broken],
        ["diff", broken, str(policies)],
    ):
        result = run(*args)
        assert result.exit_code in (0, 1, 3), result.output
        assert "Traceback" not in result.output
        if result.exit_code == 1 and "Error:" in result.stderr:
            assert "broken.yaml" in result.stderr
        elif result.exit_code == 1:  # diff: the sets differ (diff(1)'s exit code), not an error
            assert args[0] == "diff" and "Policies" in result.stdout


def test_migrate_with_no_usable_flows_writes_no_plan(tmp_path: Path) -> None:
    flows = write(tmp_path, "flows.csv", HEADER + "shop,app=web,shop,app=api,99999,TCP\n")
    out = tmp_path / "plan"
    result = run("migrate", flows, "-o", str(out))
    assert result.exit_code == 1, result.output
    assert "no usable flows in" in result.stderr and "Traceback" not in result.output
    assert not out.exists()


# --- what the line limit must not touch, and where it must still apply ---------------------------


def test_documents_read_whole_are_not_cut_by_the_line_limit(tmp_path: Path) -> None:
    # An Azure blob and a GCP console download are one JSON document: often one long line.
    azure = json.dumps(json.loads((DATA / "azure-nsg-v2.json").read_text()))
    entries = []
    for line in (DATA / "gcp-vpc-flows.jsonl").read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # the fixture has a deliberately broken line
    gcp = json.dumps(entries)
    for name, text in (("azure.json", azure), ("gcp.json", gcp)):
        assert len(text) > 1000
        result = reads(write(tmp_path, name, text), "--max-line-bytes", "100")
        assert "longer than" not in result.stderr


def test_long_line_inside_gzip_and_on_stdin(tmp_path: Path) -> None:
    data = (HEADER + GOOD_ROW + "shop,app=" + "x" * 5000 + ",shop,app=api,80,TCP\n").encode()
    path = write(tmp_path, "flows.csv.gz", gzip.compress(data))
    result = succeeds(path, "--max-line-bytes", "1000")
    assert "flows.csv.gz:3: skipped: line is longer than 1000 bytes" in result.stderr
    result = succeeds("-", "--max-line-bytes", "1000", input=gzip.compress(data))
    assert "<stdin>:3: skipped: line is longer than 1000 bytes" in result.stderr


def test_hostile_gcp_namespaces_are_skipped(tmp_path: Path) -> None:
    lines = (DATA / "gcp-vpc-flows.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    entry["jsonPayload"]["src_gke_details"] = {"pod": {"pod_namespace": "../../root",
                                                       "pod_name": "x"}}  # fmt: skip
    path = write(tmp_path, "gcp.jsonl", "\n".join([json.dumps(entry), *lines[1:]]) + "\n")
    result = run("from-flows", path, "-o", str(tmp_path / "out"))
    assert "Traceback" not in result.output
    assert "src namespace is not a valid namespace name (e.g. '../../root')" in result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".yaml"]
    assert all("out" in p.relative_to(tmp_path).parts[:1] for p in written)


# --- the invariant on every fixture: read = used + skipped + filtered ----------------------------

FIXTURES = sorted([THREE_TIER, *(p for p in DATA.iterdir() if p.is_file())]) + sorted(
    # The real public samples beside the checkout, when present (read in place, never copied).
    p for folder in ("aws", "azure", "hubble") for p in (SHARED_SAMPLES / folder).glob("*")
    if p.is_file()
)  # fmt: skip


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
@pytest.mark.parametrize("with_inventory", [False, True], ids=["alone", "inventory"])
def test_every_fixture_balances(tmp_path: Path, path: Path, with_inventory: bool) -> None:
    args = ["from-flows", str(path), "--summary", "json", "-q"]
    if with_inventory:
        args += ["-i", write(tmp_path, "pods.json", json.dumps(cluster.inventory_document()))]
    result = run(*args)
    assert "Traceback" not in result.output
    summary = json.loads(next(x for x in result.stderr.splitlines() if x.startswith("{")))
    assert summary["balanced"] is True, summary
    assert summary["records_read"] == (
        summary["records_used"] + summary["records_skipped"] + summary["records_filtered"]
    )
    assert sum(summary["skipped"].values()) == summary["records_skipped"]
    assert sum(summary["filtered"].values()) == summary["records_filtered"]
    if result.exit_code == 0:
        assert_valid_policies(result.stdout)
    else:
        # No usable record, or usable records that give no policy (issue 15: not silent).
        assert result.exit_code == 1
        assert summary["error"].startswith(("no usable flows", "no policy from")), summary


# --- hostile YAML and JSON: a hang or a crash would be a denial of service ----------------------


def _laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


HOSTILE_DOCUMENTS = {
    "billion-laughs": (_laughs() + "kind: List\nitems: []\n", "aliases expand to more than"),
    "recursive-alias": ("kind: List\nitems: &a [*a]\n", "a recursive alias"),
    "deep-json": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_DOCUMENTS))
def test_hostile_inventory_documents(tmp_path: Path, name: str) -> None:
    text, message = HOSTILE_DOCUMENTS[name]
    inventory = write(tmp_path, "inventory.yaml", text)
    fails(tmp_path, str(THREE_TIER), "-i", inventory, message=message)


@pytest.mark.parametrize("name", sorted(HOSTILE_DOCUMENTS))
def test_hostile_policy_documents(tmp_path: Path, name: str) -> None:
    text, message = HOSTILE_DOCUMENTS[name]
    policies = write(tmp_path, "policies.yaml", text)
    result = run("verify", "--flows", str(THREE_TIER), "--policies", policies)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and "policies.yaml" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_anchors_that_expand_reasonably_are_fine() -> None:
    from netpolgen.safe_yaml import load_all

    (document,) = load_all(_laughs(levels=3) + "b: *a2\n")
    assert len(document["b"]) == 9 and document["b"][0][0][0] == "x"
