"""The ``netpolgen`` command: thin wrappers that parse options and call one library function.

Exit codes: 0 success; 1 error (bad input, named with file and line); 2 usage; 3 ``verify`` found
observed flows that the policies deny; 130 and 143 stopped by SIGINT (Ctrl-C) and SIGTERM.
Policies and reports go to standard output or the output directory; progress, summaries and
warnings go to standard error.

Startup: this module and the command modules import only click and the standard library at
module level; a command imports the pipeline (pandas, NumPy, ...) when it runs, through the lazy
public API (``netpolgen.__getattr__``). ``--help``, ``--version`` and usage errors never wait for
it (``tests/cli/test_startup.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from typing import Any, NoReturn

import click

from netpolgen import __version__
from netpolgen._workers import keep_forkable
from netpolgen.cli.check import diff_command, migrate_command, verify_command
from netpolgen.cli.generate import from_flows
from netpolgen.cli.look import inspect
from netpolgen.cli.progress import verbosity_options
from netpolgen.cli.review import REVIEW_COMMANDS

EXIT_ERROR = 1
# A process stopped by signal N exits 128 + N, as a shell reports a child killed by it.
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised where the program was, like KeyboardInterrupt for SIGINT: a
    BaseException, so that the ``finally`` blocks and ``with`` exits on the way out remove
    temporary files and worker processes and no ``except Exception`` swallows it."""


class _Interrupted(click.ClickException):
    exit_code = EXIT_SIGINT


class _TerminatedExit(click.ClickException):
    exit_code = EXIT_SIGTERM


def _on_signal(signum: int, frame: object) -> None:
    # Once: a second Ctrl-C while the first one's clean-up runs would leave temporary files.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated


def _stopped(error: BaseException) -> click.ClickException:
    if isinstance(error, KeyboardInterrupt):
        return _Interrupted("interrupted (SIGINT)")
    return _TerminatedExit("terminated (SIGTERM)")


class _Group(click.Group):
    """The one place where library errors become clean messages (exit code 1), and SIGINT and
    SIGTERM one line and exit codes 130 and 143 (after the clean-up on the way out)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except (KeyboardInterrupt, Terminated) as error:
            raise _stopped(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        from netpolgen.errors import NetpolgenError

        try:
            return super().invoke(ctx)
        except NetpolgenError as error:
            raise click.ClickException(str(error)) from None
        except (KeyboardInterrupt, Terminated) as error:
            raise _stopped(error) from None


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
      130  interrupted (SIGINT, Ctrl-C); 143 terminated (SIGTERM): outputs left as they were
    """
    ctx.obj = {"quiet": quiet, "verbose": verbose}


for _command in (from_flows, inspect, verify_command, diff_command, migrate_command):
    cli.add_command(_command)
for _command in REVIEW_COMMANDS:  # update, report
    cli.add_command(_command)


def entry() -> NoReturn:
    """The ``netpolgen`` program (its console script and ``python -m netpolgen``): :func:`main`,
    then the process ends at once. The exit handlers run and the standard streams are written
    out, as at any exit; what is skipped is the interpreter's tear-down of every module and
    object one by one, which after a big run takes ~0.1 s to free memory that the system takes
    back whole. Every file netpolgen writes is closed (and renamed into place) before."""
    try:
        main()
    except SystemExit as stop:
        _end_process(stop.code)
    _end_process(0)


def _end_process(code: object) -> NoReturn:
    """``sys.exit(code)``, without the interpreter's tear-down (see :func:`entry`)."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # as sys.exit prints a message given instead of a number
        print(code, file=sys.stderr)
        status = EXIT_ERROR
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a reader that went away (``| head``) or a closed stream: nothing to add
    os._exit(status)


def main() -> None:
    """Run the CLI (ends with ``SystemExit``); an unexpected error leaves a crash report, not a
    trace."""
    keep_forkable()  # before NumPy and Arrow load: workers are then forked from this process
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored (nohup, &)
        signal.signal(signal.SIGINT, _on_signal)
    try:
        cli.main(prog_name="netpolgen")
    except Terminated:  # between the command's end and the exit
        click.echo("Error: terminated (SIGTERM)", err=True)
        sys.exit(EXIT_SIGTERM)
    except Exception:  # the one boundary for bugs: a short message plus a report for issues
        if _debug_requested():
            raise
        _crash_report()
        sys.exit(EXIT_ERROR)


def _crash_report() -> None:
    """The trace of the error being handled to a file in the temporary directory; when that
    cannot be written (a full or read-only disk), the message says so instead of a path."""
    # Imported here: --help and usage errors never need them (tests/cli/test_startup.py).
    import tempfile
    import traceback

    name = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix="netpolgen-crash-", suffix=".txt", delete=False
        ) as handle:
            name = handle.name
            traceback.print_exc(file=handle)
    except OSError as error:
        if name is not None:
            with contextlib.suppress(OSError):
                os.unlink(name)  # nothing partial stays
        where = name or tempfile.gettempdir()
        click.echo(
            "Error: internal error in netpolgen; no crash report: cannot write "
            f"{where}: {error.strerror or error} (rerun with --debug to see the details)",
            err=True,
        )
        return
    click.echo(
        f"Error: internal error in netpolgen; details in {name} "
        "(rerun with --debug to see them here)",
        err=True,
    )
