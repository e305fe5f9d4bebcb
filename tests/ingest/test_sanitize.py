"""The checks every chunk passes on its way out of ingest, and the zero-usable-flows rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.errors import InputError, NoUsableFlowsError
from netpolgen.flows import conform_flows
from netpolgen.ingest.accounting import is_balanced, require_usable_flows, summary_dict
from netpolgen.ingest.report import IngestReport
from netpolgen.ingest.sanitize import sanitize_flows, valid_labels


def chunk(**columns: list[object]) -> pd.DataFrame:
    rows = len(next(iter(columns.values())))
    base: dict[str, list[object]] = {
        "src_namespace": ["shop"] * rows, "dst_namespace": ["shop"] * rows,
        "src_labels": ["app=web"] * rows, "dst_labels": ["app=api"] * rows,
        "src_kind": ["pod"] * rows, "dst_kind": ["pod"] * rows, "dst_port": [80] * rows,
    }  # fmt: skip
    base.update(columns)
    return conform_flows(pd.DataFrame(base))


def used(frame: pd.DataFrame) -> IngestReport:
    return IngestReport(records_read=len(frame), records_used=len(frame))


def test_invalid_namespaces_are_skipped_with_an_example() -> None:
    frame = chunk(src_namespace=["shop", "../etc", "Shop", "x" * 64])
    report = used(frame)
    out = sanitize_flows(frame, "f.jsonl", report)
    assert list(out["src_namespace"]) == ["shop"]
    assert report.skipped["src namespace is not a valid namespace name"] == 3
    assert "f.jsonl: skipped: src namespace is not a valid namespace name (e.g. '../etc')" in (
        report.messages
    )
    assert is_balanced(report)


def test_strict_makes_an_invalid_namespace_an_error() -> None:
    frame = chunk(dst_namespace=["/root"])
    report = used(frame)
    report.strict = True
    with pytest.raises(InputError, match="dst namespace is not a valid namespace name: '/root'"):
        sanitize_flows(frame, "f", report)


def test_invalid_pod_names_are_dropped_and_noted() -> None:
    frame = chunk(src_pod=["web-1", "../../x", "A" * 300, None])
    report = used(frame)
    out = sanitize_flows(frame, "f", report)
    assert list(out["src_pod"].astype(object).where(out["src_pod"].notna(), None)) == [
        "web-1", None, None, None,
    ]  # fmt: skip
    assert report.notes["invalid pod name dropped"] == 2 and len(out) == 4


def test_invalid_labels_are_left_out_and_an_emptied_pod_is_no_longer_selectable() -> None:
    frame = chunk(src_labels=["app=web,bad key=1", "bad key=1", "app=web"])
    report = used(frame)
    out = sanitize_flows(frame, "f", report)
    assert out["src_labels"].iloc[0] == "app=web"
    assert pd.isna(out["src_labels"].iloc[1]) and out["src_kind"].iloc[1] == "unknown"
    assert out["src_kind"].iloc[0] == "pod" and out["src_kind"].iloc[2] == "pod"
    assert report.notes["invalid labels left out of selectors"] == 2


def test_valid_labels_splits_canonical_text() -> None:
    assert valid_labels("a=1,b=x y,c=") == ("a=1,c=", ("b=x y",))
    assert valid_labels("") == ("", ())
    assert valid_labels("noequals") == ("", ("noequals",))


def test_no_usable_flows_names_files_reasons_and_options() -> None:
    report = IngestReport(files=["a.csv", "b.csv"], records_read=5, records_used=0)
    report.skipped["unknown protocol"] = 2
    report.filtered["denied verdict"] = 3
    with pytest.raises(NoUsableFlowsError) as error:
        require_usable_flows(report)
    text = str(error.value)
    assert text.startswith("no usable flows in a.csv, b.csv: 5 record(s) read")
    assert "2 skipped: unknown protocol" in text and "3 filtered: denied verdict" in text
    assert "--include-denied" in text
    require_usable_flows(IngestReport(records_read=1, records_used=1))  # no error


def test_summary_dict_is_json_ready() -> None:
    report = IngestReport(files=["a"], records_read=2, records_used=1)
    report.skipped["x"] = 1
    data = summary_dict(report, ["w"], policies=3)
    assert data["balanced"] and data["warnings"] == ["w"] and data["policies"] == 3
    assert data["skipped"] == {"x": 1} and data["notes"] == {}


def test_csv_rows_with_empty_numbers_are_counted_not_lost() -> None:
    # Found by fuzzing: with Arrow strings, "" > 65535 is NA, and an NA in the reject mask
    # dropped the row without counting it.
    import io

    from netpolgen.ingest import load_flows

    text = "dst_port,src_port,time,src_ip,dst_ip\n,,,,\n-,,,,\n,,,10.0.0.1,10.0.0.2\n"
    report = IngestReport()
    flows = load_flows(io.BytesIO(text.encode()), "csv", report=report)
    assert len(flows) == 1 and report.records_read == 3
    assert is_balanced(report), report.to_dict()
    assert report.skipped["src endpoint has neither namespace+labels nor IP"] == 1


# --- CSV checks names itself, so its chunks skip this backstop: hold it to that -----------------

_NAMESPACES = ["shop", " shop ", "", "Shop", "../etc", "x" * 64, "db"]
_PODS = ["web-1", " web-1", "", "../../x", "A" * 300, "api.v1", "Bad_Pod"]
_LABELS = ["app=web", " app=web ", "", "app=web,bad key=1", "Bad Key=1", '{"app": "x"}',
           "a=" + "v" * 70, "tier=db,app=db", "==", "app=x,app=y"]  # fmt: skip
_IPS = ["10.0.0.1", " 10.0.0.2", "", "nope", "fe80::1"]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(*(st.sampled_from(p) for p in (_NAMESPACES, _PODS, _LABELS, _IPS) * 2)),
        min_size=1,
        max_size=30,
    ),
    arrow=st.booleans(),
)
def test_csv_chunks_need_no_sanitizing(rows: list[tuple[str, ...]], arrow: bool) -> None:
    import csv as csv_module
    import io

    from netpolgen.ingest import csv

    if arrow and not csv.HAS_ARROW:
        return
    text = io.StringIO()
    writer = csv_module.writer(text, lineterminator="\n")
    writer.writerow(["src_namespace", "src_pod", "src_labels", "src_ip",
                     "dst_namespace", "dst_pod", "dst_labels", "dst_ip", "dst_port"])  # fmt: skip
    writer.writerows([*row, "80"] for row in rows)
    stream = io.BufferedReader(io.BytesIO(text.getvalue().encode()))
    report = IngestReport()
    for flows in csv.read(stream, "f.csv", report, chunk_size=7, arrow=arrow):
        backstop = IngestReport(records_read=len(flows), records_used=len(flows))
        checked = sanitize_flows(flows.copy(), "f.csv", backstop)
        pd.testing.assert_frame_equal(checked, flows)
        assert backstop.messages == [] and not backstop.notes and not backstop.skipped


def test_csv_drops_invalid_pod_names_as_sanitize_does(tmp_path: Path) -> None:
    from netpolgen import load_flows

    path = tmp_path / "f.csv"
    path.write_text(
        "src_namespace,src_pod,src_labels,dst_namespace,dst_labels,dst_port\n"
        "shop,web-1,app=web,shop,app=api,80\n"
        "Shop,../../x,app=web,shop,app=api,80\n"  # skipped for its namespace: not noted
        "shop,../../x,app=web,shop,app=api,80\n"
        "shop,Bad_Pod,app=web,shop,app=api,80\n"
    )
    report = IngestReport()
    flows = load_flows(path, report=report)
    assert list(flows["src_pod"].astype(object).where(flows["src_pod"].notna(), None)) == [
        "web-1", None, None,
    ]  # fmt: skip
    assert report.notes["invalid pod name dropped"] == 2
    assert f"{path}: src_pod is not a valid pod name, dropped: '../../x'" in report.messages
    # The same message and count as the backstop gives on the same rows.
    backstop = IngestReport()
    sanitize_flows(chunk(src_pod=["web-1", "../../x", "Bad_Pod"]), str(path), backstop)
    assert backstop.notes == report.notes
    assert [m for m in report.messages if "pod name" in m] == backstop.messages
