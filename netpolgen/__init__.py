"""netpolgen: least-privilege Kubernetes NetworkPolicies from observed network flows.

The public API, the same functions the CLI calls::

    import netpolgen
    flows = netpolgen.load_flows("sample_flows/three-tier.csv")
    result = netpolgen.generate(flows, netpolgen.GenerateOptions(egress=False))
    print(netpolgen.render_yaml(result.policies))
"""

from netpolgen.aggregate import aggregate_edges
from netpolgen.diff import PolicyDiff, diff_files, diff_policies, format_diff
from netpolgen.errors import NetpolgenError
from netpolgen.flows import FLOW_SCHEMA, validate_flows
from netpolgen.identity import Workloads, identify_workloads
from netpolgen.ingest import FORMATS, IngestReport, load_flows
from netpolgen.migrate import (
    MigrationOptions,
    MigrationPlan,
    plan_migration,
    plan_migration_from_files,
    write_plan,
)
from netpolgen.output import write_policy_dir
from netpolgen.pipeline import GenerateOptions, GenerateResult, generate, generate_from_files
from netpolgen.policy.default_deny import default_deny_policies
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.render import render_yaml
from netpolgen.policy.synthesize import synthesize
from netpolgen.verify import VerificationReport, format_report, verify, verify_files

__version__ = "0.1.0"

__all__ = [
    "FLOW_SCHEMA",
    "FORMATS",
    "GenerateOptions",
    "GenerateResult",
    "IngestReport",
    "MigrationOptions",
    "MigrationPlan",
    "NetpolgenError",
    "Policy",
    "PolicyDiff",
    "VerificationReport",
    "Workloads",
    "__version__",
    "aggregate_edges",
    "default_deny_policies",
    "diff_files",
    "diff_policies",
    "format_diff",
    "format_report",
    "generate",
    "generate_from_files",
    "identify_workloads",
    "load_flows",
    "load_policies",
    "plan_migration",
    "plan_migration_from_files",
    "render_yaml",
    "synthesize",
    "validate_flows",
    "verify",
    "verify_files",
    "write_plan",
    "write_policy_dir",
]
