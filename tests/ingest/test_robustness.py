"""Damaged input never escapes as anything but a NetpolgenError (no tracebacks for users)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen.errors import NetpolgenError
from netpolgen.flows import validate_flows
from netpolgen.ingest import FORMATS, IngestReport, load_flows
from tests.ingest import cluster
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
