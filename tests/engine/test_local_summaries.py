"""CSV parts parsed and summarised in worker processes give what one process gives."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import netpolgen.engine.local as parallel
from netpolgen.engine.parts import plain_quotes
from netpolgen.errors import InputError
from netpolgen.generator import generate_from_files
from netpolgen.ingest import hubble
from netpolgen.ingest.report import IngestReport
from netpolgen.policy.from_reduction import GenerateOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate  # noqa: E402


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", 20_000)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(hubble, "CHUNK_BYTES", 20_000)


def same_result(path: Path, *, chunk_size: int = 50, **kwargs: object) -> None:
    one = generate_from_files([path], workers=1, chunk_size=chunk_size, **kwargs)  # type: ignore[arg-type]
    two = generate_from_files([path], workers=2, chunk_size=chunk_size, **kwargs)  # type: ignore[arg-type]
    assert two.to_yaml() == one.to_yaml()
    assert two.report.to_dict() == one.report.to_dict()
    assert two.edges.equals(one.edges) and two.endpoints.equals(one.endpoints)
    assert two.warnings == one.warnings


def test_benchmark_csv_in_parts_equals_one_process(tmp_path: Path, small_parts: None) -> None:
    path = generate.write("csv", 3000, tmp_path / "flows.csv")
    plan = parallel._plan(path, "auto", 2, summarize=True)
    assert plan is not None and len(plan.ranges) > 20
    assert parallel._plan(path, "auto", 2) is None  # verify reads CSV in one process
    same_result(path)
    same_result(path, options=GenerateOptions(include_denied=True, min_count=3))


def test_bad_rows_are_counted_and_named_as_in_one_process(
    tmp_path: Path, small_parts: None
) -> None:
    path = generate.write("csv", 2000, tmp_path / "flows.csv")
    lines = path.read_text().splitlines(keepends=True)
    for number in (40, 777, 1500):  # a port that is not one, deep inside different parts
        fields = lines[number].split(",")
        lines[number] = lines[number].replace(f",{fields[-6]},", ",eighty,", 1)
    path.write_text("".join(lines))
    one = generate_from_files([path], workers=1, chunk_size=50)
    two = generate_from_files([path], workers=2, chunk_size=50)
    assert two.report.to_dict() == one.report.to_dict()
    assert sum(one.report.skipped.values()) == 3
    assert two.report.messages == one.report.messages
    assert any(":41: skipped" in message for message in two.report.messages)


def test_strict_names_the_first_bad_line(tmp_path: Path, small_parts: None) -> None:
    path = generate.write("csv", 2000, tmp_path / "flows.csv")
    lines = path.read_text().splitlines(keepends=True)
    protocol = lines[1234].split(",")[-5]
    lines[1234] = lines[1234].replace(f",{protocol},", ",XTP,", 1)
    path.write_text("".join(lines))
    errors = []
    for workers in (1, 2):
        with pytest.raises(InputError) as caught:
            generate_from_files([path], workers=workers, chunk_size=50, strict=True)
        errors.append((caught.value.line, caught.value.message))
    assert errors[0] == errors[1] and errors[0][0] == 1235


def test_a_cut_inside_a_quoted_cell_falls_back_to_one_process(
    tmp_path: Path, small_parts: None
) -> None:
    path = generate.write("csv", 3000, tmp_path / "flows.csv")
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    # Pod names that hold a newline or a doubled quote, in a quoted cell, in the middle.
    for number in range(1000, 1400, 7):
        name = lines[number].split(",")[2]
        lines[number] = lines[number].replace(f",{name},", f',"{name}\nx""y",', 1)
    path.write_text("".join(lines))
    plan = parallel._plan(path, "auto", 2, summarize=True)
    assert plan is not None
    data = path.read_bytes()
    assert not all(plain_quotes(data[a:b]) for a, b in plan.ranges)
    same_result(path)


def test_inventory_resolution_in_workers(tmp_path: Path, small_parts: None) -> None:
    cluster = generate.make_cluster()
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(generate.inventory(cluster)))
    path = tmp_path / "ips.csv"
    rows = ["time,src_ip,src_port,dst_ip,dst_port,protocol\n"]
    for line in generate.aws_lines(cluster, 2500, 3):
        fields = line.split()
        if fields[0] == "version" or len(fields) < 11:
            continue
        rows.append(",".join([fields[10], fields[3], fields[5], fields[4], fields[6], fields[7]]))
        rows[-1] += "\n"
    path.write_text("".join(rows))
    same_result(path, inventory=[inventory])
    two = generate_from_files([path], workers=2, chunk_size=50, inventory=[inventory])
    assert two.policies


@pytest.mark.parametrize(
    ("data", "plain"),
    [
        (b"a,b\n1,2\n", True),
        (b'a,"x,y"\n"p",2\n', True),
        (b'a,"x\ny"\n', True),  # a whole quoted cell with a newline: the pairs still match
        (b'a,"x\n', False),  # cut inside a cell
        (b'y",2\n', False),  # started inside a cell
        (b'a,"say ""hi"""\n', False),  # doubled quotes: not followed
        (b'a,x"y\n', False),  # a quote inside a value
        (b"", True),
    ],
)
def test_plain_quotes(data: bytes, plain: bool) -> None:
    assert plain_quotes(data) is plain


def test_a_copied_resolver_keeps_its_own_answer_cache() -> None:
    import copy

    import pandas as pd

    from netpolgen.cluster.inventory import load_inventory
    from netpolgen.flows import conform_flows
    from netpolgen.resolve import Resolver

    cluster = generate.make_cluster()
    resolver = Resolver(load_inventory([_inventory_file(cluster)]))
    ips = sorted({pod.ip for pods in cluster.pods.values() for pod in pods})[:6]
    time = pd.Timestamp("2026-01-01T00:00:01", tz="UTC")

    def flows(addresses: list[str]) -> pd.DataFrame:
        return conform_flows(
            pd.DataFrame({"src_ip": addresses, "dst_ip": addresses, "dst_port": 80, "time": time})
        )

    first = copy.copy(resolver)
    first(flows(ips[:3]))  # grows the first copy's cache
    second = copy.copy(resolver)
    # It used to find the first copy's rows in the shared index, and look them up in a table
    # it did not have.
    out = second(flows(ips[1:]))
    expected = Resolver(resolver.inventory)(flows(ips[1:]))
    pd.testing.assert_frame_equal(out, expected)


def _inventory_file(cluster: object) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "inventory.json"
    path.write_text(json.dumps(generate.inventory(cluster)))  # type: ignore[arg-type]
    return path


def test_csv_parts_only_when_workers_are_asked_for(
    tmp_path: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = generate.write("csv", 1000, tmp_path / "flows.csv")
    planned: list[bool] = []
    original = parallel._plan

    def spy(*args: object, **kwargs: object) -> object:
        plan = original(*args, **kwargs)  # type: ignore[arg-type]
        planned.append(plan is not None)
        return plan

    monkeypatch.setattr(parallel, "_plan", spy)
    default = generate_from_files([path], workers=None, chunk_size=50)
    assert planned == [False]  # one per core: CSV stays in this process (memory)
    asked = generate_from_files([path], workers=2, chunk_size=50)
    assert planned == [False, True]
    assert asked.to_yaml() == default.to_yaml()


@pytest.mark.parametrize("irregular_quotes_first", [False, True])
def test_an_error_deep_in_a_part_names_the_line_of_the_whole_file(
    tmp_path: Path, small_parts: None, irregular_quotes_first: bool
) -> None:
    path = generate.write("csv", 2000, tmp_path / "flows.csv")
    lines = path.read_bytes().splitlines(keepends=True)
    if irregular_quotes_first:  # the parts from here on are read in the main process
        lines[300] = lines[300].replace(b",", b',"x""y",', 1)
    lines[1500] = lines[1500].replace(b"shop", b"sh\xffop", 1)  # not UTF-8
    path.write_bytes(b"".join(lines))
    errors = []
    for workers in (1, 2):
        with pytest.raises(InputError) as caught:
            generate_from_files([path], workers=workers, chunk_size=50)
        errors.append((caught.value.line, caught.value.message))
    assert errors[1] == errors[0]
    assert errors[0][1].startswith("not UTF-8")


def test_a_file_of_unusable_records_says_so_as_in_one_process(
    tmp_path: Path, small_parts: None
) -> None:
    path = generate.write("csv", 600, tmp_path / "flows.csv")
    text = path.read_text().replace(",TCP,", ",XTP,").replace(",UDP,", ",XTP,")
    path.write_text(text)
    reports = []
    for workers in (1, 2):
        report = IngestReport()
        read = parallel.chunk_reader([path], "auto", chunk_size=50, workers=workers, summarize=True)
        list(read(report))
        reports.append(report)
    assert reports[1].to_dict() == reports[0].to_dict()
    assert any("none of its" in message for message in reports[1].messages)


@pytest.mark.parametrize(
    "variant", ["crlf", "bom", "no-final-newline", "quoted-header", "blank-lines", "long-line"]
)
def test_odd_csv_files_in_parts_equal_one_process(
    tmp_path: Path, small_parts: None, variant: str
) -> None:
    path = generate.write("csv", 1500, tmp_path / "flows.csv")
    data = path.read_bytes()
    if variant == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif variant == "bom":
        data = b"\xef\xbb\xbf" + data
    elif variant == "no-final-newline":
        data = data.rstrip(b"\n")
    elif variant == "quoted-header":
        header, rest = data.split(b"\n", 1)
        data = b",".join(b'"' + name + b'"' for name in header.split(b",")) + b"\n" + rest
    elif variant == "blank-lines":
        lines = data.split(b"\n")
        data = b"\n".join(line + (b"\n" if i % 97 == 3 else b"") for i, line in enumerate(lines))
    elif variant == "long-line":
        lines = data.split(b"\n")
        lines[700] = lines[700] + b"," + b"x" * 3000
        data = b"\n".join(lines)
    path.write_bytes(data)
    assert parallel._plan(path, "auto", 2, summarize=True) is not None  # cut into parts
    one = generate_from_files([path], workers=1, chunk_size=50, max_line_bytes=2048)
    two = generate_from_files([path], workers=2, chunk_size=50, max_line_bytes=2048)
    assert two.to_yaml() == one.to_yaml()
    assert two.report.to_dict() == one.report.to_dict()
    assert two.report.messages == one.report.messages


def test_a_worker_that_dies_is_a_clear_error() -> None:
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from netpolgen.engine.processes import outcome
    from netpolgen.errors import NetpolgenError

    future: Future[object] = Future()
    future.set_exception(BrokenProcessPool("A child process terminated abruptly"))
    with pytest.raises(NetpolgenError) as caught:
        outcome(future, "flows.csv")
    assert "flows.csv" in caught.value.message and "--workers 1" in str(caught.value.hint)
    done: Future[object] = Future()
    done.set_result(42)
    assert outcome(done, "flows.csv") == 42
