"""The ``netpolgen`` command: thin wrappers that parse options and call one library function.

Exit codes: 0 success; 1 error (bad input, named with file and line); 2 usage; 3 ``verify`` found
observed flows that the policies deny. Policies and reports go to standard output or the output
directory; progress, summaries and warnings go to standard error.

Startup: this module and the command modules import only click and the standard library at
module level; a command imports the pipeline (pandas, NumPy, ...) when it runs, through the lazy
public API (``netpolgen.__getattr__``). ``--help``, ``--version`` and usage errors never wait for
it (``tests/cli/test_startup.py``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from netpolgen import __version__
from netpolgen.cli.check import diff_command, migrate_command, verify_command
from netpolgen.cli.generate import from_flows
from netpolgen.cli.look import inspect
from netpolgen.cli.progress import verbosity_options
from netpolgen.cli.review import REVIEW_COMMANDS

EXIT_ERROR = 1


class _Group(click.Group):
    """The one place where library errors become clean messages (exit code 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        from netpolgen.errors import NetpolgenError

        try:
            return super().invoke(ctx)
        except NetpolgenError as error:
            raise click.ClickException(str(error)) from None


def _debug_requested() -> bool:
    return "--debug" in sys.argv or os.environ.get("NETPOLGEN_DEBUG") == "1"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netpolgen")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for internal errors.")
@verbosity_options
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool, verbose: int) -> None:
    """Least-privilege Kubernetes NetworkPolicies from observed network flows.

    -q, -v and --debug may come before the command or after it. Shell completion:
    eval "$(_NETPOLGEN_COMPLETE=bash_source netpolgen)" in ~/.bashrc (zsh_source,
    fish_source for the others).

    \b
    Exit codes:
      0  success (diff: the sets allow the same connections)
      1  error: bad input, named with file and line (diff: the sets differ)
      2  usage error: an unknown option, a missing file
      3  verify found observed flows that the policies deny
    """
    ctx.obj = {"quiet": quiet, "verbose": verbose}


for _command in (from_flows, inspect, verify_command, diff_command, migrate_command):
    cli.add_command(_command)
for _command in REVIEW_COMMANDS:  # update, report
    cli.add_command(_command)


def main() -> None:
    """Console entry point: run the CLI; an unexpected error leaves a crash report, not a trace."""
    try:
        cli.main(prog_name="netpolgen")
    except Exception:  # the one boundary for bugs: a short message plus a report for issues
        if _debug_requested():
            raise
        import tempfile
        import traceback

        with tempfile.NamedTemporaryFile(
            "w", prefix="netpolgen-crash-", suffix=".txt", delete=False
        ) as handle:
            traceback.print_exc(file=handle)
        click.echo(
            f"Error: internal error in netpolgen; details in {handle.name} "
            "(rerun with --debug to see them here)",
            err=True,
        )
        sys.exit(EXIT_ERROR)
