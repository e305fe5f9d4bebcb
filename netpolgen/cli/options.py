"""What every command shares: option decorators, the accounting on standard error, checks.

Nothing here imports pandas or the pipeline at module level: ``netpolgen --help``, ``--version``
and a usage error are answered before any of it is needed (issue 17). The few constants the
options need (the flow formats, the default line limit) are spelled here and a test checks them
against the library's own (``tests/cli/test_startup.py``).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from netpolgen.cli.progress import verbosity_options

if TYPE_CHECKING:
    from netpolgen.ingest.report import IngestReport

F = TypeVar("F", bound=Callable[..., Any])

# netpolgen.FORMATS, in its order (checked by a test); "auto" sniffs the content.
FLOW_FORMATS = ("hubble", "gcp-vpc", "azure", "aws-vpc", "csv")
# Policy APIs written (netpolgen.policy.flavors.FLAVORS; a test keeps them equal).
POLICY_FLAVORS = ("k8s", "cilium", "calico-staged")
# netpolgen.ingest.report.DEFAULT_MAX_LINE_BYTES (checked by a test).
DEFAULT_MAX_LINE_BYTES = 1 << 20


def input_limit_options(command: F) -> F:
    """``--max-line-bytes`` and ``--summary``: shared by the commands that read flows."""
    command = click.option(
        "--summary", type=click.Choice(["text", "json"]), default="text", show_default=True,
        help="How to print the accounting on standard error (records read = used + skipped + "
             "filtered, by reason); json is one machine-readable line, printed even with -q.",
    )(command)  # fmt: skip
    return click.option(
        "--max-line-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_LINE_BYTES,
        show_default=True,
        help="Skip (and count) longer lines of line-based formats without reading them whole.",
    )(command)  # fmt: skip


def echo_report(
    report: IngestReport,
    warnings: list[str],
    quiet: bool,
    verbose: int = 0,
    *,
    summary: bool = True,
) -> None:
    """Print the formats read (``-v``), the warnings and the accounting line on standard error.

    With ``-v`` the report's details (examples behind a count of the summary line) and the first
    few addresses the inventory matched to nothing follow the warnings (``-vv``: all of them).
    """
    if quiet:
        return
    if verbose:
        for name, fmt in report.formats.items():
            click.echo(f"read {name} as {fmt}", err=True)
    for message in report.messages:
        click.echo(f"warning: {message}", err=True)
    if verbose:
        for detail in report.details:
            click.echo(f"note: {detail}", err=True)
        listed = report.unmatched_text() if verbose == 1 else report.unmatched_text(None)
        if listed is not None:
            click.echo(listed, err=True)
    for message in warnings if verbose else grouped_warnings(warnings):
        click.echo(f"warning: {message}", err=True)
    if summary or verbose:
        click.echo(report.summary(), err=True)


# Warnings of one kind printed without -v; the rest are counted in one line.
WARNINGS_PER_KIND = 5


def grouped_warnings(warnings: Sequence[str]) -> list[str]:
    """``warnings`` with at most :data:`WARNINGS_PER_KIND` of each kind, the rest counted in one
    line after the last one shown: a cluster can have hundreds of workload pairs with the same
    finding (ICMP between them, say), which would bury the summary. A kind is the text after a
    warning's last ``": "`` (the finding; what comes before names the edge or the file).
    ``-v`` and ``--summary json`` keep every warning."""
    kinds = [message.rsplit(": ", 1)[-1] for message in warnings]
    totals = Counter(kinds)
    shown: Counter[str] = Counter()
    out: list[str] = []
    for message, kind in zip(warnings, kinds, strict=True):
        shown[kind] += 1
        if shown[kind] <= WARNINGS_PER_KIND:
            out.append(message)
        if shown[kind] == WARNINGS_PER_KIND and totals[kind] > WARNINGS_PER_KIND:
            out.append(f"{totals[kind] - WARNINGS_PER_KIND} more: {kind} (-v lists them all)")
    return out


def engine_options(command: F) -> F:
    """``--engine``, ``--scheduler`` and ``--workers``: how the flows are read and reduced.

    Shared by the commands that stream flows, so they all scale the same way.
    """
    command = click.option(
        "--workers", type=click.IntRange(min=0), default=0, show_default="0: one per core",
        help="Processes that parse big flow files in parallel (1: off). By default big Hubble "
        "JSON files are cut into parts for N processes, and a big AWS VPC file is read by one "
        "process while this one works on its chunks; from-flows also splits a big CSV file "
        "when N is given (~300 MB more memory per process; on 2 cores the default, which "
        "parses CSV on a second thread, is faster).",
    )(command)  # fmt: skip
    return dask_options(command)


def dask_options(command: F) -> F:
    """``--engine`` and ``--scheduler``: read the flows in this process or on Dask."""
    command = click.option(
        "--scheduler", metavar="ADDRESS", default=None,
        help="With --engine dask: a Dask scheduler (tcp://host:8786); default a local cluster.",
    )(command)  # fmt: skip
    return click.option(
        "--engine", type=click.Choice(["pandas", "dask"]), default="pandas", show_default=True,
        help="pandas: stream the files in this process; dask: read them on a Dask cluster, "
             "one task per file (many files, globs, fsspec URLs; from-flows also reduces them "
             "there; pip install 'netpolgen[dask]').",
    )(command)  # fmt: skip


def progress_names(inputs: Sequence[str], engine: str) -> list[str]:
    """The files a progress bar counts: the inputs, or with Dask what their globs expand to."""
    if engine != "dask":
        return list(inputs)
    from netpolgen.engine.dask import named_inputs

    return [name for name, _ in named_inputs(inputs)]


flow_format_option = click.option(
    "-f", "--flow-format", "flow_format", default="auto", show_default=True,
    type=click.Choice(["auto", *FLOW_FORMATS]), help="Flow-log format; auto sniffs content.",
)  # fmt: skip
inventory_option = click.option(
    "-i", "--inventory", "inventories", multiple=True, type=click.Path(), metavar="FILE",
    help="kubectl get pods,services,namespaces,nodes -A -o json; repeat for snapshots "
         "(or give a directory of them).",
)  # fmt: skip


@contextmanager
def summary_on_error(
    report: IngestReport, warnings: list[str], summary: str, quiet: bool
) -> Iterator[None]:
    """On an input error, still print what was read: the skip messages explain the error."""
    from netpolgen.errors import NetpolgenError
    from netpolgen.ingest.accounting import summary_json

    try:
        yield
    except NetpolgenError as error:
        if summary == "json":
            click.echo(summary_json(report, warnings, error=str(error)), err=True)
        elif not quiet:
            for message in report.messages:
                click.echo(f"warning: {message}", err=True)
        raise


def echo_warnings(warnings: list[str], quiet: bool) -> None:
    """Print ``warnings`` on standard error unless quiet."""
    if not quiet:
        for message in warnings:
            click.echo(f"warning: {message}", err=True)


def require_usable_flows(report: IngestReport) -> None:
    """Raise ``NoUsableFlowsError`` when nothing in ``report`` was usable (see the README)."""
    from netpolgen.ingest import accounting

    accounting.require_usable_flows(report)


def summary_json(report: IngestReport, warnings: list[str], **extra: Any) -> str:
    """The ``--summary json`` line: the accounting of ``report`` plus ``extra`` fields."""
    from netpolgen.ingest import accounting

    return accounting.summary_json(report, warnings, **extra)


# The global options: accepted before the subcommand (``netpolgen -q verify ...``) and after it
# (``netpolgen verify ... -q``), meaning the same either way. The group stores its own in
# ``ctx.obj``; each command merges them with its own (a flag set in either place is set).
def global_options(command: F) -> F:
    """``-q/--quiet``, ``-v/--verbose`` and ``--debug``, plus the checks every command shares.

    The wrapped command receives ``quiet`` and ``verbose`` merged with the group's. Before it
    runs: ``--scheduler`` without ``--engine dask`` is a usage error, and so is a flow file or
    inventory that does not exist (exit 2 in every command, not a library error).
    """

    @functools.wraps(command)
    def run(*args: Any, quiet: bool, verbose: int, debug: bool, **kwargs: Any) -> Any:
        outer = click.get_current_context().find_root().obj or {}
        quiet = quiet or bool(outer.get("quiet"))
        verbose = verbose + int(outer.get("verbose", 0))
        if kwargs.get("scheduler") and kwargs.get("engine") != "dask":
            raise click.UsageError("--scheduler needs --engine dask")
        check_inputs(kwargs.get("flows", ()), kwargs.get("engine", "pandas"), "FLOWS")
        check_inputs(kwargs.get("inventories", ()), "pandas", "'-i' / '--inventory'")
        # Chunk after chunk of big arrays (netpolgen._memory), set once the arguments are
        # parsed: --help, --version and usage errors do not import ctypes for it.
        from netpolgen._memory import tune_allocator

        tune_allocator()
        return command(*args, quiet=quiet, verbose=verbose, **kwargs)

    run = verbosity_options(run)
    return click.option(
        "--debug", is_flag=True, help="Show Python tracebacks for internal errors."
    )(run)  # type: ignore[return-value]


def check_inputs(names: Sequence[str], engine: str, hint: str) -> None:
    """A usage error (exit 2) for an input that does not exist.

    ``-`` is standard input; with ``--engine dask`` globs and fsspec URLs (``s3://...``) are
    left to Dask to expand. Flows and inventories may be directories (their files: a bucket's
    export as stored; snapshots).
    """
    for name in names:
        if name == "-" or (engine == "dask" and ("://" in name or any(c in name for c in "*?["))):
            continue
        path = Path(name)
        if not path.exists():
            raise click.BadParameter(f"{name}: no such file", param_hint=hint)


def is_yaml_file(output: str) -> bool:
    """Whether ``-o output`` names one YAML file rather than a directory.

    A name ending in ``.yaml`` or ``.yml`` is a file unless a directory of that name exists
    (then it is written as before), so ``-o out.yaml`` no longer makes a directory.
    """
    return output.lower().endswith((".yaml", ".yml")) and not Path(output).is_dir()


def report_output_option(command: F) -> F:
    """``-o/--output``: where a report goes, ``-`` (standard output, the default) or a file."""
    return click.option(
        "-o", "--output", "output", default="-", show_default=True, metavar="-|FILE",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="Write the report to FILE (replaced whole) instead of standard output.",
    )(command)  # fmt: skip


def report_format_option(choices: Sequence[str]) -> Callable[[F], F]:
    """``-F/--format``: the report's format (the flow format is ``-f/--flow-format``)."""
    return click.option(
        "-F", "--format", "report_format", type=click.Choice(list(choices)),
        default=choices[0], show_default=True, help="Report format.",
    )  # fmt: skip


def emit(text: str, output: str) -> None:
    """Print ``text`` on standard output (``-``) or replace the file ``output`` with it whole."""
    if output == "-":
        click.echo(text, nl=False)
        return
    # Whole or not at all, the error naming the file (a full or read-only disk included).
    from netpolgen.policy.write import write_text_file

    write_text_file(text, output, what="report")
