"""The fork server of the worker processes starts before the pipeline is imported, for an input
the Hubble reader will cut into parts (netpolgen._workers.prestart), and only then."""

from __future__ import annotations

from multiprocessing import forkserver
from pathlib import Path

import pytest

from netpolgen import _workers
from netpolgen.engine import local
from netpolgen.ingest import hubble


def test_the_threshold_is_the_readers_two_chunks() -> None:
    assert _workers.HUBBLE_PARALLEL_BYTES == 2 * hubble.CHUNK_BYTES + 1
    assert local.MIN_PARALLEL_BYTES >= _workers.HUBBLE_PARALLEL_BYTES


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    calls: list[bool] = []
    monkeypatch.setattr(forkserver, "ensure_running", lambda: calls.append(True))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    return calls


def _sparse(path: Path, head: bytes, size: int) -> Path:
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)  # sparse: no disk is written
    return path


def test_a_big_json_lines_file_starts_the_server(tmp_path: Path, started: list[bool]) -> None:
    big = _sparse(tmp_path / "big.jsonl", b'{"flow": {}}\n', _workers.HUBBLE_PARALLEL_BYTES)
    assert _workers.prestart(["-", str(tmp_path / "missing"), str(big)], None)
    assert started == [True]


def test_nothing_starts_for_small_files_text_or_one_worker(
    tmp_path: Path, started: list[bool]
) -> None:
    size = _workers.HUBBLE_PARALLEL_BYTES
    small = _sparse(tmp_path / "small.jsonl", b'{"flow": {}}\n', size - 1)
    csv = _sparse(tmp_path / "big.csv", b"time,src_ip\n", size)
    big = _sparse(tmp_path / "big.jsonl", b'{"flow": {}}\n', size)
    assert not _workers.prestart([str(small), str(csv), str(tmp_path)], None)
    assert not _workers.prestart([str(big)], 1)
    assert started == []
