"""Azure NSG flow logs v2 and VNet flow logs v4."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from netpolgen.errors import InputError
from netpolgen.flows import validate_flows
from netpolgen.ingest import azure
from tests.ingest.helpers import DATA, balanced, read, row

NSG = DATA / "azure-nsg-v2.json"
VNET = DATA / "azure-vnet-v4.json"


def test_nsg_v2() -> None:
    flows, report = read(NSG)
    validate_flows(flows)
    assert report.formats[str(NSG)] == "azure"
    # 9 tuples and 1 record without flow tuples.
    assert report.records_read == 10 and balanced(report)
    assert report.skipped == {
        "record has no flowTuples (not a flow-log event)": 1,
        "flow tuple does not have 13 or 8 fields": 1,
        "flow tuple protocol is unknown": 1,
        "flow tuple time is not a Unix epoch": 1,
    }
    # Begin, continue and end tuples of one connection: one row, counters (deltas) summed.
    assert report.filtered == {"duplicate observation of a connection": 2}
    connection = row(flows, src_port=40000)
    assert connection["time"] == pd.Timestamp("2024-05-01T10:00:00Z")
    assert connection["bytes"] == 400 + 300 + 60 + 60 and connection["packets"] == 11
    assert connection["verdict"] == "allowed" and not connection["is_reply"]
    assert row(flows, dst_port=8088)["verdict"] == "denied"  # decision D
    assert row(flows, dst_port=53)["protocol"] == "UDP"
    v1 = row(flows, src_port=40001)  # a v1 tuple: 8 fields, no state or counters
    assert v1["verdict"] == "allowed" and pd.isna(v1["bytes"])


def test_vnet_v4_milliseconds_protocol_numbers_denied_state() -> None:
    flows, report = read(VNET)
    assert report.records_read == 7 and balanced(report)
    assert report.skipped == {"flow tuple state is not B, C, E or D": 1}
    connection = row(flows, src_port=40000)
    assert connection["time"] == pd.Timestamp("2024-05-01T10:00:00.123Z")
    assert connection["protocol"] == "TCP" and connection["bytes"] == 767 + 1580
    assert row(flows, dst_port=22)["verdict"] == "denied"  # state D
    icmp = row(flows, protocol="ICMP")
    assert pd.isna(icmp["dst_port"]) and pd.isna(icmp["src_port"])
    assert row(flows, src_ip="fd00:10:1::a")["dst_ip"] == "fd00:10:1::14"


def test_strict() -> None:
    with pytest.raises(InputError):
        read(NSG, strict=True)


def test_json_lines_of_records(tmp_path) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(VNET.read_text())
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in document["records"]) + "\n")
    flows, report = read(path, "azure")
    assert report.records_read == 7 and len(flows) == 5


def test_truncated_blob_names_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "PT1H.json"
    path.write_text(VNET.read_text()[:900])
    with pytest.raises(InputError) as error:
        read(path, "azure")
    assert str(path) in str(error.value) and "not valid JSON" in str(error.value)


def test_sniff() -> None:
    assert azure.sniff(NSG.read_bytes()[:2000])
    assert azure.sniff(VNET.read_bytes()[:2000])
    assert not azure.sniff(b'{"flow": {"verdict": "FORWARDED"}}\n')


def test_blob_still_being_written_yields_its_complete_records(tmp_path) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(VNET.read_text())
    record = document["records"][0]
    second = json.loads(json.dumps(record))
    second["time"] = "2024-05-01T11:00:00Z"
    text = json.dumps({"records": [record, second]}, indent=2)
    path = tmp_path / "PT1H.json"
    path.write_text(text[: len(text) - 300])  # cut inside the second record
    flows, report = read(path)
    assert report.formats[str(path)] == "azure"
    assert report.records_read == 7 and len(flows) == 5
    assert any("cut off" in m for m in report.messages)
