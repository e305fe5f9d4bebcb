"""netpolgen: least-privilege Kubernetes NetworkPolicies from observed network flows.

The public API, the same functions the CLI calls::

    import netpolgen
    flows = netpolgen.load_flows("sample_flows/three-tier.csv")
    result = netpolgen.generate(flows, netpolgen.GenerateOptions(egress=False))
    print(netpolgen.render_yaml(result.policies))
"""

from netpolgen.aggregate import aggregate_edges
from netpolgen.errors import NetpolgenError
from netpolgen.explore import (
    Summary,
    edge_table,
    format_summary,
    inspect_flows,
    policy_effect,
    port_matrix,
    summarize,
    write_graph,
)
from netpolgen.flows import FLOW_SCHEMA, validate_flows
from netpolgen.identity import Workloads, identify_workloads
from netpolgen.ingest import FORMATS, IngestReport, load_flows
from netpolgen.ingest.inventory import Inventory, load_inventory
from netpolgen.output import write_policy_dir
from netpolgen.pipeline import GenerateOptions, GenerateResult, generate, generate_from_files
from netpolgen.policy.model import Policy
from netpolgen.policy.render import render_yaml
from netpolgen.policy.synthesize import synthesize
from netpolgen.resolve import resolve_flows

__version__ = "0.1.0"

__all__ = [
    "FLOW_SCHEMA",
    "FORMATS",
    "GenerateOptions",
    "GenerateResult",
    "IngestReport",
    "Inventory",
    "NetpolgenError",
    "Policy",
    "Summary",
    "Workloads",
    "__version__",
    "aggregate_edges",
    "edge_table",
    "format_summary",
    "generate",
    "generate_from_files",
    "identify_workloads",
    "inspect_flows",
    "load_flows",
    "load_inventory",
    "policy_effect",
    "port_matrix",
    "render_yaml",
    "resolve_flows",
    "summarize",
    "synthesize",
    "validate_flows",
    "write_graph",
    "write_policy_dir",
]
