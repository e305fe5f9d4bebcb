"""Properties of generation over random labelled flows: soundness, tightness, determinism."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen import GenerateOptions, generate, render_yaml
from netpolgen.flows import conform_flows
from netpolgen.labels import canonical_labels, labels_from_canonical
from netpolgen.policy.model import Policy
from netpolgen.verify import Endpoint, is_allowed

NAMESPACES = ("alpha", "beta")
# Small pools, so that workloads share labels (app=shop on several roles, one label set a subset
# of another) and minimal selectors have to work for exactness.
LABEL_SETS = (
    {"app": "shop", "role": "web"},
    {"app": "shop", "role": "db"},
    {"app": "shop"},
    {"app": "cart", "tier": "api"},
    {"k8s-app": "metrics"},
    {"component": "worker", "tier": "api"},
)
PORTS = (53, 80, 443, 5432, 50051)


@st.composite
def pods(draw: st.DrawFn) -> tuple[str, str, str]:
    namespace = draw(st.sampled_from(NAMESPACES))
    labels = dict(draw(st.sampled_from(LABEL_SETS)))
    # Volatile labels differ between replicas and must not split or pin a workload.
    labels["pod-template-hash"] = draw(st.sampled_from(("aaa111", "bbb222")))
    return namespace, canonical_labels(labels), f"pod-{draw(st.integers(0, 3))}"


@st.composite
def flow_tables(draw: st.DrawFn) -> pd.DataFrame:
    rows = []
    for _ in range(draw(st.integers(1, 25))):
        (src_ns, src_labels, src_pod), (dst_ns, dst_labels, dst_pod) = draw(pods()), draw(pods())
        rows.append(
            {
                "src_namespace": src_ns, "src_labels": src_labels, "src_pod": src_pod,
                "dst_namespace": dst_ns, "dst_labels": dst_labels, "dst_pod": dst_pod,
                "src_kind": "pod", "dst_kind": "pod",
                "protocol": draw(st.sampled_from(("TCP", "UDP", "SCTP"))),
                "dst_port": draw(st.sampled_from(PORTS)),
                "verdict": draw(st.sampled_from(("allowed", "denied", "unknown"))),
                "is_reply": draw(st.sampled_from((True, False, None))),
                "count": draw(st.integers(1, 5)),
            }
        )  # fmt: skip
    return conform_flows(pd.DataFrame(rows))


def endpoint(namespace: str, labels: str) -> Endpoint:
    return Endpoint(namespace=namespace, labels=dict(labels_from_canonical(labels)))


def wanted(row: pd.Series) -> bool:
    return row["verdict"] != "denied" and row["is_reply"] is not True


def stable(labels: str) -> str:
    return canonical_labels(
        {k: v for k, v in labels_from_canonical(labels) if k != "pod-template-hash"}
    )


settings.register_profile("netpolgen", deadline=None, max_examples=80)
settings.load_profile("netpolgen")


@given(flow_tables())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_every_wanted_flow_is_allowed(flows: pd.DataFrame) -> None:
    policies = generate(flows, GenerateOptions(allow_dns=False)).policies
    for row in flows.astype(object).to_dict("records"):
        if not wanted(pd.Series(row)):
            continue
        src = endpoint(row["src_namespace"], row["src_labels"])
        dst = endpoint(row["dst_namespace"], row["dst_labels"])
        assert is_allowed(policies, src, dst, row["protocol"], row["dst_port"]), row


@given(flow_tables())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_nothing_unobserved_is_allowed_between_isolated_workloads(flows: pd.DataFrame) -> None:
    policies: list[Policy] = generate(flows, GenerateOptions(allow_dns=False)).policies
    records = flows.astype(object).to_dict("records")
    observed = {
        (r["src_namespace"], stable(r["src_labels"]), r["dst_namespace"], stable(r["dst_labels"]),
         r["protocol"], r["dst_port"])
        for r in records
        if wanted(pd.Series(r))
    }  # fmt: skip
    senders = {(ns, lbl) for ns, lbl, *_ in observed}
    receivers = {(k[2], k[3]) for k in observed}
    workloads = {
        (r[f"{s}_namespace"], stable(r[f"{s}_labels"])) for r in records for s in ("src", "dst")
    }
    for src in workloads:
        for dst in workloads:
            # A pair where neither side is isolated is open by Kubernetes' default (allow all
            # until a policy selects the pod): that is default-deny's job, not this property's.
            if src not in senders and dst not in receivers:
                continue
            for protocol in ("TCP", "UDP", "SCTP"):
                for port in PORTS:
                    if (*src, *dst, protocol, port) in observed:
                        continue
                    assert not is_allowed(
                        policies, endpoint(*src), endpoint(*dst), protocol, port
                    ), (src, dst, protocol, port)


@given(flow_tables(), st.randoms(use_true_random=False))
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=40)
def test_shuffled_input_gives_identical_output(flows: pd.DataFrame, random) -> None:  # type: ignore[no-untyped-def]
    # Reply inference depends on order only through time; these rows carry no src_port.
    order = list(range(len(flows)))
    random.shuffle(order)
    shuffled = flows.iloc[order].reset_index(drop=True)
    assert render_yaml(generate(flows).policies) == render_yaml(generate(shuffled).policies)
