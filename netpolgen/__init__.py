"""netpolgen: least-privilege Kubernetes NetworkPolicies from observed network flows.

The public API: the functions the CLI calls, for notebooks and scripts. Each returns pandas
DataFrames or the policy model and never prints or exits; every expected failure is a
:class:`NetpolgenError`. ``notebooks/explore.ipynb`` walks through them on a realistic sample::

    import netpolgen
    flows = netpolgen.load_flows("sample_flows/online-shop.hubble.jsonl")
    inventory = netpolgen.load_inventory("sample_flows/online-shop.inventory.json")
    result = netpolgen.generate(flows, netpolgen.GenerateOptions(namespaces=("shop",)),
                                inventory=inventory)
    netpolgen.edge_table(result)                       # who talks to whom, readable names
    netpolgen.verify(flows, result.policies, inventory).ok
    print(netpolgen.render_yaml(result.policies))

By step:

* read: :func:`load_flows` (any of :data:`FORMATS`), :func:`load_inventory`,
  :func:`resolve_flows` (addresses -> pods, services, nodes at each flow's time),
  :func:`load_policies`;
* look: :func:`summarize`, :func:`edge_table`, :func:`port_matrix`, :func:`policy_effect`
  (plots in :mod:`netpolgen.explore.plots`, with the ``notebook`` extra);
* generate: :func:`generate` with :class:`GenerateOptions` (the steps inside:
  :func:`aggregate_edges`, :func:`identify_workloads`, :func:`synthesize`),
  :func:`render_yaml`, :func:`write_policy_dir`;
* check and change: :func:`verify`, :func:`diff_policies`, :func:`plan_migration`,
  :func:`update_policies` (:func:`write_update`); review: :func:`build_report`,
  :func:`render_report` (:func:`report_files`, :func:`write_report`);
* the ``*_files`` and ``format_*`` functions are what the commands run and print.
"""

import importlib
from typing import TYPE_CHECKING, Any

# The names below are imported on first use (PEP 562 module __getattr__), not here: the command
# line imports this package, and ``netpolgen --help`` should not wait ~0.6 s for pandas, NumPy
# and scikit-learn that only a command's work needs. ``from netpolgen import verify`` and
# ``netpolgen.verify`` work as before; mypy and editors see the imports under TYPE_CHECKING.
if TYPE_CHECKING:
    from netpolgen.check.diff import PolicyDiff, diff_files, diff_policies, format_diff
    from netpolgen.check.effect import policy_effect
    from netpolgen.check.migrate import (
        MigrationOptions,
        MigrationPlan,
        plan_migration,
        plan_migration_from_files,
        write_plan,
    )
    from netpolgen.check.report import format_report
    from netpolgen.check.update import (
        UpdateResult,
        format_update,
        update_files,
        update_policies,
        write_update,
    )
    from netpolgen.check.verify import VerificationReport, verify, verify_files
    from netpolgen.cluster.inventory import Inventory, load_inventory
    from netpolgen.errors import (
        FormatDetectionError,
        InputError,
        InventoryError,
        NetpolgenError,
        NoPoliciesError,
        NoUsableFlowsError,
        OutputError,
        PolicyParseError,
        SchemaError,
    )
    from netpolgen.explore.graph import write_graph
    from netpolgen.explore.report import build_report, render_report, report_files, write_report
    from netpolgen.explore.summary import Summary, format_summary, inspect_flows, summarize
    from netpolgen.explore.tables import edge_table, port_matrix
    from netpolgen.flows import FLOW_SCHEMA, validate_flows
    from netpolgen.generator import generate, generate_from_files
    from netpolgen.identity.workloads import Workloads, identify_workloads
    from netpolgen.ingest import FORMATS, load_flows
    from netpolgen.ingest.dns import DnsMap, read_dns_map
    from netpolgen.ingest.report import IngestReport
    from netpolgen.policy.default_deny import default_deny_policies
    from netpolgen.policy.flavors import FLAVORS, flavor_yaml, write_flavor_dir
    from netpolgen.policy.from_reduction import GenerateOptions, GenerateResult
    from netpolgen.policy.guardrails import Guardrails, load_guardrails
    from netpolgen.policy.load import load_policies
    from netpolgen.policy.model import Policy
    from netpolgen.policy.render import render_yaml
    from netpolgen.policy.synthesize import synthesize
    from netpolgen.policy.write import write_policy_dir
    from netpolgen.reduce.edges import aggregate_edges
    from netpolgen.resolve import resolve_flows

_LAZY = {
    "DnsMap": "netpolgen.ingest.dns",
    "FLAVORS": "netpolgen.policy.flavors",
    "flavor_yaml": "netpolgen.policy.flavors",
    "read_dns_map": "netpolgen.ingest.dns",
    "Guardrails": "netpolgen.policy.guardrails",
    "load_guardrails": "netpolgen.policy.guardrails",
    "write_flavor_dir": "netpolgen.policy.flavors",
    "FLOW_SCHEMA": "netpolgen.flows",
    "FORMATS": "netpolgen.ingest",
    "GenerateOptions": "netpolgen.policy.from_reduction",
    "GenerateResult": "netpolgen.policy.from_reduction",
    "IngestReport": "netpolgen.ingest.report",
    "Inventory": "netpolgen.cluster.inventory",
    "MigrationOptions": "netpolgen.check.migrate",
    "MigrationPlan": "netpolgen.check.migrate",
    "FormatDetectionError": "netpolgen.errors",
    "InputError": "netpolgen.errors",
    "InventoryError": "netpolgen.errors",
    "NetpolgenError": "netpolgen.errors",
    "NoPoliciesError": "netpolgen.errors",
    "NoUsableFlowsError": "netpolgen.errors",
    "OutputError": "netpolgen.errors",
    "PolicyParseError": "netpolgen.errors",
    "SchemaError": "netpolgen.errors",
    "Policy": "netpolgen.policy.model",
    "PolicyDiff": "netpolgen.check.diff",
    "Summary": "netpolgen.explore.summary",
    "UpdateResult": "netpolgen.check.update",
    "VerificationReport": "netpolgen.check.verify",
    "Workloads": "netpolgen.identity.workloads",
    "aggregate_edges": "netpolgen.reduce.edges",
    "build_report": "netpolgen.explore.report",
    "format_update": "netpolgen.check.update",
    "render_report": "netpolgen.explore.report",
    "report_files": "netpolgen.explore.report",
    "update_files": "netpolgen.check.update",
    "update_policies": "netpolgen.check.update",
    "write_report": "netpolgen.explore.report",
    "write_update": "netpolgen.check.update",
    "default_deny_policies": "netpolgen.policy.default_deny",
    "diff_files": "netpolgen.check.diff",
    "diff_policies": "netpolgen.check.diff",
    "edge_table": "netpolgen.explore.tables",
    "format_diff": "netpolgen.check.diff",
    "format_report": "netpolgen.check.report",
    "format_summary": "netpolgen.explore.summary",
    "generate": "netpolgen.generator",
    "generate_from_files": "netpolgen.generator",
    "identify_workloads": "netpolgen.identity.workloads",
    "inspect_flows": "netpolgen.explore.summary",
    "load_flows": "netpolgen.ingest",
    "load_inventory": "netpolgen.cluster.inventory",
    "load_policies": "netpolgen.policy.load",
    "plan_migration": "netpolgen.check.migrate",
    "plan_migration_from_files": "netpolgen.check.migrate",
    "policy_effect": "netpolgen.check.effect",
    "port_matrix": "netpolgen.explore.tables",
    "render_yaml": "netpolgen.policy.render",
    "resolve_flows": "netpolgen.resolve",
    "summarize": "netpolgen.explore.summary",
    "synthesize": "netpolgen.policy.synthesize",
    "validate_flows": "netpolgen.flows",
    "verify": "netpolgen.check.verify",
    "verify_files": "netpolgen.check.verify",
    "write_graph": "netpolgen.explore.graph",
    "write_plan": "netpolgen.check.migrate",
    "write_policy_dir": "netpolgen.policy.write",
}

__version__ = "0.1.0"

__all__ = [
    "DnsMap",
    "FLAVORS",
    "FLOW_SCHEMA",
    "FORMATS",
    "FormatDetectionError",
    "GenerateOptions",
    "GenerateResult",
    "Guardrails",
    "IngestReport",
    "InputError",
    "Inventory",
    "InventoryError",
    "MigrationOptions",
    "MigrationPlan",
    "NetpolgenError",
    "NoPoliciesError",
    "NoUsableFlowsError",
    "OutputError",
    "Policy",
    "PolicyDiff",
    "PolicyParseError",
    "SchemaError",
    "Summary",
    "UpdateResult",
    "VerificationReport",
    "Workloads",
    "__version__",
    "aggregate_edges",
    "build_report",
    "default_deny_policies",
    "diff_files",
    "diff_policies",
    "edge_table",
    "flavor_yaml",
    "format_diff",
    "format_report",
    "format_summary",
    "format_update",
    "generate",
    "generate_from_files",
    "identify_workloads",
    "inspect_flows",
    "load_flows",
    "load_guardrails",
    "load_inventory",
    "load_policies",
    "plan_migration",
    "plan_migration_from_files",
    "policy_effect",
    "port_matrix",
    "read_dns_map",
    "render_report",
    "render_yaml",
    "report_files",
    "resolve_flows",
    "summarize",
    "synthesize",
    "update_files",
    "update_policies",
    "validate_flows",
    "verify",
    "verify_files",
    "write_flavor_dir",
    "write_graph",
    "write_plan",
    "write_policy_dir",
    "write_report",
    "write_update",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netpolgen' has no attribute {name!r}")
    from netpolgen._workers import collector_paused

    with collector_paused():
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
