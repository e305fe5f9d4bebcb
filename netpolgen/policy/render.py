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


def dump_yaml(document: Any) -> str:
    """One YAML document, keys in insertion order (our manifests are built in a fixed order)."""
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1000,
    )


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
