"""Reading NetworkPolicies from files: a directory, a multi-document YAML file, a JSON ``List``.

Besides ``networking.k8s.io/v1`` NetworkPolicies: Calico staged policies are read as their
enforced form, ``cilium.io/v2`` CiliumNetworkPolicies as the NetworkPolicies they amount to
(:mod:`netpolgen.policy.flavors.cilium_read`), and ClusterNetworkPolicies
(:mod:`netpolgen.policy.cluster_model`) go to a separate list when the caller asks for them.

What ``kubectl get networkpolicies -A -o yaml`` prints (a ``List``), what a GitOps repository holds
(a tree of YAML files, several documents each) and what ``netpolgen from-flows -o DIR`` writes are
all accepted. Documents of other kinds (Deployments next to the policies, say) are skipped with a
note; a malformed NetworkPolicy is an error naming the file, the document and its first line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from netpolgen.errors import PolicyParseError
from netpolgen.policy.cluster_model import (
    CLUSTER_KIND,
    ClusterPolicy,
    cluster_policy_from_manifest,
    is_cluster_policy,
)
from netpolgen.policy.flavors.calico import (
    STAGED_LIST_KIND,
    enforced_manifest,
    is_staged,
    staged_action,
)
from netpolgen.policy.flavors.cilium_read import CiliumContext, cilium_policies, is_cilium_policy
from netpolgen.policy.model import API_VERSION, KIND, Policy
from netpolgen.policy.write import KUSTOMIZATION_NAMES
from netpolgen.safe_yaml import MAX_EXPANDED_NODES, SafeLoader, expanded_size

__all__ = ["POLICY_SUFFIXES", "load_policies"]

POLICY_SUFFIXES = (".yaml", ".yml", ".json")
LIST_KINDS = (
    "List", "NetworkPolicyList", STAGED_LIST_KIND, "CiliumNetworkPolicyList",
    "CiliumClusterwideNetworkPolicyList", f"{CLUSTER_KIND}List",
)  # fmt: skip


def load_policies(
    path: str | os.PathLike[str],
    *,
    notes: list[str] | None = None,
    cilium: CiliumContext | None = None,
    cluster: list[ClusterPolicy] | None = None,
) -> list[Policy]:
    """Read every NetworkPolicy under ``path``.

    Args:
        path: a directory (searched recursively for ``*.yaml``, ``*.yml`` and ``*.json``, in
            sorted order), or one file with one or more YAML documents or a JSON object.
            ``List`` and ``NetworkPolicyList`` documents are unpacked.
        notes: if given, receives one line per skipped document or overridden duplicate.
        cilium: entities and DNS names for reading CiliumNetworkPolicy (none known if omitted).
        cluster: if given, receives the ClusterNetworkPolicies (else they are skipped with a
            note).

    Returns:
        The policies in file and document order. When two documents define the same
        ``namespace/name`` the later one wins (as ``kubectl apply`` would leave it).

    Raises:
        PolicyParseError: naming the file, the document index and its line.

    Examples:
        >>> load_policies("policies/")  # doctest: +SKIP
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix.lower() in POLICY_SUFFIXES
            # The kustomization.yaml that write_policy_dir puts beside the policies (and
            # kustomize's other names for it) lists files; it is not a document to check.
            and p.name not in KUSTOMIZATION_NAMES
        )
    elif root.is_file():
        files = [root]
    else:
        raise PolicyParseError("no such file or directory", source=str(root))
    notes = notes if notes is not None else []
    reading = _Reading(notes, cilium or CiliumContext(), cluster)
    found: dict[tuple[str, str], Policy] = {}
    for file in files:
        for policy in _policies_in_file(file, reading):
            key = (policy.namespace, policy.name)
            if key in found:
                notes.append(f"{file}: {key[0]}/{key[1]} defined again; the later one is used")
                del found[key]
            found[key] = policy
    return list(found.values())


class _Reading:
    """What reading documents collects besides the policies."""

    def __init__(
        self, notes: list[str], cilium: CiliumContext, cluster: list[ClusterPolicy] | None
    ) -> None:
        self.notes = notes
        self.cilium = cilium
        self.cluster = cluster
        self.cluster_names: set[str] = set()


def _policies_in_file(file: Path, reading: _Reading) -> Iterator[Policy]:
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise PolicyParseError(f"cannot read ({error.strerror})", source=str(file)) from None
    except UnicodeDecodeError:
        raise PolicyParseError("not UTF-8 text", source=str(file)) from None
    for index, line, document in _documents(text, str(file)):
        yield from _policies_in_document(document, str(file), index, line, reading)


def _documents(text: str, source: str) -> Iterator[tuple[int, int, Any]]:
    """``(index, first line, data)`` for each YAML document (JSON is YAML)."""
    if source.lower().endswith(".json"):
        try:
            yield 0, 1, json.loads(text)
        except json.JSONDecodeError as error:
            raise PolicyParseError(
                f"not valid JSON ({error.msg})", source=source, line=error.lineno
            ) from None
        except RecursionError:
            raise PolicyParseError("JSON nested too deeply", source=source) from None
        return
    fast = _documents_libyaml(text)
    if fast is not None:
        yield from fast
        return
    loader = SafeLoader(text)  # aliases that expand without end are refused
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # an empty document
                continue
            yield index, node.start_mark.line + 1, loader.construct_document(node)
            index += 1
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise PolicyParseError(
            f"not valid YAML ({error.problem or error.context})",
            source=source,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as error:
        raise PolicyParseError(f"not valid YAML ({error})", source=source) from None
    except RecursionError:
        raise PolicyParseError("YAML nested too deeply", source=source) from None
    finally:
        loader.dispose()


def _documents_libyaml(text: str) -> list[tuple[int, int, Any]] | None:
    """:func:`_documents` by PyYAML's libyaml parser (same constructor and resolver, ~10 times
    faster), or None when libyaml is missing or the text does not parse: the pure-Python
    parser then reads it again and words the error."""
    loader_class = getattr(yaml, "CSafeLoader", None)
    if loader_class is None:
        return None
    loader = loader_class(text)
    documents = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # an empty document
                continue
            if expanded_size(node) > MAX_EXPANDED_NODES:
                return None  # an alias bomb: SafeLoader refuses it and says why
            documents.append((index, node.start_mark.line + 1, loader.construct_document(node)))
            index += 1
    except (yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()
    return documents


def _policies_in_document(
    document: Any, source: str, index: int, line: int, reading: _Reading, label: str = ""
) -> Iterator[Policy]:
    notes = reading.notes
    if document is None:
        return
    label = label or f"document {index}"
    where = f"{source}:{line}"
    if not isinstance(document, Mapping):
        notes.append(f"{where}: {label} is not an object; skipped")
        return
    kind = document.get("kind")
    if kind in LIST_KINDS:
        items = document.get("items") or []
        if not isinstance(items, list):
            raise PolicyParseError(
                f"{label}: {kind}.items must be a list", source=source, line=line
            )
        for position, item in enumerate(items):
            yield from _policies_in_document(
                item, source, index, line, reading, f"{label} item {position}"
            )
        return
    if is_cilium_policy(document) or is_cluster_policy(document):
        yield from _other_kinds(document, source, line, label, reading)
        return
    if is_staged(document):
        # A Calico staged policy is read as what enforcing it creates (flavors/calico.py);
        # a staged Delete (or Learn/Ignore) enforces nothing of its own.
        action = staged_action(document)
        if action != "Set":
            notes.append(f"{where}: {label}: staged policy with stagedAction {action}; skipped")
            return
        document, kind = enforced_manifest(document), KIND
    if kind != KIND:
        notes.append(f"{where}: {label}: kind {kind!r} is not a NetworkPolicy; skipped")
        return
    api_version = document.get("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        # Calico (projectcalico.org/v3) and others reuse the kind name with other semantics.
        notes.append(f"{where}: {label}: {api_version} NetworkPolicy is not {API_VERSION}; skipped")
        return
    try:
        yield Policy.from_manifest(document, source=source)
    except PolicyParseError as error:
        raise _in_document(error, document, source, line, label) from None


def _in_document(
    error: PolicyParseError, document: Mapping[str, Any], source: str, line: int, label: str
) -> PolicyParseError:
    """``error`` of a document's content, named by its file, line, index and object name."""
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if name:
        label += f" ({name})"
    return PolicyParseError(f"{label}: {error.message}", source=source, line=line, hint=error.hint)


def _other_kinds(
    document: Mapping[str, Any], source: str, line: int, label: str, reading: _Reading
) -> Iterator[Policy]:
    """A CiliumNetworkPolicy (as NetworkPolicies) or a ClusterNetworkPolicy (to the list)."""
    where = f"{source}:{line}"
    if is_cluster_policy(document) and reading.cluster is None:
        reading.notes.append(
            f"{where}: {label}: kind {CLUSTER_KIND!r} is not a NetworkPolicy; skipped"
        )
        return
    try:
        if is_cilium_policy(document):
            yield from cilium_policies(document, reading.cilium, reading.notes, where)
            return
        policy = cluster_policy_from_manifest(document)
    except PolicyParseError as error:
        raise _in_document(error, document, source, line, label) from None
    assert reading.cluster is not None
    if policy.name in reading.cluster_names:
        reading.notes.append(
            f"{where}: ClusterNetworkPolicy {policy.name} defined again; the later one is used"
        )
        reading.cluster[:] = [p for p in reading.cluster if p.name != policy.name]
    reading.cluster_names.add(policy.name)
    reading.cluster.append(policy)
