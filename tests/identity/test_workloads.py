from __future__ import annotations

import pandas as pd
import pytest

from netpolgen.flows import conform_flows
from netpolgen.identity.workloads import (
    dns_name,
    identify_workloads,
    minimal_selector,
    workload_name_from_pod,
)
from netpolgen.labels import stable_labels
from netpolgen.selectors import LabelRequirement, LabelSelector
from tests import flowkit


def test_volatile_labels_are_stripped() -> None:
    text = (
        "app=db,batch.kubernetes.io/job-name=x,controller-revision-hash=abc,controller-uid=u,"
        "job-name=j,pod-template-generation=2,pod-template-hash=h,role=primary,"
        "statefulset.kubernetes.io/pod-name=db-0"
    )
    assert stable_labels(text) == "app=db,role=primary"


def test_selector_anchors_on_the_name_label_then_disambiguates() -> None:
    shop = {"app": "shop", "component": "api", "tier": "backend", "team": "a"}
    others = [{"app": "shop", "component": "ui", "tier": "frontend", "team": "a"}]
    assert minimal_selector(shop, others) == LabelSelector.of({"app": "shop", "component": "api"})


def test_selector_without_name_label_uses_fewest_preferred_keys() -> None:
    labels = {"tier": "api", "team": "x", "zone": "z"}
    others = [{"tier": "web", "team": "x", "zone": "z"}]
    assert minimal_selector(labels, others) == LabelSelector.of({"tier": "api"})


def test_single_workload_in_namespace_selects_by_name_label_alone() -> None:
    assert minimal_selector({"app": "a", "role": "r", "x": "y"}, []) == LabelSelector.of(
        {"app": "a"}
    )


def test_subset_label_set_is_excluded_with_does_not_exist() -> None:
    selector = minimal_selector({"app": "x"}, [{"app": "x", "role": "y"}])
    assert selector == LabelSelector(
        match_labels=(("app", "x"),),
        match_expressions=(LabelRequirement("role", "DoesNotExist"),),
    )
    assert selector.matches({"app": "x"})
    assert not selector.matches({"app": "x", "role": "y"})


def test_selection_is_stable_whatever_the_order_of_others() -> None:
    labels = {"app": "a", "b": "1", "c": "2"}
    others = [{"app": "a", "b": "1", "c": "3"}, {"app": "a", "b": "2", "c": "2"}]
    first = minimal_selector(labels, others)
    assert first == minimal_selector(labels, list(reversed(others)))
    assert first == LabelSelector.of(labels)


@pytest.mark.parametrize(
    ("pod", "name"),
    [
        ("backend-7d4b9c6f5-x2kqp", "backend"),
        ("db-0", "db"),
        ("fluentd-x7k2p", "fluentd"),
        ("standalone", "standalone"),
    ],
)
def test_workload_name_from_pod(pod: str, name: str) -> None:
    assert workload_name_from_pod(pod) == name


@pytest.mark.parametrize(
    ("pod", "labels", "name"),
    [
        # Issue 15: a DaemonSet pod (generateName "<daemonset>-", a 5-character suffix, and
        # controller-revision-hash without pod-template-hash) was named as Deployment "cog".
        ("cog-agents-x7k2q",
         {"controller-revision-hash": "6b9f8d7c5", "pod-template-generation": "1"}, "cog-agents"),
        # Deployment: <deployment>-<pod-template-hash>-<5>; the hash is the label's value.
        ("web-api-5d8f7c9b6-qwrtz", {"pod-template-hash": "5d8f7c9b6"}, "web-api"),
        # A hash of 10 characters and a base that itself looks like <x>-<hash>-<5>.
        ("log-shipper-aa-79c4d8f6b5-kx9zt", {"pod-template-hash": "79c4d8f6b5"}, "log-shipper-aa"),
        # StatefulSet: <statefulset>-<ordinal>, controller-revision-hash "<sts>-<hash>".
        ("redis-cart-2", {"controller-revision-hash": "redis-cart-7c5b9d8f6",
                          "statefulset.kubernetes.io/pod-name": "redis-cart-2"}, "redis-cart"),
        # Job pods: <job>-<5>; job-name names the Job.
        ("migrate-schema-v2-x8k2p", {"job-name": "migrate-schema-v2"}, "migrate-schema-v2"),
        # A CronJob's Job is <cronjob>-<scheduled time in minutes>.
        ("backup-29345760-b7kxz", {"job-name": "backup-29345760"}, "backup"),
        # No controller labels: the name pattern decides, as before.
        ("cog-agents-x7k2q", {"app": "cog"}, "cog"),
    ],
)  # fmt: skip
def test_workload_name_from_pod_labels_first(pod: str, labels: dict[str, str], name: str) -> None:
    assert workload_name_from_pod(pod, labels) == name


def test_daemonset_workload_is_named_after_the_daemonset() -> None:
    flows = flowkit.flows(
        {"src": "mon/app=cog,controller-revision-hash=6b9f8d7c5", "src_pod": "cog-agents-x7k2q",
         "dst": "mon/app=cog-api,pod-template-hash=5d8f7c9b6", "dst_pod": "cog-5d8f7c9b6-qwrtz",
         "dst_port": 9000}
    )  # fmt: skip
    names = sorted(identify_workloads(flows).table["name"])
    assert names == ["cog", "cog-agents"]


def test_dns_name_is_valid_and_long_names_get_a_stable_hash() -> None:
    assert dns_name("My_App") == "my-app"
    long = "x" * 300
    shortened = dns_name(long)
    assert len(shortened) <= 253 and shortened == dns_name(long)
    assert shortened != dns_name("x" * 301)


def _flows(rows: list[dict[str, object]]) -> pd.DataFrame:
    return conform_flows(pd.DataFrame(rows))


def test_replicas_and_revisions_form_one_workload() -> None:
    flows = _flows(
        [
            {"src_namespace": "a", "src_labels": "app=web,pod-template-hash=1", "src_kind": "pod",
             "src_pod": "web-5d8c7b4f9d-7hz4m",
             "dst_namespace": "a", "dst_labels": "app=api,pod-template-hash=2", "dst_kind": "pod",
             "dst_port": 80},
            {"src_namespace": "a", "src_labels": "app=web,pod-template-hash=3", "src_kind": "pod",
             "src_pod": "web-6f7b8c9d4e-q2xs5",
             "dst_namespace": "a", "dst_labels": "app=api,pod-template-hash=2", "dst_kind": "pod",
             "dst_port": 80},
        ]
    )  # fmt: skip
    workloads = identify_workloads(flows)
    assert sorted(workloads.table["name"]) == ["api", "web"]
    assert workloads.selectors["a/app=web"] == LabelSelector.of({"app": "web"})


def test_clashing_names_in_a_namespace_are_made_unique() -> None:
    flows = _flows(
        [
            {"src_namespace": "a", "src_labels": "app=shop,role=backend", "src_kind": "pod",
             "src_pod": "backend-5d8c7b4f9d-7hz4m",
             "dst_namespace": "a", "dst_labels": "app=blog,role=backend", "dst_kind": "pod",
             "dst_pod": "backend-6f7b8c9d4e-q2xs5", "dst_port": 80},
        ]
    )  # fmt: skip
    # Both Deployments are called "backend" (in different apps): fall back to selector values.
    names = sorted(identify_workloads(flows).table["name"])
    assert names == ["blog", "shop"]
