"""The distinct pod endpoints of a flow table, chunk by chunk."""

from __future__ import annotations

import pandas as pd

from netpolgen.flows import validate_flows
from netpolgen.labels import stable_labels


def raw_pod_endpoints(flows: pd.DataFrame) -> pd.DataFrame:
    """Distinct ``(namespace, raw_labels, pod)`` of the pod endpoints of a flow table.

    The reduction a stream keeps per chunk: concatenating the results of several chunks and
    passing them to :func:`finish_pod_endpoints` equals :func:`pod_endpoints` of all the rows.
    """
    sides = []
    for side in ("src", "dst"):
        part = flows.loc[
            flows[f"{side}_kind"] == "pod",
            [f"{side}_namespace", f"{side}_labels", f"{side}_pod"],
        ]
        part.columns = ["namespace", "raw_labels", "pod"]
        sides.append(part.drop_duplicates())
    return pd.concat(sides, ignore_index=True).drop_duplicates()


def finish_pod_endpoints(raw: pd.DataFrame) -> pd.DataFrame:
    """Distinct raw pod endpoints -> namespace, raw and stable labels, pod name."""
    endpoints = raw.drop_duplicates()
    endpoints = endpoints[endpoints["namespace"].notna()]
    endpoints["raw_labels"] = endpoints["raw_labels"].fillna("")
    unique = endpoints["raw_labels"].unique()
    endpoints["labels"] = endpoints["raw_labels"].map({v: stable_labels(v) for v in unique})
    return endpoints.reset_index(drop=True)


def pod_endpoints(flows: pd.DataFrame) -> pd.DataFrame:
    """Distinct pod endpoints of a flow table: namespace, stable labels, pod name."""
    validate_flows(flows)
    return finish_pod_endpoints(raw_pod_endpoints(flows))
