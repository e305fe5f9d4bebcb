"""A whole-table oracle for direction inference, written from the rules, not from the code.

Plain Python over rows (dicts and tuples), for tests only. The rules (netpolgen.reduce.direction's
docstring, issue 15): a record's own ``is_reply`` wins; else (c) an end reached by at least
MIN_FAN distinct connections and FAN_RATIO times as many as the other end is the server;
else (d) for points in time the later of a tuple and its reverse (time, then position; a
missing time compares positions only) is the reply, and for windowed records the tuples'
first records must lie more than the window apart, else the record is undecided when its
destination port is ephemeral (and a request otherwise).

Returns one code per row: -1 reply, 0 request, 1 undecided (one window), 2 undecided (one way).
"""

from __future__ import annotations

from typing import Any, cast

import pandas as pd

from netpolgen.flows import TIME_WINDOW_ATTR
from netpolgen.reduce.direction import EPHEMERAL_LOW, FAN_RATIO, MIN_FAN


def _identity(row: dict[str, Any], side: str) -> str:
    for name in ("ip", "pod"):
        value = row[f"{side}_{name}"]
        if not pd.isna(value):
            return str(value)
    namespace, labels = row[f"{side}_namespace"], row[f"{side}_labels"]
    return (
        ("" if pd.isna(namespace) else str(namespace))
        + "/"
        + ("" if pd.isna(labels) else str(labels))
    )


def oracle_directions(flows: pd.DataFrame) -> list[int]:
    window = int(flows.attrs.get(TIME_WINDOW_ATTR, 0) * 1_000_000_000)
    records = cast(list[dict[str, Any]], flows.to_dict("records"))
    tuples: list[tuple[Any, ...] | None] = []
    times: list[int | None] = []
    for row in records:
        times.append(None if pd.isna(row["time"]) else pd.Timestamp(row["time"]).value)
        if pd.isna(row["src_port"]) or pd.isna(row["dst_port"]):
            tuples.append(None)
            continue
        protocol = "\x00" if pd.isna(row["protocol"]) else str(row["protocol"])
        tuples.append(
            (_identity(row, "src"), int(row["src_port"]), _identity(row, "dst"),
             int(row["dst_port"]), protocol)
        )  # fmt: skip
    # The earliest row of each tuple: by time (a missing one first), then position.
    earliest: dict[tuple[Any, ...], tuple[float, int, int | None]] = {}
    for i, t in enumerate(tuples):
        if t is None:
            continue
        rank = (float("-inf") if times[i] is None else float(times[i]), i, times[i])  # type: ignore[arg-type]
        if t not in earliest or rank[:2] < earliest[t][:2]:
            earliest[t] = rank
    # Distinct connections (a tuple and its reverse are one) per end.
    fan: dict[tuple[Any, ...], int] = {}
    connections = {frozenset([t, (t[2], t[3], t[0], t[1], t[4])]) for t in earliest}
    for connection in connections:
        t = next(iter(connection))
        for end in ((t[0], t[1], t[4]), (t[2], t[3], t[4])):
            fan[end] = fan.get(end, 0) + 1
    codes = []
    for i, row in enumerate(records):
        given = row["is_reply"]
        t = tuples[i]
        if not pd.isna(given):
            codes.append(-1 if given else 0)
            continue
        if t is None:
            codes.append(0)
            continue
        fx, fy = fan[(t[0], t[1], t[4])], fan[(t[2], t[3], t[4])]
        if fy >= MIN_FAN and fy >= FAN_RATIO * fx:
            codes.append(0)
            continue
        if fx >= MIN_FAN and fx >= FAN_RATIO * fy:
            codes.append(-1)
            continue
        reverse = earliest.get((t[2], t[3], t[0], t[1], t[4]))
        if window == 0:
            if reverse is None:
                codes.append(0)
                continue
            _, order, t_e = reverse
            now = times[i]
            if t_e is not None and now is not None:
                reply = t_e < now or (t_e == now and order < i)
            else:
                reply = order < i
            codes.append(-1 if reply else 0)
            continue
        ephemeral = t[3] >= EPHEMERAL_LOW
        own_time = earliest[t][2]
        if reverse is not None and reverse[2] is not None and own_time is not None:
            if reverse[2] < own_time - window:
                codes.append(-1)
                continue
            if own_time < reverse[2] - window:
                codes.append(0)
                continue
        if not ephemeral:
            codes.append(0)
        else:
            codes.append(1 if reverse is not None else 2)
    return codes
