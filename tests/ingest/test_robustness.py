"""Damaged input never escapes as anything but a NetpolgenError (no tracebacks for users)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netpolgen.errors import NetpolgenError
from netpolgen.flows import validate_flows
from netpolgen.ingest import FORMATS, load_flows
from netpolgen.ingest.report import IngestReport
from tests.cluster import fixtures as cluster
from tests.ingest.helpers import DATA

FIXTURES = sorted(p for p in DATA.iterdir() if p.is_file())
# The formats of issue 3 (the CSV reader has its own tests).
OUR_FORMATS = [name for name in FORMATS if name != "csv"]
SOURCES: list[bytes] = [p.read_bytes() for p in FIXTURES] + [
    render().encode() for name, render in cluster.RENDERERS.items() if name != "csv"
]


def load(data: bytes, fmt: str) -> None:
    try:
        flows = load_flows(io.BytesIO(data), fmt, report=IngestReport())
    except NetpolgenError:
        return
    validate_flows(flows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(SOURCES),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
    fmt=st.sampled_from(["auto", *OUR_FORMATS]),
)
def test_truncated_or_corrupted_input(
    source: bytes, cut: float, flips: list[tuple[float, int]], fmt: str
) -> None:
    data = bytearray(source[: int(len(source) * cut)])
    for where, byte in flips:
        if data:
            data[int(where * (len(data) - 1))] = byte
    load(bytes(data), fmt)


@pytest.mark.parametrize("fmt", ["auto", *OUR_FORMATS])
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff\xfe" * 100,
        b"{}\n",
        b"[]",
        b"null\n",
        b'"text"\n',
        b"1 2 3\n",
        b'{"records": 5}',
        b'{"flow": 5}\n',
        b'{"flow": {"IP": 5}}\n',
    ],  # fmt: skip
)
def test_odd_documents(fmt: str, data: bytes) -> None:
    load(data, fmt)


def test_fixture_list_is_not_empty() -> None:
    assert any(isinstance(p, Path) for p in FIXTURES)


JSON_SOURCES = [
    (name, render()) for name, render in cluster.RENDERERS.items() if name in ("hubble", "gcp-vpc")
] + [("azure", (DATA / "azure-nsg-v2.json").read_text())]
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fields_of_the_wrong_type(data: st.DataObject) -> None:
    import json

    fmt, text = data.draw(st.sampled_from(JSON_SOURCES))
    documents = (
        [json.loads(text)] if fmt == "azure" else [json.loads(x) for x in text.splitlines()[:6]]
    )
    for document in documents:
        paths = _paths(document)
        for path in data.draw(st.lists(st.sampled_from(paths), max_size=3)):
            node: object = document
            try:
                for key in path[:-1]:
                    node = node[key]  # type: ignore[index]
                node[path[-1]] = data.draw(ODD_VALUES)  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change replaced the container
    payload = "\n".join(json.dumps(d) for d in documents).encode()
    load(payload, data.draw(st.sampled_from(["auto", fmt])))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_inventory_fields_of_the_wrong_type(data: st.DataObject) -> None:
    import json

    from netpolgen.cluster.inventory import parse_inventory
    from netpolgen.errors import InventoryError
    from netpolgen.resolve import resolve_flows

    document = json.loads(json.dumps(cluster.inventory_document()))  # a private copy
    paths = _paths(document)
    for path in data.draw(st.lists(st.sampled_from(paths), max_size=4)):
        node: object = document
        try:
            for key in path[:-1]:
                node = node[key]  # type: ignore[index]
            node[path[-1]] = data.draw(ODD_VALUES)  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            continue
    try:
        inventory = parse_inventory([json.loads(json.dumps(document))])
    except InventoryError:
        return
    flows = load_flows(io.BytesIO(cluster.render_aws().encode()), report=IngestReport())
    validate_flows(resolve_flows(flows, inventory))


# --- every reader, CSV included, and the guards in front of them (issue 8) -------------------

ALL_FORMATS = ["auto", *FORMATS]
CSV_COLUMNS = (
    "time", "src_ip", "dst_ip", "src_port", "dst_port", "protocol", "src_namespace",
    "dst_namespace", "src_pod", "dst_pod", "src_labels", "dst_labels", "src_kind", "dst_kind",
    "verdict", "is_reply", "count", "bytes", "packets",
)  # fmt: skip
# Cells that are almost right: the values readers meet in real damaged logs.
ODD_CELLS = st.one_of(
    st.sampled_from([
        "", "-", "0", "-1", "65535", "65536", "70000", "1e3", "0x1F", "NaN", "inf", "TCP", "tcp",
        "ICMP", "300", "10.0.0.1", "::1", "::ffff:10.0.0.1", "999.1.1.1", "a=b", "a=b,c=d",
        '{"a": "b"}', '{"a": 1}', "{", "[]", "null", "Shop", "../x", "kube-system", "true", "y",
        "2024-05-01T10:00:00Z", "1714557600", "99999999999999999999", "denied", "pod", "é",
    ]),
    st.text(max_size=12),
)  # fmt: skip


def load_any(data: bytes, fmt: str, *, max_line_bytes: int = 1 << 20) -> None:
    """Read ``data`` as ``fmt``: a flow table that validates, or a NetpolgenError, nothing else."""
    report = IngestReport(max_line_bytes=max_line_bytes)
    try:
        flows = load_flows(io.BytesIO(data), fmt, report=report)
    except NetpolgenError:
        return
    validate_flows(flows)
    assert report.records_read == (
        report.records_used + report.records_skipped + report.records_filtered
    ), report.to_dict()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048), fmt=st.sampled_from(ALL_FORMATS),
       limit=st.sampled_from([8, 64, 1 << 20]))  # fmt: skip
@example(data=b"\r\x00", fmt="csv", limit=8)  # a carriage return inside the header line
def test_random_bytes_into_every_reader(data: bytes, fmt: str, limit: int) -> None:
    load_any(data, fmt, max_line_bytes=limit)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(SOURCES + [cluster.render_csv().encode()]),
    cut=st.floats(0, 1),
    limit=st.sampled_from([16, 200, 1 << 20]),
    fmt=st.sampled_from(ALL_FORMATS),
)
def test_cut_files_with_short_line_limits(source: bytes, cut: float, limit: int, fmt: str) -> None:
    load_any(source[: int(len(source) * cut)], fmt, max_line_bytes=limit)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_odd_csv_records(data: st.DataObject) -> None:
    import csv as csv_module

    columns = data.draw(
        st.lists(st.sampled_from(CSV_COLUMNS), min_size=1, max_size=10, unique=True)
    )
    columns = list(dict.fromkeys(["dst_port", *columns]))
    rows = data.draw(st.lists(st.lists(ODD_CELLS, min_size=len(columns),
                                       max_size=len(columns)), max_size=6))  # fmt: skip
    text = io.StringIO()
    writer = csv_module.writer(text)
    writer.writerow(columns)
    writer.writerows(rows)
    load_any(text.getvalue().encode(), data.draw(st.sampled_from(["auto", "csv"])))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=1024))
def test_random_bytes_as_inventory(data: bytes) -> None:
    import tempfile

    from netpolgen.cluster.inventory import load_inventory
    from netpolgen.errors import InventoryError

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pods.json"
        path.write_bytes(data)
        try:
            load_inventory(path)
        except InventoryError:
            pass


AWS_TOKENS = st.one_of(
    st.sampled_from([
        "-", "None", "0", "6", "17", "1", "58", "300", "-1", "65536", "10.0.0.1", "::1",
        "2001:db8::1", "999.0.0.1", "ACCEPT", "REJECT", "OK", "NODATA", "SKIPDATA", "18", "2",
        "1714557600", "1714557600000", "99999999999999999999", "1e3", "nan", "eni-1", "x",
    ]),
    st.text(alphabet=st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")),
            min_size=1, max_size=6),
)  # fmt: skip
AWS_FIELDS = (
    "version", "srcaddr", "dstaddr", "srcport", "dstport", "protocol", "packets", "bytes",
    "start", "end", "action", "log-status", "tcp-flags", "pkt-srcaddr", "pkt-dstaddr",
    "flow-direction", "pkt-src-aws-service",
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_odd_aws_records(data: st.DataObject) -> None:
    fields = data.draw(st.lists(st.sampled_from(AWS_FIELDS), min_size=2, max_size=10, unique=True))
    fields = list(dict.fromkeys(["srcaddr", "dstaddr", *fields]))
    rows = data.draw(st.lists(st.lists(AWS_TOKENS, min_size=len(fields), max_size=len(fields)),
                              max_size=6))  # fmt: skip
    text = " ".join(fields) + "\n" + "".join(" ".join(row) + "\n" for row in rows)
    load_any(text.encode(), data.draw(st.sampled_from(["auto", "aws-vpc"])))
