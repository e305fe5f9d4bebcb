"""netpolgen.ingest.dns: outside address -> names from Hubble DNS events."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from netpolgen.ingest.dns import dns_rows, outside_name, read_dns_map
from tests.conftest import SAMPLE_FLOWS, SHARED_SAMPLES
from tests.policy.dns_fixture import dns_response, write_capture

DNS_SAMPLE = SHARED_SAMPLES / "hubble" / "hubble-otel_basic-sample-5-dns-flows.jsonl"


@pytest.mark.parametrize(
    ("query", "namespace", "expected"),
    [
        ("api.example.com.", None, "api.example.com"),
        ("API.Example.COM", None, "api.example.com"),
        # The search path of a pod in "shop" (ndots:5): <ns>.svc.<domain>, svc.<domain>, <domain>.
        ("api.example.com.shop.svc.cluster.local.", "shop", "api.example.com"),
        ("api.example.com.other.svc.cluster.local.", None, "api.example.com"),
        ("www.api.example.com.svc.cluster.local.", "shop", "www.api.example.com"),
        ("api.example.com.cluster.local.", "shop", "api.example.com"),
        # Cluster names: a Service, a Service of another namespace, a pod record, the domain.
        ("cart.shop.svc.cluster.local.", "shop", None),
        ("cart.other.svc.cluster.local.", "shop", None),
        ("web-0.nginx.shop.svc.cluster.local.", "shop", None),  # a headless Service's pod
        ("web-0.nginx.other.svc.cluster.local.", "shop", None),
        ("example.com.shop.svc.cluster.local.", "shop", None),  # cannot tell: never invented
        ("web-0.nginx.default.svc.cluster.local.", None, None),
        ("10-0-1-10.shop.pod.cluster.local.", "shop", None),
        ("cluster.local.", None, None),
        ("", None, None),
    ],
)
def test_outside_name(query: str, namespace: str | None, expected: str | None) -> None:
    assert outside_name(query, namespace) == expected


def test_cname_out_of_the_cluster_domain_is_the_name() -> None:
    # An ExternalName Service answers with a CNAME to the outside name.
    assert outside_name("payments.shop.svc.cluster.local.", "shop", ["pay.example.com."]) == (
        "pay.example.com"
    )


def test_the_shared_dns_sample_has_only_unanswered_cluster_queries() -> None:
    # Five events from hubble-otel: search-path expansions of istiod's cluster name, answered
    # NXDOMAIN (rcode 3, no ips) or not answered yet: nothing to learn, nothing invented.
    if not DNS_SAMPLE.exists():
        pytest.skip("../shared/samples is not beside the repo")
    assert not read_dns_map([DNS_SAMPLE])


def test_answers_and_destination_names_with_their_time(tmp_path: Path) -> None:
    dns = read_dns_map([write_capture(tmp_path / "capture.jsonl")])
    assert dns.names("203.0.113.10") == ("api.example.com",)
    assert dns.names("203.0.113.12") == ("api.example.com",)  # the autopath answer
    assert dns.names("10.96.5.5") == ()  # a cluster name
    assert dns.names("192.0.2.77") == ("downloads.example.org",)
    assert dns.addresses("api.example.com") == ("203.0.113.10", "203.0.113.11", "203.0.113.12")
    # Time-aware: not before the answer; after it for max(ttl, Cilium's 3600 s minimum).
    assert dns.names("203.0.113.10", pd.Timestamp("2026-11-20T09:59:59Z")) == ()
    assert dns.names("203.0.113.10", pd.Timestamp("2026-11-20T10:59:00Z")) == ("api.example.com",)
    assert dns.names("203.0.113.10", pd.Timestamp("2026-11-20T11:00:01Z")) == ()
    assert dns.names_in("203.0.113.8/30") == {
        "203.0.113.10": ("api.example.com",), "203.0.113.11": ("api.example.com",),
    }  # fmt: skip
    assert dns.names_in("203.0.113.8/30", until=pd.Timestamp("2026-11-20T09:00:00Z")) == {}


def test_a_request_or_nxdomain_teaches_nothing() -> None:
    event = dns_response("2026-11-20T10:00:00Z", "nope.example.com.", [])
    assert dns_rows(event) == []
    assert dns_rows({"flow": "not a flow"}) == []


def test_other_formats_are_not_scanned() -> None:
    assert not read_dns_map([SAMPLE_FLOWS / "three-tier.csv", "-"])


def test_dns_lines_across_blocks_overlong_and_unterminated(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from netpolgen.ingest import dns as module

    monkeypatch.setattr(module, "_BLOCK", 7)  # every line crosses block boundaries
    text = (
        b'{"a": 1}\n{"l7": {"dns": 1}}\n' + b'{"x": "' + b"y" * 50 + b'", "dns": 2}\n'
        b'{"b": 2}\n{"destination_names": []}'
    )
    lines = list(module._dns_lines(io.BytesIO(text), max_line=40))
    # The 60-byte line is over the limit: dropped whole, the lines after it kept.
    assert lines == [b'{"l7": {"dns": 1}}', b'{"destination_names": []}']
    assert list(module._dns_lines(io.BytesIO(text), max_line=1000))[1].endswith(b'"dns": 2}')
