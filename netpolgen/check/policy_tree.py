"""A policy directory edited in place: YAML documents round-tripped with their comments.

``netpolgen update`` changes policies that people have edited by hand. Rendering the model again
would drop their comments, key order, extra annotations and anything the model does not carry,
so the files are read with ruamel.yaml's round-trip loader (it keeps comments and layout) and the
documents are changed structurally: rules appended to ``spec.ingress``/``spec.egress``, rules
removed by index, annotations set in place. A file nobody changed is written back byte for byte;
a changed file is dumped by ruamel.yaml, which keeps its comments.

JSON files (``.json``) are edited the same way and written back as JSON (2-space indent): JSON
has no comments to keep.

With ``staged=True`` (``update --flavor calico-staged``), Calico ``StagedKubernetesNetworkPolicy``
documents with ``stagedAction: Set`` are policies too, read as the NetworkPolicy that enforcing
them creates (their spec is a NetworkPolicy spec, :mod:`netpolgen.policy.flavors.calico`), and
edited in place the same way; new files are written staged.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from netpolgen.errors import OutputError, PolicyParseError
from netpolgen.policy.flavors.calico import (
    enforced_manifest,
    is_staged,
    staged_action,
    staged_manifest,
)
from netpolgen.policy.load import LIST_KINDS, POLICY_SUFFIXES
from netpolgen.policy.model import API_VERSION, KIND, Policy, Rule
from netpolgen.policy.render import dump_yaml

__all__ = ["PolicyDocument", "PolicyTree", "node", "plain", "rule_manifest"]


def _yaml() -> Any:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    # The generator's layout (netpolgen.policy.render): lists indented under their key.
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 1000
    return yaml


def plain(value: Any) -> Any:
    """A round-trip node as plain dicts, lists and scalars (for the model)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def node(data: dict[str, Any]) -> Any:
    """``data`` as a round-trip node, by way of the generator's own YAML (dump_yaml): its
    quoting of strings that a YAML 1.1 reader such as kubectl's would retype (``on``, ``y``,
    ``012``) is kept, where ruamel.yaml, a YAML 1.2 emitter, would write them plain."""
    return _yaml().load(dump_yaml(data))


def rule_manifest(rule: Rule, direction: str) -> dict[str, Any]:
    """A rule as the API writes it (``from`` for ingress, ``to`` for egress)."""
    out: dict[str, Any] = {}
    if rule.peers:
        out["from" if direction == "ingress" else "to"] = [p.to_manifest() for p in rule.peers]
    if rule.ports:
        out["ports"] = [p.to_manifest() for p in rule.ports]
    return out


@dataclass
class PolicyDocument:
    """One NetworkPolicy document (or ``List`` item) of a file, editable in place."""

    file: Path
    node: Any  # the round-trip mapping, changed in place
    policy: Policy

    @property
    def key(self) -> tuple[str, str]:
        return (self.policy.namespace, self.policy.name)

    def rules(self, direction: str) -> Any:
        """The ``spec.ingress``/``spec.egress`` list, created when missing."""
        spec = self.node.setdefault("spec", {})
        if spec.get(direction) is None:
            spec[direction] = []
        return spec[direction]

    def annotations(self) -> Any:
        metadata = self.node.setdefault("metadata", {})
        if metadata.get("annotations") is None:
            metadata["annotations"] = {}
        return metadata["annotations"]

    def reload(self) -> None:
        """Read the model back from the edited document."""
        self.policy = _policy(self.node, str(self.file))


@dataclass
class _File:
    text: str
    documents: list[Any]
    json: bool
    changed: bool = False


@dataclass
class PolicyTree:
    """Every file under a policy directory, its NetworkPolicy documents editable in place.

    ``load_policies`` (netpolgen.policy.load) decides what a policy is; this class reads the
    same files again with a round-trip loader so that they can be written back with their
    comments. Documents of other kinds are kept untouched.
    """

    root: Path
    files: dict[Path, _File] = field(default_factory=dict)
    documents: list[PolicyDocument] = field(default_factory=list)
    others: dict[Path, str] = field(default_factory=dict)
    staged: bool = False

    @classmethod
    def read(cls, root: str | Path, *, staged: bool = False) -> PolicyTree:
        root = Path(root)
        if not root.is_dir():
            raise PolicyParseError("not a directory (update edits a policy directory)",
                                   source=str(root))  # fmt: skip
        if (root / ".git").exists():
            # The directory is rewritten whole (write_tree): never a repository's root.
            raise PolicyParseError(
                "is a Git repository's root; update rewrites the directory it is given whole",
                source=str(root),
                hint="point --policies at the folder of policies inside the repository",
            )
        tree = cls(root, staged=staged)
        yaml = _yaml()
        found: dict[tuple[str, str], PolicyDocument] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise PolicyParseError(
                    f"cannot read as UTF-8 text ({error}); update rewrites the directory whole",
                    source=str(path),
                ) from None
            if path.suffix.lower() not in POLICY_SUFFIXES:
                tree.others[relative] = text
                continue
            is_json = path.suffix.lower() == ".json"
            documents = _load(yaml, text, path, is_json)
            tree.files[relative] = _File(text, documents, is_json)
            for document in documents:
                for node in _policy_nodes(document, staged):
                    try:
                        policy = _policy(node, str(path))
                    except PolicyParseError as error:
                        raise PolicyParseError(error.message, source=str(path)) from None
                    entry = PolicyDocument(relative, node, policy)
                    # The later definition wins, as in load_policies and kubectl apply.
                    found.pop(entry.key, None)
                    found[entry.key] = entry
        tree.documents = list(found.values())
        return tree

    def policies(self) -> list[Policy]:
        return [d.policy for d in self.documents]

    def mark_changed(self, document: PolicyDocument) -> None:
        self.files[document.file].changed = True
        document.reload()

    def add_file(self, relative: Path, manifest: dict[str, Any]) -> PolicyDocument:
        """A new file holding one new policy."""
        if relative in self.files or relative in self.others:
            raise OutputError(f"{relative} exists already", source=str(self.root))
        created = node(staged_manifest(manifest) if self.staged else manifest)
        self.files[relative] = _File("", [created], False, changed=True)
        document = PolicyDocument(relative, created, Policy.from_manifest(manifest))
        self.documents.append(document)
        return document

    def changed_files(self) -> list[Path]:
        return sorted(p for p, f in self.files.items() if f.changed)

    def texts(self) -> dict[Path, str]:
        """Every file of the directory: unchanged ones as read, changed ones dumped again."""
        yaml = _yaml()
        out = dict(self.others)
        for relative, entry in self.files.items():
            if not entry.changed:
                out[relative] = entry.text
            elif entry.json:
                documents = [plain(d) for d in entry.documents]
                out[relative] = json.dumps(documents[0], indent=2) + "\n"
            else:
                stream = io.StringIO()
                yaml.dump_all(entry.documents, stream)
                out[relative] = stream.getvalue()
        return dict(sorted(out.items()))


def _load(yaml: Any, text: str, path: Path, is_json: bool) -> list[Any]:
    try:
        documents = [d for d in yaml.load_all(text) if d is not None]
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise PolicyParseError(
            f"not valid {'JSON' if is_json else 'YAML'} ({getattr(error, 'problem', error)})",
            source=str(path),
            line=mark.line + 1 if mark is not None else None,
        ) from None
    if is_json and len(documents) > 1:
        raise PolicyParseError("a JSON file holds one document", source=str(path))
    return documents


def _policy(document: Any, source: str) -> Policy:
    data = plain(document)
    if is_staged(data):
        data = enforced_manifest(data)
    return Policy.from_manifest(data, source=source)


def _policy_nodes(document: Any, staged: bool = False) -> Iterator[Any]:
    if not isinstance(document, Mapping):
        return
    kind = document.get("kind")
    if kind in LIST_KINDS or (staged and kind == "StagedKubernetesNetworkPolicyList"):
        for item in document.get("items") or []:
            yield from _policy_nodes(item, staged)
    elif kind == KIND and document.get("apiVersion", API_VERSION) == API_VERSION:
        yield document
    elif staged and is_staged(document) and staged_action(document) == "Set":
        # Delete (and Learn/Ignore) stage no policy of their own: kept as they are.
        yield document
