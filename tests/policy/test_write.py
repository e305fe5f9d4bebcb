"""The last line of defence: no policy name or namespace becomes a path outside the output."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpolgen.errors import OutputError
from netpolgen.policy.model import Policy
from netpolgen.policy.write import policy_path, write_policy_dir, write_tree
from netpolgen.selectors import LabelSelector

HOSTILE = ["../x", "/etc", "a/b", "..", "Shop", "a" * 300, "x\ny", "", " x", "x.", "-x", "ä"]


def policy(name: str = "web-access-ingress", namespace: str = "shop") -> Policy:
    return Policy(
        name=name, namespace=namespace, pod_selector=LabelSelector.of({"app": "web"}),
        policy_types=("Ingress",),
    )  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_namespaces_and_names_are_refused(value: str) -> None:
    with pytest.raises(OutputError):
        policy_path(policy(namespace=value))
    with pytest.raises(OutputError):
        policy_path(policy(name=value))


@pytest.mark.parametrize("value", HOSTILE)
def test_nothing_is_written_for_a_hostile_policy(tmp_path: Path, value: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(OutputError):
        write_policy_dir([policy(), policy(namespace=value)], out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("relative", ["../escape.yaml", "/abs.yaml", "a/../../b.yaml"])
def test_write_tree_refuses_paths_outside(tmp_path: Path, relative: str) -> None:
    with pytest.raises(OutputError, match="outside the output directory"):
        write_tree({Path(relative): "x"}, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_valid_names_are_written_where_expected(tmp_path: Path) -> None:
    written = write_policy_dir([policy(), policy("db.v2-access-ingress", "a" * 63)], tmp_path / "o")
    assert sorted(map(str, written)) == [f"{'a' * 63}/db.v2-access-ingress.yaml",
                                         "shop/web-access-ingress.yaml"]  # fmt: skip
