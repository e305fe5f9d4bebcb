"""YAML loading that a hostile document cannot turn into a hang or a crash.

PyYAML's ``SafeLoader`` constructs only plain data, but two shapes still hurt a program that then
walks the data: aliases that expand exponentially ("billion laughs": 9 levels of 9 aliases are
a few hundred bytes and 387 million nodes once walked; CVE-2019-11253 was this in kubectl), and
nesting deep enough for Python's recursion limit. :class:`SafeLoader` refuses documents whose
aliases expand beyond :data:`MAX_EXPANDED_NODES`; callers catch :class:`RecursionError` along
with :class:`yaml.YAMLError` (see :data:`YAML_ERRORS`).
"""

from __future__ import annotations

from typing import Any

import yaml

# Far beyond any inventory or policy file (a 5,000-pod inventory has ~2 million nodes once
# expanded, and expansion only matters where aliases are used at all).
MAX_EXPANDED_NODES = 20_000_000
# What parsing untrusted YAML (or JSON) can raise besides the loader's own errors.
YAML_ERRORS: tuple[type[BaseException], ...] = (yaml.YAMLError, RecursionError)


class AliasBombError(yaml.YAMLError):
    """A document whose aliases expand to more than :data:`MAX_EXPANDED_NODES` nodes."""


class SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents whose aliases expand too far."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None and expanded_size(node) > MAX_EXPANDED_NODES:
            raise AliasBombError(
                f"aliases expand to more than {MAX_EXPANDED_NODES} nodes (a 'billion laughs' "
                "document?)"
            )
        return node


def expanded_size(root: yaml.Node) -> int:
    """How many nodes walking ``root`` visits, counting an aliased node at every use.

    Memoised per node, iterative (no recursion limit), stopping as soon as the limit is passed.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # started, children not done: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if not children_done and id(node) in open_nodes:
            raise AliasBombError("a recursive alias: the document contains itself")
        children = _children(node)
        if children_done or not children:
            size = 1 + sum(sizes.get(id(c), 0) for c in children)
            sizes[id(node)] = size
            if size > MAX_EXPANDED_NODES:
                return size
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def load_all(data: bytes | str) -> list[Any]:
    """Every document of ``data``, with :class:`SafeLoader`."""
    return list(yaml.load_all(data, Loader=SafeLoader))
