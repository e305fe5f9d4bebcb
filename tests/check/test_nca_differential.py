"""Differential test: our evaluator against IBM's network-config-analyzer (NCA).

NCA (https://pypi.org/project/network-config-analyzer/) computes the connectivity map of pods and
policies given as YAML, offline. It pins exact versions of its dependencies (PyYAML, networkx,
...), so it runs from a virtual environment of its own, never from the project's: the test uses
``$NETPOLGEN_NCA`` (an ``nca`` executable) if set, else ``~/.cache/netpolgen-nca-venv`` (created
with ``pip install network-config-analyzer`` on first use), and skips with the reason when neither
works. Random policy sets over a small three-namespace cluster are compared pod to pod, and between
pods and outside addresses (``ipBlock`` with ``except``), on TCP, UDP and SCTP at probe ports and
addresses that cover every number and block the policies and pods mention.

Where NCA is wrong, the generator avoids the case and a dedicated test pins the difference
(``test_nca_known_difference_*``), with the Kubernetes rule that decides it:

* ``egress: []`` without ``policyTypes``: the API server defaults ``policyTypes`` to
  ``[Ingress]`` (Egress is added only when there is at least one egress rule,
  ``SetDefaults_NetworkPolicy``), so egress stays open. NCA isolates egress.
* ``Exists``/``DoesNotExist`` in a peer's ``podSelector`` next to a ``namespaceSelector``: the
  peer selects the pods with (without) the key in every matching namespace. NCA (2.1.0) finds no
  pod outside the policy's own namespace. ``In``/``NotIn`` there, and ``Exists`` in a
  ``namespaceSelector``, it gets right.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from netpolgen.cluster.view import NamedPorts
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import EndpointKey, Evaluator
from tests.policygen import (
    NAMESPACES,
    PODS,
    PROBE_IPS,
    PROBE_PORTS,
    PROTOCOLS,
    random_policies,
)

pytestmark = pytest.mark.nca

NCA_VENV = Path.home() / ".cache" / "netpolgen-nca-venv"
INSTALL_TIMEOUT = 240
RUN_TIMEOUT = 60
CASES = 40  # random policy sets; each is one NCA run of ~0.3 s


# --- finding NCA -------------------------------------------------------------------------------


def _nca_executable() -> Path:
    configured = os.environ.get("NETPOLGEN_NCA")
    if configured:
        return Path(configured)
    executable = NCA_VENV / "bin" / "nca"
    if executable.exists():
        return executable
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(NCA_VENV)],
            check=True, capture_output=True, timeout=INSTALL_TIMEOUT,
        )  # fmt: skip
        subprocess.run(
            [str(NCA_VENV / "bin" / "pip"), "install", "-q", "network-config-analyzer"],
            check=True, capture_output=True, timeout=INSTALL_TIMEOUT,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        shutil.rmtree(NCA_VENV, ignore_errors=True)
        pytest.skip(f"network-config-analyzer cannot be installed in its own venv: {error}")
    return executable


@pytest.fixture(scope="module")
def nca() -> Path:
    executable = _nca_executable()
    try:
        subprocess.run([str(executable), "--version"], check=True, capture_output=True,
                       timeout=RUN_TIMEOUT)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        pytest.skip(f"network-config-analyzer does not run: {error}")
    return executable


# --- the cluster ---------------------------------------------------------------------------------


def _cluster_files(directory: Path) -> tuple[Path, Path]:
    pods = {
        "apiVersion": "v1",
        "kind": "PodList",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "ports": [
                                {"name": n, "protocol": p, "containerPort": number}
                                for n, p, number in ports
                            ],
                        }
                    ]
                },
                "status": {"podIP": f"10.0.0.{i + 1}"},
            }
            for i, (ns, name, labels, ports) in enumerate(PODS)
        ],
    }
    namespaces = {
        "apiVersion": "v1",
        "kind": "NamespaceList",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {**labels, "kubernetes.io/metadata.name": ns}},
            }
            for ns, labels in NAMESPACES.items()
        ],  # fmt: skip
    }
    pod_file = directory / "pods.yaml"
    ns_file = directory / "namespaces.yaml"
    pod_file.write_text(yaml.safe_dump(pods))
    ns_file.write_text(yaml.safe_dump(namespaces))
    return pod_file, ns_file


# --- running both --------------------------------------------------------------------------------

_LINE = re.compile(r"^(?P<src>\S+?)(?:\[Pod\])? => (?P<dst>\S+?)(?:\[Pod\])? : (?P<conn>.+)$")
_GROUP = re.compile(
    r"\{protocols:(?P<protocols>[A-Z0-9, ]+?)(?:, ?dst_ports:(?P<ports>[0-9, \-]+))?\}"
)

Connectivity = dict[tuple[str, str], set[tuple[str, int]]]


def _expand(connection: str) -> set[tuple[str, int]]:
    if connection.strip() == "All connections":
        return {(p, port) for p in PROTOCOLS for port in PROBE_PORTS}
    allowed: set[tuple[str, int]] = set()
    groups = list(_GROUP.finditer(connection))
    assert groups, f"unparsed NCA connection: {connection!r}"
    for group in groups:
        for protocol in (p.strip() for p in group["protocols"].split(",")):
            if protocol not in PROTOCOLS:
                continue
            if group["ports"] is None:
                allowed |= {(protocol, port) for port in PROBE_PORTS}
                continue
            for item in group["ports"].split(","):
                low, _, high = item.strip().partition("-")
                allowed |= {
                    (protocol, port) for port in PROBE_PORTS if int(low) <= port <= int(high or low)
                }
    return allowed


def run_nca(nca: Path, directory: Path, manifests: list[dict[str, Any]]) -> Connectivity:
    pod_file, ns_file = _cluster_files(directory)
    policy_file = directory / "policies.yaml"
    policy_file.write_text(yaml.safe_dump_all(manifests) if manifests else "")
    result = subprocess.run(
        [str(nca), "--connectivity", str(policy_file), "--pod_list", str(pod_file),
         "--ns_list", str(ns_file), "-o", "txt_no_fw_rules"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr + result.stdout
    found: Connectivity = {}
    for line in result.stdout.splitlines():
        match = _LINE.match(line.strip())
        if match:
            for src in _endpoints(match["src"]):
                for dst in _endpoints(match["dst"]):
                    if src != dst:
                        found.setdefault((src, dst), set()).update(_expand(match["conn"]))
    return found


def _endpoints(text: str) -> list[str]:
    """A pod (``ns/name``) stays itself; address ranges become the probe addresses inside."""
    if "/" in text and not text[0].isdigit():
        return [text]
    inside = []
    for item in text.split(","):
        low, _, high = item.strip().partition("-")
        if ":" in low:  # IPv6 ranges: no IPv6 probes
            continue
        first, last = ipaddress.ip_address(low), ipaddress.ip_address(high or low)
        # Both ends and the probes are IPv4 (IPv6 ranges are skipped above).
        inside += [ip for ip in PROBE_IPS if first <= ipaddress.ip_address(ip) <= last]  # type: ignore[operator]
    return inside


def run_ours(manifests: list[dict[str, Any]]) -> Connectivity:
    evaluator = Evaluator([Policy.from_manifest(m) for m in manifests], NAMESPACES)
    sides: list[tuple[str, EndpointKey, NamedPorts]] = [
        (f"{ns}/{name}", (ns, tuple(sorted(labels.items())), None), tuple(sorted(named)))
        for ns, name, labels, named in PODS
    ]
    sides += [(ip, (None, (), ip), ()) for ip in PROBE_IPS]
    found: Connectivity = {}
    for src_name, src, _ in sides:
        for dst_name, dst, named in sides:
            if src_name == dst_name or (src[0] is None and dst[0] is None):
                continue
            allowed = {
                (protocol, port)
                for protocol in PROTOCOLS
                for port in PROBE_PORTS
                if all(evaluator.allows(src, dst, protocol, port, named))
            }
            if allowed:
                found[(src_name, dst_name)] = allowed
    return found


def assert_same(ours: Connectivity, theirs: Connectivity, manifests: list[dict[str, Any]]) -> None:
    differences = []
    for key in sorted(ours.keys() | theirs.keys()):
        a, b = ours.get(key, set()), theirs.get(key, set())
        if a != b:
            differences.append(f"{key}: only ours {sorted(a - b)}, only NCA {sorted(b - a)}")
    assert not differences, "\n".join(differences) + "\n" + yaml.safe_dump_all(manifests)


@pytest.mark.parametrize("seed", range(CASES))
def test_random_policy_sets_agree_with_nca(nca: Path, tmp_path: Path, seed: int) -> None:
    manifests = random_policies(seed)
    assert_same(run_ours(manifests), run_nca(nca, tmp_path, manifests), manifests)


HANDWRITTEN = {
    "no policies": [],
    "deny all ingress in a": [
        {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
         "metadata": {"name": "d", "namespace": "a"},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
    ],
    "empty from list and ports without peers": [
        {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
         "metadata": {"name": "p", "namespace": "a"},
         "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                  "ingress": [{"from": [], "ports": [{"port": 80}]},
                              {"ports": [{"port": "http"}]}]}},
    ],
    "named ports differ between pods": [
        {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
         "metadata": {"name": "p", "namespace": "c"},
         "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"ports": [{"port": "http"}]}]}},
    ],
    "notin and doesnotexist match pods lacking the key": [
        {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
         "metadata": {"name": "p", "namespace": "c"},
         "spec": {"podSelector": {"matchExpressions": [
             {"key": "tier", "operator": "NotIn", "values": ["back"]}]},
             "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                 {"key": "tier", "operator": "DoesNotExist"}]}}]}]}},
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HANDWRITTEN))
def test_handwritten_cases_agree_with_nca(nca: Path, tmp_path: Path, name: str) -> None:
    manifests = HANDWRITTEN[name]
    assert_same(run_ours(manifests), run_nca(nca, tmp_path, manifests), manifests)


def test_nca_known_difference_egress_empty_without_policy_types(nca: Path, tmp_path: Path) -> None:
    manifests = [
        {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
         "metadata": {"name": "p", "namespace": "c"},
         "spec": {"podSelector": {}, "egress": []}},
    ]  # fmt: skip
    ours = run_ours(manifests)
    theirs = run_nca(nca, tmp_path, manifests)
    # Kubernetes: policyTypes defaults to [Ingress] (egress has no rule), so c's pods still
    # send everywhere; nothing reaches them.
    assert ("c/fe-1", "a/web-1") in ours and ("a/web-1", "c/fe-1") not in ours
    # NCA treats the empty egress section as egress isolation.
    assert ("c/fe-1", "a/web-1") not in theirs


def test_nca_known_difference_exists_pod_selector_across_namespaces(
    nca: Path, tmp_path: Path
) -> None:
    manifests = [
        {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
         "metadata": {"name": "p", "namespace": "b"},
         "spec": {"podSelector": {}, "ingress": [{"from": [
             {"namespaceSelector": {"matchLabels": {"team": "x"}},
              "podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}]}]}},
    ]  # fmt: skip
    ours = run_ours(manifests)
    theirs = run_nca(nca, tmp_path, manifests)
    # Kubernetes: a/web-1 has tier and namespace a has team=x, so it may reach b's pods.
    assert ("a/web-1", "b/web-2") in ours and ("a/db-1", "b/web-2") not in ours
    # NCA finds no such pod outside b.
    assert ("a/web-1", "b/web-2") not in theirs
