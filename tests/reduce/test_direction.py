"""The direction inference's rules one by one (netpolgen.reduce.direction, issue 15)."""

from __future__ import annotations

import pandas as pd
import pytest

from netpolgen.cluster.inventory import parse_inventory
from netpolgen.flows import TIME_WINDOW_ATTR
from netpolgen.reduce.direction import (
    DirectionTracker,
    InputOutOfOrder,
    in_two_passes,
    mark_directions,
)
from netpolgen.resolve import resolve_flows
from tests.flowkit import flows, inventory, pod

T0 = pd.Timestamp("2026-11-02T10:00:00Z")


def _row(
    src: str, sport: int, dst: str, dport: int, seconds: float = 0, **extra: object
) -> dict[str, object]:
    return {"src": src, "src_port": sport, "dst": dst, "dst_port": dport,
            "time": T0 + pd.Timedelta(seconds=seconds), **extra}  # fmt: skip


def _codes(table: pd.DataFrame) -> list[int]:
    d = mark_directions(table)
    return [-1 if r else int(u) for r, u in zip(d.replies, d.undecided, strict=True)]


def test_the_records_own_word_wins() -> None:
    """(a) AWS tcp-flags SYN-ACK (is_reply true) and SYN (false) are taken as they are, even
    against the order of the records."""
    table = flows(
        _row("10.0.0.2", 80, "10.0.0.1", 40000, 0, is_reply=True),
        _row("10.0.0.1", 40000, "10.0.0.2", 80, 5, is_reply=False),
    )
    assert _codes(table) == [-1, 0]


@pytest.mark.parametrize("window", [0, 660])
def test_many_connections_make_a_server_whatever_the_order(window: int) -> None:
    """(c) 10.0.0.9:53 answers five clients' ports, each port seen in one connection: the
    answers are replies even when listed first and in the same second (one AWS window)."""
    rows = []
    for i in range(5):
        client = f"10.0.1.{i + 1}"
        rows.append(_row("10.0.0.9", 53, client, 40000 + i, 0, protocol="UDP"))
        rows.append(_row(client, 40000 + i, "10.0.0.9", 53, 0, protocol="UDP"))
    table = flows(*rows)
    table.attrs[TIME_WINDOW_ATTR] = window
    assert _codes(table) == [-1, 0] * 5


def test_one_window_decides_nothing_and_no_rule_goes_to_an_ephemeral_port() -> None:
    """(d) for AWS: request and response of one window, response first: neither is decided;
    the record to the ephemeral port is left out (undecided, one window), the other kept."""
    table = flows(
        _row("10.0.0.2", 8080, "10.0.0.1", 40000, 0),
        _row("10.0.0.1", 40000, "10.0.0.2", 8080, 30),
    )
    table.attrs[TIME_WINDOW_ATTR] = 660
    assert _codes(table) == [1, 0]
    # A lone record to an ephemeral port: undecided, one direction only.
    lone = flows(_row("10.0.0.2", 8080, "10.0.0.1", 40000, 0))
    lone.attrs[TIME_WINDOW_ATTR] = 660
    assert _codes(lone) == [2]


def test_records_more_than_a_window_apart_are_ordered_by_time() -> None:
    """(d) the earlier of the two tuples' first records is the request when they lie more than
    the window apart; for points in time (CSV) the earlier row always is."""
    rows = [
        _row("10.0.0.2", 8080, "10.0.0.1", 40000, 2000),
        _row("10.0.0.1", 40000, "10.0.0.2", 8080, 0),
    ]
    table = flows(*rows)
    table.attrs[TIME_WINDOW_ATTR] = 660
    assert _codes(table) == [-1, 0]
    assert _codes(flows(*rows)) == [-1, 0]


def test_the_inventory_names_the_server() -> None:
    """(b) CoreDNS declares 53/UDP: resolving the flows sets is_reply on both records, answer
    first, one window, no other evidence."""
    inv = parse_inventory(
        [inventory(
            pod("kube-system", "coredns-1", {"k8s-app": "kube-dns"}, "10.0.0.21",
                [{"containerPort": 53, "protocol": "UDP"}]),
            pod("shop", "web-1", {"app": "web"}, "10.0.1.21"),
        )]
    )  # fmt: skip
    table = flows(
        _row("10.0.0.21", 53, "10.0.1.21", 48123, 0, protocol="UDP"),
        _row("10.0.1.21", 48123, "10.0.0.21", 53, 0, protocol="UDP"),
    )
    table.attrs[TIME_WINDOW_ATTR] = 660
    resolved = resolve_flows(table, inv)
    assert resolved["is_reply"].tolist() == [True, False]
    assert _codes(resolved) == [-1, 0]


def test_a_connection_denied_at_the_other_end_is_denied() -> None:
    """AWS logs a refused connection ACCEPT at the client's ENI, REJECT at the server's: the
    accepted record of that 5-tuple within a window of the rejected one is denied too; the same
    5-tuple an hour later is another connection."""
    table = flows(
        _row("10.0.0.1", 40000, "10.0.0.2", 80, 0, verdict="allowed"),
        _row("10.0.0.1", 40000, "10.0.0.2", 80, 40, verdict="denied"),
        _row("10.0.0.1", 40000, "10.0.0.2", 80, 3600, verdict="allowed"),
    )
    table.attrs[TIME_WINDOW_ATTR] = 660
    elsewhere = mark_directions(table).denied_elsewhere
    assert elsewhere is not None and elsewhere.tolist() == [True, False, False]


def test_a_late_denial_is_noticed_and_the_second_pass_is_exact() -> None:
    """Streamed: the accepted record comes in one chunk, the rejected one in the next; the
    stream notices (InputOutOfOrder) and the two passes give the whole table's answer."""
    table = flows(
        _row("10.0.0.1", 40000, "10.0.0.2", 80, 0, verdict="allowed"),
        _row("10.0.0.1", 40000, "10.0.0.2", 80, 40, verdict="denied"),
    )
    table.attrs[TIME_WINDOW_ATTR] = 660
    chunks = [table.iloc[[0]].reset_index(drop=True), table.iloc[[1]].reset_index(drop=True)]
    tracker = DirectionTracker()
    tracker.mark(chunks[0], 0)
    with pytest.raises(InputOutOfOrder):
        tracker.mark(chunks[1], 1)

    def run(tracker: DirectionTracker) -> list[bool]:
        out = []
        for i, chunk in enumerate(chunks):
            elsewhere = tracker.mark(chunk, i).denied_elsewhere
            assert elsewhere is not None
            out += elsewhere.tolist()
        tracker.finish()
        return out

    def collect(tracker: DirectionTracker) -> None:
        for i, chunk in enumerate(chunks):
            tracker.mark(chunk, i)

    assert in_two_passes(run, collect) == [True, False]


def test_counts_that_grow_later_are_noticed() -> None:
    """(c) decided along the way is checked against the complete counts at the end: a server
    whose clients come later makes the stream read the input twice."""
    first = flows(_row("10.0.0.9", 53, "10.0.1.1", 40000, 0, protocol="UDP"))
    later = flows(
        *[_row(f"10.0.1.{i}", 40000 + i, "10.0.0.9", 53, 1, protocol="UDP") for i in range(2, 6)]
    )
    tracker = DirectionTracker()
    tracker.mark(first, 0)
    tracker.mark(later, 1)
    with pytest.raises(InputOutOfOrder):
        tracker.finish()


@pytest.mark.parametrize("split", [False, True])
def test_decisions_that_hold_need_no_second_pass(split: bool) -> None:
    """Streamed input whose decisions the complete counts confirm ends without a second pass:
    both directions of each connection decided by (c) in one chunk (a request and its reply
    share one entry of the state), or the replies in a later chunk. finish() compares every
    decision with the final counts; it must find each one's two ends (a second pass would
    give the same answers, so only this test sees a wrong end)."""
    rows = []
    for i in range(6):
        client = f"10.0.1.{i + 1}"
        rows.append(_row(client, 40000 + i, "10.0.0.9", 53, i, protocol="UDP"))
        rows.append(_row("10.0.0.9", 53, client, 40000 + i, i + 0.5, protocol="UDP"))
    table = flows(*rows)
    tracker = DirectionTracker()
    if split:  # the clients' requests first, the server's answers in the next chunk
        requests, answers = table.iloc[0::2], table.iloc[1::2]
        codes = [
            tracker.mark(part.reset_index(drop=True), offset).replies.tolist()
            for part, offset in ((requests, 0), (answers, 6))
        ]
        assert codes == [[False] * 6, [True] * 6]
    else:
        assert tracker.mark(table, 0).replies.tolist() == [False, True] * 6
    tracker.finish()  # no InputOutOfOrder
