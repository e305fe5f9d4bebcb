"""Deterministic YAML for policies: a multi-document stream, or one file per policy.

YAML is produced by PyYAML from the manifest dicts, never by string formatting. kubectl reads
YAML 1.1 (sigs.k8s.io/yaml on go-yaml), which takes ``y``, ``n``, ``on``, ``off``, ``012``,
``1e3``, ``0x1F``, ``~`` and friends for booleans, numbers or null: PyYAML's own resolver does not
know all of them (``y``, ``n``, ``1e3``), so every string that *any* YAML 1.1 reader could retype
is written single-quoted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import yaml

from netpolgen.policy.model import Policy

_YAML11_SPECIAL = re.compile(
    r"""^(?:
        y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
      | ~|null|Null|NULL|
      | [-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+)
      | [-+]?(?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][-+]?[0-9]+)?
      | [-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
      | =|<<
    )$""",
    re.VERBOSE,
)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes YAML-1.1-ambiguous strings and indents lists under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _YAML11_SPECIAL.match(value) and any(c.isalnum() or c in "~=<" for c in value) or not value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


_WIDTH = 1000


def _pyyaml(document: Any) -> str:
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=_WIDTH,
    )


def dump_yaml(document: Any) -> str:
    """One YAML document, keys in insertion order (our manifests are built in a fixed order).

    The text is PyYAML's (:class:`_Dumper`), byte for byte. PyYAML's pure-Python emitter costs
    about 8 ms a policy, so manifests made of mappings, lists of mappings or scalars, strings,
    integers and booleans are laid out here, with each distinct scalar's text (plain or quoted)
    taken from PyYAML itself and cached; anything else (nested lists, long or multi-line strings,
    floats) goes through PyYAML whole.
    """
    if type(document) is dict and document:
        out: list[str] = []
        try:
            _emit_mapping(document, 0, "", out, {id(document)})
        except _Unusual:
            return _pyyaml(document)
        return "".join(out)
    return _pyyaml(document)


class _Unusual(Exception):
    """A document outside what the fast layout handles: PyYAML writes it."""


# Longest line the fast layout writes: far from PyYAML's width, where it would fold a scalar.
_SAFE_COLUMN = _WIDTH - 100


# A string PyYAML writes as it is, when its resolver also reads it back as a string: a letter
# or digit, then letters, digits and ``._/-`` (no indicator, space, colon or quote anywhere).
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*\Z")
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


@lru_cache(maxsize=65536, typed=True)  # typed: True and 1 are written apart
def _value_text(value: str | int | bool | None) -> str:
    """How PyYAML writes a scalar as a block value (a list item or a mapping's value).

    Names, label values and addresses (most scalars of a policy) are known plain without
    running PyYAML's emitter, ~0.1 ms a value (``tests/policy/test_render.py`` checks the two
    agree), as are integers (ports); the rest is PyYAML's text."""
    if type(value) is int:  # not a bool: True is an int too, written "true"
        return str(value)
    if (
        type(value) is str
        and len(value) < _SAFE_COLUMN
        and _PLAIN_TEXT.match(value)
        and not _YAML11_SPECIAL.match(value)
        and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG  # type: ignore[no-untyped-call]
    ):
        return value
    return _emitted_text(value)


def _emitted_text(value: str | int | bool | None) -> str:
    """:func:`_value_text` from PyYAML's emitter."""
    text = _pyyaml([value])
    if not text.startswith("- ") or text.count("\n") != 1 or len(text) > _SAFE_COLUMN:
        raise _Unusual
    return text[2:-1]


@lru_cache(maxsize=65536)
def _key_text(key: str) -> str:
    """How PyYAML writes a mapping key (a simple key: short, one line)."""
    text = _pyyaml({key: 0})
    if not text.endswith(": 0\n") or text.count("\n") != 1 or len(text) > _SAFE_COLUMN:
        raise _Unusual
    return text[:-4]


def _scalar(value: Any) -> str:
    if type(value) not in (str, int, bool) and value is not None:
        raise _Unusual  # floats, dates, subclasses: PyYAML decides
    return _value_text(value)


def _emit_mapping(
    mapping: dict[Any, Any], indent: int, first: str, out: list[str], seen: set[int]
) -> None:
    """``mapping`` with its keys at column ``indent``; the first key's line starts ``first``
    (``"- "`` after a list's dash, else the indentation). ``seen``: the ids of the containers
    met so far (one met twice gets an anchor and an alias from PyYAML)."""
    pad = " " * indent
    for key, value in mapping.items():
        if type(key) is not str:
            raise _Unusual
        _once(value, seen)
        head = (first or pad) + _key_text(key) + ":"
        first = ""
        if type(value) is dict and value:
            out.append(head + "\n")
            _emit_mapping(value, indent + 2, "", out, seen)
        elif type(value) is list and value:
            out.append(head + "\n")
            _emit_sequence(value, indent + 2, out, seen)
        else:
            line = head + " " + _empty_or_scalar(value)
            if len(line) > _SAFE_COLUMN:
                raise _Unusual
            out.append(line + "\n")


def _emit_sequence(items: list[Any], indent: int, out: list[str], seen: set[int]) -> None:
    dash = " " * indent + "- "
    for item in items:
        _once(item, seen)
        if type(item) is dict and item:
            _emit_mapping(item, indent + 2, dash, out, seen)
        elif type(item) is list and item:
            raise _Unusual
        else:
            line = dash + _empty_or_scalar(item)
            if len(line) > _SAFE_COLUMN:
                raise _Unusual
            out.append(line + "\n")


def _once(value: Any, seen: set[int]) -> None:
    if isinstance(value, (dict, list)):
        if id(value) in seen:
            raise _Unusual
        seen.add(id(value))


def _empty_or_scalar(value: Any) -> str:
    if type(value) is dict:  # empty
        return "{}"
    if type(value) is list:
        return "[]"
    return _scalar(value)


def sorted_policies(policies: Iterable[Policy]) -> list[Policy]:
    return sorted(policies, key=lambda p: (p.namespace, p.name))


def render_yaml(policies: Iterable[Policy]) -> str:
    """All ``policies`` as one multi-document YAML stream, ordered by namespace and name.

    Args:
        policies: the policies to render (``GenerateResult.policies``, or any model objects).

    Returns:
        The YAML text, each document starting with ``---``: what ``netpolgen from-flows``
        prints. Strings a YAML 1.1 reader would retype are quoted.

    Examples:
        >>> print(render_yaml(result.policies))  # doctest: +SKIP
    """
    return "".join("---\n" + dump_yaml(p.to_manifest()) for p in sorted_policies(policies))
