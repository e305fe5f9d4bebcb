"""Properties of generation over random flows: soundness, tightness, determinism, idempotence,
and output that is valid Kubernetes for any label value the logs carry."""

from __future__ import annotations

import csv
import io
import json
import re

import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen import GenerateOptions, generate, render_yaml
from netpolgen.flows import conform_flows
from netpolgen.labels import canonical_labels, labels_from_canonical
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import Endpoint, is_allowed

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


# --- idempotence (issue 8) ----------------------------------------------------------------------


def _without_evidence(policies: list[Policy]) -> list[dict[str, object]]:
    """Manifests without annotations: counts and times are evidence, not policy."""
    manifests = []
    for policy in sorted(policies, key=lambda p: (p.namespace, p.name)):
        manifest = policy.to_manifest()
        manifest["metadata"].pop("annotations", None)
        manifests.append(manifest)
    return manifests


def _isolated(policies: list[Policy], pod: Endpoint, direction: str) -> bool:
    """Whether a policy of ``direction`` (Ingress or Egress) selects ``pod``."""
    return any(
        p.namespace == pod.namespace and direction in p.policy_types
        and p.pod_selector.matches(pod.labels)
        for p in policies
    )  # fmt: skip


def allowed_flows(policies: list[Policy], flows: pd.DataFrame) -> pd.DataFrame:
    """One flow per pair of endpoints of ``flows`` and port that ``policies`` explicitly allow.

    "Explicitly": an isolated side's policy admits it (a pair where neither side is isolated is
    open by Kubernetes' default, which says nothing about the output). The denied and reply
    flows of ``flows`` are kept as they are, so that the second run knows the same pods
    (selectors are minimal among the pods seen), while such flows never become rules.
    """
    records = flows.astype(object).to_dict("records")
    endpoints = sorted(
        {(r[f"{s}_namespace"], r[f"{s}_labels"], r[f"{s}_pod"]) for r in records
         for s in ("src", "dst")}
    )  # fmt: skip
    rows = []
    for src in endpoints:
        for dst in endpoints:
            source, target = endpoint(src[0], src[1]), endpoint(dst[0], dst[1])
            if not (
                _isolated(policies, source, "Egress") or _isolated(policies, target, "Ingress")
            ):
                continue
            for protocol in ("TCP", "UDP", "SCTP"):
                for port in PORTS:
                    if is_allowed(policies, source, target, protocol, port):
                        rows.append({
                            "src_namespace": src[0], "src_labels": src[1], "src_pod": src[2],
                            "dst_namespace": dst[0], "dst_labels": dst[1], "dst_pod": dst[2],
                            "src_kind": "pod", "dst_kind": "pod", "protocol": protocol,
                            "dst_port": port, "verdict": "allowed", "is_reply": False,
                        })  # fmt: skip
    unwanted = (flows["verdict"] == "denied") | (flows["is_reply"] == True)  # noqa: E712
    kept = flows[unwanted.fillna(False).astype(bool)]
    return conform_flows(pd.concat([conform_flows(pd.DataFrame(rows)), kept], ignore_index=True))


@given(flow_tables())
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=30)
def test_generating_from_what_the_output_allows_gives_the_same_policies(
    flows: pd.DataFrame,
) -> None:
    options = GenerateOptions(allow_dns=False)
    first = generate(flows, options).policies
    again = generate(allowed_flows(first, flows), options).policies
    assert _without_evidence(again) == _without_evidence(first)


# --- any label value from the logs: valid YAML, valid Kubernetes, the same strings back --------

YAML11_SPECIALS = (
    "y", "Y", "n", "N", "yes", "no", "on", "off", "true", "False", "null", "NULL", "012", "0o17",
    "1e3", "1E-3", "0x1F", "0b101", "1_000", "190:20:30", ".inf", "-.5", "+1", "~", "=", "<<",
    "1.0", "0", "00", "123456789012345678901234567890",
)  # fmt: skip
LABEL_VALUES = st.one_of(
    st.sampled_from(YAML11_SPECIALS),
    st.sampled_from(["a: b", "#x", "{x}", "[x]", "a\nb", "a,b", "x=y", "'q'", '"q"', "é", " x"]),
    st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?", fullmatch=True),
    st.text(max_size=8),
)


class Yaml11Loader(yaml.SafeLoader):
    """PyYAML plus the YAML 1.1 scalars it does not resolve but go-yaml (kubectl) does."""


Yaml11Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN")
)
Yaml11Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)  # fmt: skip


@given(st.lists(st.tuples(st.sampled_from(["app", "tier", "x.io/odd", "Bad Key"]), LABEL_VALUES),
                min_size=1, max_size=4))  # fmt: skip
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
def test_odd_label_values_are_valid_kubernetes_and_read_back(
    labels: list[tuple[str, str]],
) -> None:
    from netpolgen.ingest import load_flows
    from netpolgen.ingest.report import IngestReport
    from netpolgen.labels import is_valid_label_key, is_valid_label_value
    from tests.k8s import assert_valid_policies

    source = dict(labels)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["src_namespace", "src_labels", "dst_namespace", "dst_labels", "dst_port"])
    writer.writerow(["alpha", json.dumps(source), "alpha", json.dumps({"app": "db"}), "5432"])
    report = IngestReport()
    flows = load_flows(io.BytesIO(text.getvalue().encode()), report=report)
    valid = {k: v for k, v in source.items() if is_valid_label_key(k) and is_valid_label_value(v)}
    if len(valid) < len(source):
        assert any("invalid label(s) left out" in m for m in report.messages)
    if not valid:
        return  # no identity left for the source: nothing to check in selectors
    output = render_yaml(generate(flows, GenerateOptions(allow_dns=False)).policies)
    assert output and assert_valid_policies(output)
    for document in yaml.load_all(output, Loader=Yaml11Loader):
        for selector in _all_match_labels(document):
            for key, value in selector.items():
                assert isinstance(value, str), (key, value)
                assert key in valid or key == "app", key
                if key in valid:
                    assert value == valid[key] or (key, value) == ("app", "db")


def _all_match_labels(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "matchLabels" and isinstance(value, dict):
                found.append(value)
            else:
                found.extend(_all_match_labels(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_all_match_labels(item))
    return found


# --- random clusters through the inventory path (addresses only, resolved by the inventory) ----


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[object], pd.DataFrame]:
    """Random Deployments' pods (IPs in node-1's pod CIDR) and address-only flows between them."""
    from tests.cluster.fixtures import Pod

    pods: list[Pod] = []
    for index in range(draw(st.integers(2, 6))):
        namespace = draw(st.sampled_from(("shop", "monitoring")))
        labels = dict(draw(st.sampled_from(LABEL_SETS)))
        template = f"{index:03d}abc"
        # One Deployment per index: its own name (the owner chain names the workload), its
        # own template hash, one label set for all its replicas.
        name = labels.get("app", labels.get("k8s-app", labels.get("component", "w"))) + str(index)
        for replica in range(draw(st.integers(1, 2))):
            pods.append(Pod(
                namespace, f"{name}-{template}-{replica}xyzq", f"10.1.0.{len(pods) + 10}",
                tuple(sorted({**labels, "pod-template-hash": template}.items())), "node-1",
                owner=("ReplicaSet", f"{name}-{template}"),
            ))  # fmt: skip
    rows = []
    for number in range(draw(st.integers(1, 12))):
        src, dst = draw(st.sampled_from(pods)), draw(st.sampled_from(pods))
        rows.append({
            "time": f"2024-05-01T10:{number:02d}:00Z", "src_ip": src.ip, "dst_ip": dst.ip,
            "src_port": 40000 + number, "dst_port": draw(st.sampled_from(PORTS)),
            "protocol": draw(st.sampled_from(("TCP", "UDP"))), "is_reply": "false",
        })  # fmt: skip
    return list(pods), pd.DataFrame(rows)


@given(clusters())
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=25)
def test_random_clusters_through_the_inventory_are_sound_and_tight(
    cluster_and_flows: tuple[list[object], pd.DataFrame],
) -> None:
    from netpolgen.cluster.inventory import parse_inventory
    from netpolgen.ingest import load_flows
    from netpolgen.ingest.report import IngestReport
    from netpolgen.resolve import resolve_flows
    from tests.cluster.fixtures import Pod, inventory_document
    from tests.k8s import assert_valid_policies

    pods, table = cluster_and_flows
    typed = [p for p in pods if isinstance(p, Pod)]
    inventory = parse_inventory([inventory_document(tuple(typed))])
    report = IngestReport()
    flows = load_flows(io.BytesIO(table.to_csv(index=False).encode()), report=report)
    flows = resolve_flows(flows, inventory, report=report)
    result = generate(flows, GenerateOptions(allow_dns=False), report=report, inventory=inventory)
    assert_valid_policies(render_yaml(result.policies))
    by_ip = {p.ip: p for p in typed}

    def end(pod: Pod) -> Endpoint:
        return Endpoint(namespace=pod.namespace, labels=dict(pod.labels))

    observed = set()
    for row in table.to_dict("records"):
        src, dst = by_ip[row["src_ip"]], by_ip[row["dst_ip"]]
        assert is_allowed(result.policies, end(src), end(dst), row["protocol"], row["dst_port"])
        observed.add((src.namespace, stable(src.label_text), dst.namespace,
                      stable(dst.label_text), row["protocol"], row["dst_port"]))  # fmt: skip
    senders = {(o[0], o[1]) for o in observed}
    receivers = {(o[2], o[3]) for o in observed}
    for src in typed:
        for dst in typed:
            src_key = (src.namespace, stable(src.label_text))
            dst_key = (dst.namespace, stable(dst.label_text))
            if src_key not in senders and dst_key not in receivers:
                continue  # neither side isolated: open by Kubernetes' default
            for protocol in ("TCP", "UDP"):
                for port in PORTS:
                    if (*src_key, *dst_key, protocol, port) not in observed:
                        assert not is_allowed(
                            result.policies, end(src), end(dst), protocol, port
                        ), (src.name, dst.name, protocol, port)


# --- determinism through the readers: shuffled lines of a real-format file, same bytes out ------


@given(
    fmt=st.sampled_from(("csv", "hubble", "aws-vpc", "gcp-vpc")),
    random=st.randoms(use_true_random=False),
)
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=20)
def test_shuffled_lines_of_a_flow_file_give_identical_output(fmt: str, random) -> None:  # type: ignore[no-untyped-def]
    from netpolgen.cluster.inventory import parse_inventory
    from netpolgen.ingest import load_flows
    from netpolgen.ingest.report import IngestReport
    from netpolgen.resolve import resolve_flows
    from tests.cluster.fixtures import RENDERERS, inventory_document

    inventory = parse_inventory([inventory_document()])
    lines = RENDERERS[fmt]().splitlines(keepends=True)
    header = lines[:1] if fmt in ("csv", "aws-vpc") else []
    body = lines[len(header) :]
    shuffled = list(body)
    random.shuffle(shuffled)

    def policies(text_lines: list[str]) -> str:
        report = IngestReport()
        data = "".join(text_lines).encode()
        flows = resolve_flows(load_flows(io.BytesIO(data), fmt, report=report), inventory)
        return render_yaml(generate(flows, report=report, inventory=inventory).policies)

    assert policies(header + shuffled) == policies(header + body)
