from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen import IngestReport, load_flows, validate_flows
from netpolgen.errors import InputError

HEADER = "src_namespace,src_labels,dst_namespace,dst_labels,dst_port"


def load(text: str | bytes, tmp_path: Path, name: str = "f.csv", **kwargs: object):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    report = IngestReport()
    return load_flows(path, report=report, **kwargs), report  # type: ignore[arg-type]


def test_labels_as_text_or_json_are_canonical(tmp_path: Path) -> None:
    flows, _ = load(
        HEADER + '\na,"role=web, app=x",a,"{""app"": ""y"", ""tier"": ""db""}",80\n', tmp_path
    )
    validate_flows(flows)
    assert flows.loc[0, "src_labels"] == "app=x,role=web"
    assert flows.loc[0, "dst_labels"] == "app=y,tier=db"
    assert flows.loc[0, "src_kind"] == "pod" and flows.loc[0, "protocol"] == "TCP"
    assert flows.loc[0, "count"] == 1


def test_bom_crlf_and_column_order(tmp_path: Path) -> None:
    text = (
        "\ufeffdst_port,dst_labels,dst_namespace,src_labels,src_namespace,extra\r\n"
        "80,app=y,a,app=x,a,zz\r\n"
    )
    flows, report = load(text, tmp_path)
    assert len(flows) == 1 and report.records_used == 1
    assert flows.loc[0, "dst_port"] == 80


def test_gzip_is_detected_by_content(tmp_path: Path) -> None:
    raw = (HEADER + "\na,app=x,a,app=y,80\n").encode()
    flows, _ = load(gzip.compress(raw), tmp_path, name="flows.log")
    assert len(flows) == 1


def test_truncated_gzip_is_an_error_naming_the_file(tmp_path: Path) -> None:
    raw = gzip.compress((HEADER + "\na,app=x,a,app=y,80\n" * 1000).encode())
    with pytest.raises(InputError, match="truncated or corrupt") as error:
        load(raw[: len(raw) // 2], tmp_path, name="cut.csv.gz")
    assert "cut.csv.gz" in str(error.value)


def test_protocols_times_and_verdicts(tmp_path: Path) -> None:
    text = (
        HEADER + ",protocol,time,verdict,is_reply\n"
        "a,app=x,a,app=y,53,17,1700000000,ACCEPT,\n"
        "a,app=x,a,app=y,53,udp,2023-11-14T22:13:20+00:00,dropped,no\n"
        "a,app=x,a,app=y,,icmp,2023-11-14T22:13:20.5Z,,1\n"
        "a,app=x,a,app=y,9,47,,,\n"
    )
    flows, report = load(text, tmp_path)
    assert list(flows["protocol"].astype(str)) == ["UDP", "UDP", "ICMP", "47"]
    assert flows.loc[0, "time"] == flows.loc[1, "time"]
    assert list(flows["verdict"].astype(str)) == ["allowed", "denied", "unknown", "unknown"]
    assert list(flows["is_reply"].astype(object)) == [pd_na(), False, True, pd_na()]
    assert flows["dst_port"].isna().tolist() == [False, False, True, False]
    assert report.records_skipped == 0


def pd_na() -> object:
    import pandas as pd

    return pd.NA


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("a,app=x,a,app=y,70000", "dst_port is not an integer 0-65535"),
        ("a,app=x,a,app=y,-1", "dst_port is not an integer 0-65535"),
        ("a,app=x,a,app=y,http", "dst_port is not an integer 0-65535"),
        ("Upper,app=x,a,app=y,80", "src_namespace is not a valid namespace name"),
        ("a,{broken,a,app=y,80", "src_labels are neither k=v,... nor a JSON object"),
        ("a,novalue,a,app=y,80", "src_labels are neither k=v,... nor a JSON object"),
        (",,a,app=y,80", "src endpoint has neither namespace+labels nor IP"),
    ],
)
def test_bad_rows_are_skipped_counted_and_located(tmp_path: Path, row: str, reason: str) -> None:
    flows, report = load(HEADER + "\na,app=x,a,app=y,80\n" + row + "\n", tmp_path)
    assert len(flows) == 1
    assert report.records_read == 2 and report.records_used == 1
    assert report.skipped == {reason: 1}
    assert report.messages == [f"{tmp_path / 'f.csv'}:3: skipped: {reason}"]


def test_unknown_protocol_is_skipped(tmp_path: Path) -> None:
    _, report = load(HEADER + ",protocol\na,app=x,a,app=y,80,QUIC\n", tmp_path)
    assert report.skipped == {"unknown protocol": 1}


def test_invalid_label_keys_are_left_out_and_reported(tmp_path: Path) -> None:
    flows, report = load(HEADER + '\na,"app=x,bad key=1,k=v:#",a,app=y,80\n', tmp_path)
    assert flows.loc[0, "src_labels"] == "app=x"
    assert any("invalid label" in m for m in report.messages)


def test_ip_only_side_is_kept_for_resolution(tmp_path: Path) -> None:
    text = (
        "src_ip,dst_namespace,dst_labels,dst_port\n"
        "203.0.113.9,a,app=y,443\n2001:DB8::1,a,app=y,443\n"
    )
    flows, _ = load(text, tmp_path)
    assert list(flows["src_ip"]) == ["203.0.113.9", "2001:db8::1"]
    assert list(flows["src_kind"].astype(str)) == ["unknown", "unknown"]


def test_binary_stream_source() -> None:
    stream = io.BytesIO((HEADER + "\na,app=x,a,app=y,80\n").encode())
    assert len(load_flows(stream)) == 1


def test_non_utf8_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not UTF-8"):
        load((HEADER + "\na,app=\xe9,a,app=y,80\n").encode("latin-1"), tmp_path)


def test_header_only_file_reads_as_no_flows(tmp_path: Path) -> None:
    flows, report = load(HEADER + "\n", tmp_path)
    assert len(flows) == 0 and report.records_read == 0
    validate_flows(flows)


# --- line numbers: blank lines are skipped by the parsers, but still count as lines --------------

GOOD = "a,app=x,a,app=y,80"
BAD = "a,app=x,a,app=y,70000"
PORT = "dst_port is not an integer 0-65535"


@pytest.fixture(params=["arrow", "pandas"])
def csv_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with pyarrow's reader and with pandas' (the fallback without pyarrow)."""
    if request.param == "pandas":
        monkeypatch.setattr("netpolgen.ingest.csv._arrow_csv", None)
    else:
        pytest.importorskip("pyarrow")
    return str(request.param)


@pytest.mark.parametrize(
    ("lines", "bad_line"),
    [
        ([HEADER, "", GOOD, BAD], 4),  # one blank line before the bad row
        ([HEADER, GOOD, "", "", "", BAD], 6),  # several in a row
        (["", "", HEADER, GOOD, BAD], 5),  # before the header
        ([HEADER, "", GOOD, "", GOOD, "", "", BAD, "", GOOD], 8),  # scattered, and after it
        ([HEADER + "\r", "\r", GOOD + "\r", "\r", BAD + "\r"], 5),  # CRLF blank lines
    ],
)
def test_bad_row_after_blank_lines_names_its_physical_line(
    tmp_path: Path, csv_reader: str, lines: list[str], bad_line: int
) -> None:
    text = "\n".join(lines) + "\n"
    # (Sniffing looks at the first line, so a file that starts blank needs the format named.)
    _, report = load(text, tmp_path, format="csv")
    assert report.skipped == {PORT: 1}
    assert report.messages == [f"{tmp_path / 'f.csv'}:{bad_line}: skipped: {PORT}"]
    with pytest.raises(InputError) as error:
        load(text, tmp_path, format="csv", strict=True)
    assert error.value.line == bad_line
    assert str(error.value).startswith(f"{tmp_path / 'f.csv'}:{bad_line}: {PORT}")


def test_whitespace_only_lines_count_as_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pandas skips a line of spaces or tabs like an empty one (pyarrow rejects the file instead).
    monkeypatch.setattr("netpolgen.ingest.csv._arrow_csv", None)
    _, report = load("\n".join([HEADER, "   ", GOOD, "\t", " \r", BAD]) + "\n", tmp_path)
    assert report.messages == [f"{tmp_path / 'f.csv'}:6: skipped: {PORT}"]


@pytest.mark.parametrize(("rows", "chunk_size"), [(60, 1), (60, 5), (20_000, 1000)])
def test_line_numbers_across_chunks_with_blank_lines(
    tmp_path: Path, csv_reader: str, rows: int, chunk_size: int
) -> None:
    # Blank lines every few rows, a bad row every 7th; small chunks (and for pyarrow, whose
    # batches are blocks of the file, a file of several blocks) put them in many chunks.
    lines, expected = [HEADER], []
    for row in range(rows):
        if row % 3 == 0:
            lines.extend([""] * (row % 4))
        lines.append(BAD if row % 7 == 6 else GOOD)
        if row % 7 == 6:
            expected.append(len(lines))
    path = tmp_path / "f.csv"
    path.write_text("\n".join(lines) + "\n")
    report = IngestReport()
    load_flows(path, report=report, chunk_size=chunk_size)
    assert report.skipped == {PORT: len(expected)}
    # Each chunk with bad rows names its first (up to five messages).
    shown = [int(m.split(":")[-3]) for m in report.messages]
    assert shown[0] == expected[0] and shown == sorted(set(shown) & set(expected))
    # A bad row on its own, under --strict, is the error naming its line.
    for number in sorted({expected[0], expected[len(expected) // 2], expected[-1]}):
        alone = [GOOD if line == BAD and n != number else line for n, line in enumerate(lines, 1)]
        path.write_text("\n".join(alone) + "\n")
        with pytest.raises(InputError) as error:
            load_flows(path, strict=True, chunk_size=chunk_size)
        assert error.value.line == number


def test_a_line_cut_by_max_line_bytes_still_counts(tmp_path: Path, csv_reader: str) -> None:
    # The limiter blanks out a long line, and the parser skips it like any blank line.
    text = "\n".join([HEADER, "a,app=" + "x" * 300 + ",a,app=y,80", GOOD, BAD]) + "\n"
    _, report = load(text, tmp_path, max_line_bytes=100)
    assert report.messages == [
        f"{tmp_path / 'f.csv'}:2: skipped: line is longer than 100 bytes (--max-line-bytes)",
        f"{tmp_path / 'f.csv'}:4: skipped: {PORT}",
    ]


def test_long_lines_are_reported_with_the_chunk_they_precede(tmp_path: Path) -> None:
    # pyarrow parses on a thread of its own, ahead of the checks: a long line near the end must
    # still be reported after the bad row at the start, and the same way on every run.
    pytest.importorskip("pyarrow")
    rows = [GOOD] * 12_000  # about 230 KB: several 64 KiB parse blocks at this chunk size
    rows[0] = BAD
    rows[-2] = "a,app=" + "x" * 300 + ",a,app=y,80"
    text = "\n".join([HEADER, *rows]) + "\n"
    runs = [load(text, tmp_path, max_line_bytes=100, chunk_size=1000)[1] for _ in range(3)]
    name = tmp_path / "f.csv"
    for report in runs:
        assert report.messages == [
            f"{name}:2: skipped: {PORT}",
            f"{name}:{len(rows)}: skipped: line is longer than 100 bytes (--max-line-bytes)",
        ]
        assert report.records_read == len(rows) and report.records_used == len(rows) - 2


def test_missing_columns_name_the_header_line_after_blank_lines(
    tmp_path: Path, csv_reader: str
) -> None:
    with pytest.raises(InputError, match="missing CSV columns") as error:
        load("\n\nsrc_ip,dst_ip,port\n10.0.0.1,10.0.0.2,80\n", tmp_path, format="csv")
    assert error.value.line == 3


@pytest.mark.parametrize(
    "before",
    ["\n", "\n\n", "  \n", "\t\n\n", " \r\n"],
    ids=["blank", "two-blank", "spaces", "tab-then-blank", "space-crlf"],
)
def test_blank_lines_before_the_header_are_sniffed_and_read(tmp_path: Path, before: str) -> None:
    """Without ``-f csv``: the sniffer skips blank lines as the reader does, and lines of only
    spaces (which pyarrow would read as a one-cell row) send the file to the pandas reader."""
    from click.testing import CliRunner

    from netpolgen.cli import cli

    path = tmp_path / "flows.csv"
    path.write_text(
        before + "src_namespace,src_labels,dst_namespace,dst_labels,dst_port\n"
        "shop,app=web,shop,app=db,5432\n"
    )
    flows = load_flows(path)
    assert len(flows) == 1 and flows["dst_port"].iloc[0] == 5432
    result = CliRunner().invoke(cli, ["from-flows", str(path), "--no-egress"])
    assert result.exit_code == 0, result.output
    assert "name: db-access-ingress" in result.output


# --- The reader's thread prepares columns: the same chunks as preparing them in the parser ----

_CELLS = {
    "protocol": ["TCP", "tcp", " UDP ", "", "6", "17", "icmp", "bogus"],
    "verdict": ["allowed", "DROPPED", "", "forwarded", "maybe"],
    "is_reply": ["", "true", "0", "yes", "perhaps"],
    "src_ip": ["10.0.0.1", " 10.0.0.2", "", "nope", "fe80::1", "010.0.0.1"],
    "dst_ip": ["10.0.0.9", "", "::ffff:10.0.0.9"],
    "src_namespace": ["shop", " shop ", "", "Shop"],
    "src_pod": ["web-1", "", "Bad_Pod"],
    "src_labels": ["app=web", " app=web ", "", "tier=db,app=db", "Bad Key=1", '{"app": "x"}'],
    "dst_namespace": ["db", ""],
    "dst_labels": ["app=db", "app=db,role=x", ""],
    "dst_port": ["80", " 443", "", "-1", "70000", "8.0", "x"],
    "src_port": ["40000", "", "1e3"],
    "count": ["1", "", "3", "-2"],
    "time": ["1767225600.5", "", "2026-01-01T00:00:00Z", "soon"],
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_prepared_columns_change_nothing(data: st.DataObject) -> None:
    """Columns factorised and cast on the reader's thread (csv_arrow._prepared), and answers that
    reuse the column as read (Answers.strings), give the chunks, skips and notes that the
    parser gives working everything out itself. Cells drawn from valid, padded, empty and
    invalid values; a repeated column name (the first one is read); any chunk size."""
    import csv as csv_module
    from unittest import mock

    from netpolgen import _kernels
    from netpolgen.ingest import csv, csv_arrow

    if not csv.HAS_ARROW:
        pytest.skip("pyarrow is not installed")
    names = data.draw(st.lists(st.sampled_from(sorted(_CELLS)), min_size=1, unique=True))
    names = [*names, "dst_port"] if "dst_port" not in names else names
    columns = [*names, *data.draw(st.lists(st.sampled_from(names), max_size=2))]
    rows = data.draw(
        st.lists(
            st.tuples(*(st.sampled_from(_CELLS[name]) for name in columns)),
            min_size=1,
            max_size=25,
        )
    )
    header = [name.upper() if data.draw(st.booleans()) else name for name in columns]
    text = io.StringIO()
    writer = csv_module.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    chunk_size = data.draw(st.integers(1, 30))

    def read() -> tuple[list[pd.DataFrame], dict[str, object]]:
        stream = io.BufferedReader(io.BytesIO(text.getvalue().encode()))
        report = IngestReport()
        try:
            chunks = list(csv.read(stream, "f.csv", report, chunk_size=chunk_size, arrow=True))
        except InputError as error:
            return [], {"error": str(error)}
        return chunks, report.to_dict()

    prepared = read()
    with (
        mock.patch.object(csv_arrow, "_prepared", lambda frame: csv_arrow.Prepared()),
        mock.patch.object(_kernels, "_STRING", object()),  # never reuse the column
    ):
        worked_out = read()
    assert prepared[1] == worked_out[1]
    assert len(prepared[0]) == len(worked_out[0])
    for ours, theirs in zip(*(chunks for chunks, _ in (prepared, worked_out)), strict=True):
        pd.testing.assert_frame_equal(ours, theirs)


def test_repeated_header_name_at_a_chunk_edge() -> None:
    """Found by the property test above: a header that repeats a name, and rows that end
    exactly at a chunk's edge (the reader's last, empty chunk), crashed the Arrow reader."""
    from netpolgen.ingest import csv

    if not csv.HAS_ARROW:
        pytest.skip("pyarrow is not installed")
    text = b"count,dst_ip,dst_port,src_ip,count\n1,10.0.0.9,80,10.0.0.1,7\n"
    report = IngestReport()
    stream = io.BufferedReader(io.BytesIO(text))
    chunks = list(csv.read(stream, "f.csv", report, chunk_size=1, arrow=True))
    assert sum(len(chunk) for chunk in chunks) == 1 and report.records_used == 1
    assert chunks[0].loc[0, "count"] == 1  # the first of the repeated columns
