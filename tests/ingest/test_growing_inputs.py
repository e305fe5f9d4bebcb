"""Growing and rotating inputs (issue 21): a log still being written is read up to the size it
had when the run started, and the report says so; a file truncated under the reader is an
error naming it. (``hubble observe -o json > flows.jsonl`` keeps appending; ``logrotate``'s
``copytruncate`` empties a file in place.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from netpolgen.errors import InputError
from netpolgen.ingest import iter_flows, load_flows
from netpolgen.ingest.report import IngestReport
from tests.conftest import SAMPLE_FLOWS


def test_a_growing_file_is_read_up_to_its_size_at_the_start(tmp_path: Path) -> None:
    lines = (SAMPLE_FLOWS / "three-tier.csv").read_bytes().splitlines(keepends=True)
    path = tmp_path / "flows.csv"
    path.write_bytes(b"".join(lines))
    whole = load_flows(path)
    report = IngestReport()
    chunks = iter_flows([path], report=report, chunk_size=2)
    first = next(chunks)  # the file is open: now it grows
    with path.open("ab") as log:
        log.write(b"".join(lines[1:]) * 3)
    rows = len(first) + sum(len(chunk) for chunk in chunks)
    assert rows == len(whole)
    assert report.records_read == len(lines) - 1
    assert any("grew by" in m and "read up to its size at the start" in m for m in report.messages)


def test_a_file_truncated_under_the_reader_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    header = b"src_namespace,src_labels,dst_namespace,dst_labels,dst_port\n"
    path.write_bytes(header + b"shop,app=web,shop,app=api,8080\n" * 200_000)
    chunks = iter_flows([path], chunk_size=1000)
    next(chunks)
    path.write_bytes(b"")  # copytruncate
    with pytest.raises(InputError, match="shrank while it was read") as caught:
        for _ in chunks:
            pass
    assert caught.value.source == str(path)


def test_a_fifo_is_read_to_its_end(tmp_path: Path) -> None:
    import os
    import threading

    data = (SAMPLE_FLOWS / "three-tier.csv").read_bytes()
    fifo = tmp_path / "flows.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    from_fifo = load_flows(fifo)
    writer.join()
    assert len(from_fifo) == len(load_flows(SAMPLE_FLOWS / "three-tier.csv"))
