"""The line limiter: long lines become empty lines, everything else passes through unchanged."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.ingest import limits
from netpolgen.ingest.limits import LineLimiter, LineMap


def expected(data: bytes, limit: int) -> tuple[bytes, list[int]]:
    """The reference: split on newlines, blank out the long ones."""
    out, long = [], []
    for number, line in enumerate(data.split(b"\n"), 1):
        if len(line) > limit:
            long.append(number)
            line = b""
        out.append(line)
    return b"\n".join(out), long


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from([b"a", b"bb", b"c" * 7, b"\n", b"\n\n", b"\r\n"]), max_size=40),
    limit=st.integers(1, 9),
    block=st.integers(1, 11),
    buffer=st.integers(1, 13),
)
def test_limiter_matches_the_reference(
    pieces: list[bytes], limit: int, block: int, buffer: int
) -> None:
    data = b"".join(pieces)
    long: list[int] = []
    saved = limits._BLOCK
    limits._BLOCK = block  # tiny read blocks: lines cross every boundary
    try:
        inner = io.BufferedReader(io.BytesIO(data), buffer_size=buffer)
        out = io.BufferedReader(LineLimiter(inner, limit, long.append), buffer_size=buffer).read()
    finally:
        limits._BLOCK = saved
    assert (out, long) == expected(data, limit)


def non_blank_lines(data: bytes) -> list[int]:
    """The reference: the numbers of the lines a CSV parser does not skip."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the end of the last line, not a line of its own
    if lines:
        lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")  # a byte-order mark is not content
    return [number for number, line in enumerate(lines, 1) if line.strip(b" \t\r")]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(
            [b"a", b"bb", b"c" * 7, b"\n", b"\n\n", b"\r\n", b" ", b"\t", b"\xef\xbb\xbf"]
        ),
        max_size=40,
    ),
    limit=st.integers(1, 9),
    block=st.integers(1, 11),
    buffer=st.integers(1, 13),
    forget=st.integers(1, 3),
)
def test_line_map_finds_every_blank_line(
    pieces: list[bytes], limit: int, block: int, buffer: int, forget: int
) -> None:
    data = b"".join(pieces)
    long: list[int] = []
    line_map = LineMap()
    saved = limits._BLOCK
    limits._BLOCK = block
    try:
        inner = io.BufferedReader(io.BytesIO(data), buffer_size=buffer)
        limiter = LineLimiter(inner, limit, long.append, line_map=line_map)
        out = io.BufferedReader(limiter, buffer_size=buffer).read()
    finally:
        limits._BLOCK = saved
    assert (out, long) == expected(data, limit)  # recording changes nothing that passes
    # Looked up in order, forgetting behind every few look-ups, as the CSV reader does.
    wanted = non_blank_lines(out)
    for ordinal, line in enumerate(wanted, 1):
        assert line_map.physical(ordinal) == line
        if ordinal % forget == 0:
            line_map.forget(ordinal + 1)
    assert line_map.physical(len(wanted) + 1) > (wanted[-1] if wanted else 0)


def test_line_map_keeps_runs_not_lines() -> None:
    # A million blank lines are one run: memory does not grow with them.
    line_map = LineMap()
    line_map.add(np.arange(2, 1_000_002, dtype=np.int64))
    line_map.add(np.array([1_000_003, 1_000_005], dtype=np.int64))
    assert sum(len(a) for a in line_map._starts) == 3
    assert [line_map.physical(k) for k in (1, 2, 3, 4)] == [1, 1_000_002, 1_000_004, 1_000_006]
    line_map.forget(3)
    assert sum(len(a) for a in line_map._starts) == 1
    assert [line_map.physical(k) for k in (3, 4)] == [1_000_004, 1_000_006]


def test_memory_stays_bounded_on_a_huge_line() -> None:
    class Endless(io.RawIOBase):
        """40 MiB of one line, then a newline and a short line, produced block by block."""

        def __init__(self) -> None:
            self.left = 40 << 20
            self.tail = b"\nok\n"

        def readable(self) -> bool:
            return True

        def readinto(self, buffer):  # type: ignore[no-untyped-def]
            if self.left:
                size = min(len(buffer), self.left)
                buffer[:size] = b"x" * size
                self.left -= size
                return size
            size = min(len(buffer), len(self.tail))
            buffer[:size] = self.tail[:size]
            self.tail = self.tail[size:]
            return size

    long: list[int] = []
    limiter = LineLimiter(io.BufferedReader(Endless(), 1 << 16), 1 << 20, long.append)
    tracemalloc.start()
    try:
        assert io.BufferedReader(limiter).read() == b"\nok\n"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert long == [1]
    assert peak < 8 << 20, peak  # the line is 40 MiB; the limiter holds about a block at a time


def test_endless_cri_partial_pieces_are_one_skipped_record() -> None:
    from netpolgen.ingest.jsonlines import MAX_JOINED_BYTES, JSONLineError, iter_json_lines

    piece = b"2024-05-01T10:00:00.000000000Z stdout P " + b"x" * 16000 + b"\n"
    count = MAX_JOINED_BYTES // 16000 + 5
    data = piece * count + b'2024-05-01T10:00:00Z stdout F "end"\n{"a": 1}\n'
    values = list(iter_json_lines(io.BytesIO(data)))
    assert [type(v) for _, v in values] == [JSONLineError, dict]
    assert values[0][0] == 1 and values[1] == (count + 2, {"a": 1})


def test_held_long_lines_wait_for_their_release_in_order() -> None:
    # A reader on another thread finds long lines ahead of the rows being checked: held back,
    # they are reported when the checking thread releases them, up to a line, in file order.
    data = b"ok\n" + b"x" * 20 + b"\nok\n" + b"y" * 20 + b"\nok\n" + b"z" * 20 + b"\n"
    long: list[int] = []
    limiter = LineLimiter(io.BufferedReader(io.BytesIO(data)), 5, long.append)
    limiter.hold_long_lines()
    out = io.BufferedReader(limiter).read()
    assert out == b"ok\n\nok\n\nok\n\n" and long == []
    limiter.release_long_lines(before=4)
    assert long == [2]
    limiter.release_long_lines(before=4)
    assert long == [2]
    limiter.release_long_lines()
    assert long == [2, 4, 6]


def test_a_long_header_still_raises_while_lines_are_held() -> None:
    def header_too_long() -> None:
        raise ValueError("header")

    limiter = LineLimiter(io.BufferedReader(io.BytesIO(b"h" * 20 + b"\nok\n")), 5, print,
                          header_too_long)  # fmt: skip
    limiter.hold_long_lines()
    with pytest.raises(ValueError, match="header"):
        io.BufferedReader(limiter).read()
