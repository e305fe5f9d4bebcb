"""Rows extracted by a Hubble reader -> a conformed flow table, column by column."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from netpolgen.flows import ENDPOINT_KINDS, FLOW_COLUMNS, VERDICTS, conform_flows
from netpolgen.ingest.fields import drop_noise, text_to_time
from netpolgen.ingest.hubble.endpoints import EndpointTable
from netpolgen.ingest.hubble.general import COLUMNS
from netpolgen.ingest.report import IngestReport

KIND_CODES = {kind: code for code, kind in enumerate(ENDPOINT_KINDS)}


def build(
    rows: list[tuple[Any, ...]], source: str, report: IngestReport, table: EndpointTable
) -> pd.DataFrame:
    """Rows of one reader (endpoints coded in ``table``) -> a conformed flow table, before
    merging observations.

    Column by column (vectorised): records whose time does not parse are skipped, then Cilium
    health checks and datapath drops are filtered, each counted in ``report``.
    """
    if not rows:
        return conform_flows(pd.DataFrame({name: [] for name in FLOW_COLUMNS}))
    columns = dict(zip(COLUMNS, zip(*rows, strict=True), strict=True))
    count = len(rows)
    time_text = pd.Series(columns["time"], dtype=object)
    time = text_to_time(time_text)
    bad_time = (time.isna() & time_text.notna()).to_numpy()
    if bad_time.any():
        first = columns["line"][int(np.flatnonzero(bad_time)[0])]
        report.skip("time is not RFC 3339", source=source, line=first, count=int(bad_time.sum()))
    report.records_used += count - int(bad_time.sum())

    src = np.fromiter(columns["src_endpoint"], np.int64, count)
    dst = np.fromiter(columns["dst_endpoint"], np.int64, count)
    kinds = np.array([endpoint[3] for endpoint in table.endpoints], dtype=object)
    health_endpoint = kinds == "health"
    health = (health_endpoint[src] | health_endpoint[dst]) & ~bad_time
    if health.any():
        report.filter("Cilium health check", int(health.sum()))
    drop = np.fromiter(columns["drop"], bool, count)
    noise = drop & ~health & ~bad_time
    if noise.any():
        report.filter("dropped by the datapath, not by policy", int(noise.sum()))
    kept = np.flatnonzero(~(bad_time | health | drop))
    src, dst = src[kept], dst[kept]

    def objects(name: str) -> np.ndarray:
        return np.array(columns[name], dtype=object)[kept]

    def ports(name: str) -> pd.arrays.IntegerArray:
        values = np.fromiter(columns[name], np.int32, count)[kept]
        return pd.arrays.IntegerArray(values.astype(np.uint16), values == 0)

    frame: dict[str, Any] = {
        # Taken as datetimes: to_numpy() of tz-aware times makes one Timestamp object a row.
        "time": time.array.take(kept) if len(kept) < count else time.array,
        "src_ip": pd.array(objects("src_ip"), dtype="string"),
        "dst_ip": pd.array(objects("dst_ip"), dtype="string"),
        "src_port": ports("src_port"),
        "dst_port": ports("dst_port"),
        "protocol": objects("protocol"),
    }
    # Endpoint columns: the distinct endpoints' values, taken by code.
    for position, field in enumerate(("namespace", "pod", "labels")):
        values = pd.array([endpoint[position] for endpoint in table.endpoints], dtype="string")
        frame[f"src_{field}"] = values.take(src)
        frame[f"dst_{field}"] = values.take(dst)
    kind_codes = np.array([KIND_CODES.get(kind, -1) for kind in kinds], dtype=np.int8)
    for side, codes in (("src", src), ("dst", dst)):
        frame[f"{side}_kind"] = pd.Categorical.from_codes(
            kind_codes[codes], categories=pd.Index(ENDPOINT_KINDS)
        )
    frame["verdict"] = pd.Categorical(objects("verdict"), categories=list(VERDICTS))
    frame["is_reply"] = pd.array(objects("is_reply"), dtype="boolean")
    table.forget()
    return drop_noise(conform_flows(pd.DataFrame(frame)), report)
