"""``netpolgen update``: merging new traffic into an edited policy directory.

Documented behaviour encoded here (DESIGN.md "Policies", issue 20):
- Kubernetes NetworkPolicy semantics: a pod selected by a policy of a direction admits only
  what some rule of those policies allows; a pod no policy selects admits everything. So new
  traffic needs a rule exactly where an isolating policy denies it.
- update adds only rules (never widens one), keeps hand edits, refreshes the evidence
  annotations (netpolgen.io/flows, first-seen, last-seen), is idempotent, and prunes only when
  asked (--prune-after).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netpolgen
from netpolgen.check.update import parse_duration, update_policies, write_update
from netpolgen.errors import InputError, PolicyParseError
from netpolgen.policy.semantics import Evaluator
from tests.flowkit import flows

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
WEB = "default/app=myapp,role=web"
BACKEND = "default/app=myapp,role=backend"
DB = "default/app=myapp,role=db"


def _generated(tmp_path: Path) -> Path:
    """The three-tier sample's policies, as `netpolgen from-flows -o DIR` writes them."""
    result = netpolgen.generate_from_files([SAMPLES / "three-tier.csv"])
    directory = tmp_path / "policies"
    netpolgen.write_policy_dir(result.policies, directory)
    return directory


def _new_flows() -> pd.DataFrame:
    # The day after the sample: web calls a new backend port, and the known one again.
    return flows(
        {"time": "2026-11-21T10:00:00Z", "src": WEB, "dst": BACKEND, "dst_port": 9090,
         "count": 3},
        {"time": "2026-11-21T11:00:00Z", "src": WEB, "dst": BACKEND, "dst_port": 8080,
         "count": 2},
    )  # fmt: skip


def _tree(directory: Path) -> dict[Path, str]:
    return {p.relative_to(directory): p.read_text() for p in sorted(directory.rglob("*.yaml"))}


def test_adds_only_the_missing_rule_into_the_existing_policy(tmp_path: Path) -> None:
    directory = _generated(tmp_path)
    result = update_policies(_new_flows(), directory)
    assert sorted(map(str, result.changed_files)) == [
        "default/backend-access-ingress.yaml",
        "default/web-access-egress.yaml",
    ]
    added = result.rules[result.rules["change"] == "added"]
    assert list(added["policy"]) == ["default/backend-access-ingress", "default/web-access-egress"]
    assert set(added["ports"]) == {"TCP/9090"}
    after = {p.name: p for p in result.after}
    before = {p.name: p for p in result.before}
    # Appended after the existing rules, which are unchanged (never widened).
    ingress = after["backend-access-ingress"].ingress
    assert ingress[: len(before["backend-access-ingress"].ingress)] == (
        before["backend-access-ingress"].ingress
    )
    assert len(ingress) == len(before["backend-access-ingress"].ingress) + 1
    assert not result.diff.same
    assert set(result.diff.changes["change"]) == {"added"}


def test_evidence_is_refreshed(tmp_path: Path) -> None:
    directory = _generated(tmp_path)
    before = {p.name: dict(p.annotations) for p in netpolgen.load_policies(directory)}
    result = update_policies(_new_flows(), directory)
    after = {p.name: dict(p.annotations) for p in result.after}
    old = before["backend-access-ingress"]
    new = after["backend-access-ingress"]
    assert int(new["netpolgen.io/flows"]) == int(old["netpolgen.io/flows"]) + 5
    assert new["netpolgen.io/first-seen"] == old["netpolgen.io/first-seen"]
    assert new["netpolgen.io/last-seen"] == "2026-11-21T11:00:00Z"
    # db saw no new traffic: its evidence stays.
    assert after["db-access-ingress"] == before["db-access-ingress"]


def test_idempotent(tmp_path: Path) -> None:
    directory = _generated(tmp_path)
    first = update_policies(_new_flows(), directory)
    write_update(first, directory, force=True)
    written = _tree(directory)
    second = update_policies(_new_flows(), directory)
    assert second.changed_files == []
    assert second.diff.same
    assert {Path(k): v for k, v in second.files.items()} == written


def test_covered_flow_changes_no_rule(tmp_path: Path) -> None:
    # Only the already-allowed connection, later: evidence moves, rules do not.
    directory = _generated(tmp_path)
    result = update_policies(_new_flows().iloc[[1]], directory)
    assert result.rules.empty
    assert [p.ingress + p.egress for p in result.after] == [
        p.ingress + p.egress for p in result.before
    ]
    assert result.diff.same


HAND_RULE = """\
    # Prometheus scrapes the backend (added by hand, see TICKET-12)
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: monitoring
      ports:
        - protocol: TCP
          port: 9100
"""


def test_hand_written_rule_comment_and_annotation_survive(tmp_path: Path) -> None:
    directory = _generated(tmp_path)
    path = directory / "default" / "backend-access-ingress.yaml"
    text = path.read_text()
    text = text.replace(
        "  annotations:\n", "  annotations:\n    owner.example.com/team: payments\n"
    )
    text = text.replace("spec:\n", "spec:  # reviewed by the payments team\n")
    text += HAND_RULE
    path.write_text(text)
    # A wide hand rule covers web -> backend on any port: nothing to add for that side.
    result = update_policies(_new_flows(), directory)
    out = result.files[Path("default/backend-access-ingress.yaml")]
    assert "# Prometheus scrapes the backend (added by hand, see TICKET-12)" in out
    assert "# reviewed by the payments team" in out
    assert "owner.example.com/team: payments" in out
    policy = next(p for p in result.after if p.name == "backend-access-ingress")
    hand = next(p for p in netpolgen.load_policies(directory) if p.name == policy.name)
    assert policy.ingress[: len(hand.ingress)] == hand.ingress
    assert any(s.port == 9100 for r in policy.ingress for s in r.ports)
    assert any(s.port == 9090 for r in policy.ingress for s in r.ports)


def test_new_workload_in_default_deny_namespace_gets_its_own_policy(tmp_path: Path) -> None:
    directory = _generated(tmp_path)
    deny = netpolgen.default_deny_policies(["default"])
    netpolgen.write_policy_dir(deny, tmp_path / "deny")
    for file in (tmp_path / "deny").rglob("*.yaml"):
        (directory / file.relative_to(tmp_path / "deny")).write_text(file.read_text())
    cache = "default/app=myapp,role=cache"
    result = update_policies(
        flows({"time": "2026-11-21T10:00:00Z", "src": BACKEND, "dst": cache, "dst_port": 6379}),
        directory,
    )
    assert Path("default/cache-access-ingress.yaml") in result.changed_files
    assert set(result.diff.changes["change"]) == {"added"}
    report = netpolgen.verify(
        flows({"time": "2026-11-21T10:00:00Z", "src": BACKEND, "dst": cache, "dst_port": 6379}),
        result.after,
    )
    assert report.ok


def test_prune_only_when_asked(tmp_path: Path) -> None:
    directory = _generated(tmp_path)
    later = flows(
        {"time": "2026-12-30T10:00:00Z", "src": WEB, "dst": BACKEND, "dst_port": 8080},
    )
    kept = update_policies(later, directory)
    assert set(kept.rules["change"]) <= {"added"}
    pruned = update_policies(later, directory, prune_after=parse_duration("30d"))
    gone = pruned.rules[pruned.rules["change"] == "pruned"]
    # backend -> db was last seen on 2026-11-20, 40 days before the newest flow.
    assert "default/db-access-ingress" in set(gone["policy"])
    assert "default/backend-access-ingress" not in set(gone["policy"])
    assert set(pruned.diff.changes["change"]) == {"removed"}
    db = next(p for p in pruned.after if p.name == "db-access-ingress")
    assert db.ingress == ()
    # DNS rules stay: allowed observed or not.
    web = next(p for p in pruned.after if p.name == "web-access-egress")
    assert any(s.port == 53 for r in web.egress for s in r.ports)


def test_bad_policy_file_is_named(tmp_path: Path) -> None:
    directory = _generated(tmp_path)
    (directory / "default" / "broken.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(PolicyParseError) as error:
        update_policies(_new_flows(), directory)
    assert "broken.yaml" in str(error.value)


def test_duration() -> None:
    assert parse_duration("2w") == pd.Timedelta(days=14)
    with pytest.raises(InputError):
        parse_duration("a month")


# --- the property: sound for old and new flows, and nothing beyond them --------------------------

APPS = ("a", "b", "c", "d")
PORTS = (80, 443, 5432)
EDGE = st.tuples(st.sampled_from(APPS), st.sampled_from(APPS), st.sampled_from(PORTS))


def _flows(edges: list[tuple[str, str, int]], day: int) -> pd.DataFrame:
    return flows(
        *(
            {"time": f"2026-11-{day:02d}T10:00:{i % 60:02d}Z", "src": f"shop/app={s}",
             "dst": f"shop/app={d}", "dst_port": port}
            for i, (s, d, port) in enumerate(edges)
        )
    )  # fmt: skip


@pytest.mark.slow
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(old=st.lists(EDGE, min_size=1, max_size=8), new=st.lists(EDGE, min_size=1, max_size=8))
def test_update_is_sound_and_tight(
    tmp_path_factory: pytest.TempPathFactory, old: list[tuple[str, str, int]],
    new: list[tuple[str, str, int]],
) -> None:  # fmt: skip
    directory = tmp_path_factory.mktemp("prop") / "policies"
    options = netpolgen.GenerateOptions(allow_dns=False)
    old_flows, new_flows = _flows(old, 1), _flows(new, 2)
    netpolgen.write_policy_dir(netpolgen.generate(old_flows, options).policies, directory)
    result = update_policies(new_flows, directory, options=options)
    # Every flow, old and new, is allowed after update (netpolgen.verify replays them).
    assert netpolgen.verify(pd.concat([old_flows, new_flows]), result.after).ok
    # Nothing beyond the old set plus the new flows: check every pair of workloads and port.
    before, after = Evaluator(result.before), Evaluator(result.after)
    seen = set(new)
    for s, d, port in itertools.product(APPS, APPS, (*PORTS, 8080)):
        src, dst = ("shop", (("app", s),), None), ("shop", (("app", d),), None)
        if all(after.allows(src, dst, "TCP", port)):
            assert all(before.allows(src, dst, "TCP", port)) or (s, d, port) in seen
    # And a second run changes nothing.
    write_update(result, directory, force=True)
    assert update_policies(new_flows, directory, options=options).changed_files == []


def test_unisolated_workload_is_left_open_unless_isolate_new(tmp_path: Path) -> None:
    # Kubernetes: a pod no policy selects for ingress admits every connection, so by default
    # update adds nothing for it; --isolate-new writes its generated policy (and so removes
    # the connections the flows do not show, which the diff reports).
    directory = _generated(tmp_path)
    cache = "default/app=myapp,role=cache"
    new = flows({"time": "2026-11-21T10:00:00Z", "src": BACKEND, "dst": cache, "dst_port": 6379})
    default = update_policies(new, directory)
    assert not any("cache" in str(p) for p in default.changed_files)
    assert set(default.diff.changes["change"]) <= {"added"}
    isolated = update_policies(new, directory, isolate_new=True)
    assert Path("default/cache-access-ingress.yaml") in isolated.changed_files
    assert "removed" in set(isolated.diff.changes["change"])
    assert netpolgen.verify(new, isolated.after).ok
