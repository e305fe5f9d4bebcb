"""The exceptions netpolgen raises.

Every error the library raises on purpose derives from :class:`NetpolgenError`, so a caller (the
CLI, a notebook) needs one ``except`` clause. The CLI turns it into a one-line message and exit
code 1 in exactly one place (``netpolgen.cli``)::

    NetpolgenError                  any problem netpolgen reports to its user
    ├── InputError                  a flow file cannot be read or a record is malformed
    │   ├── FormatDetectionError    no known format matches the content
    │   └── NoUsableFlowsError      every record was skipped or filtered: nothing to generate from
    ├── NoPoliciesError             usable flows were read, but they give no policy (and why)
    ├── SchemaError                 a flow table lacks a column or has a wrong dtype
    ├── InventoryError              a pod inventory cannot be read
    ├── PolicyParseError            a NetworkPolicy document cannot be read
    └── OutputError                 output cannot be written (exists, not a directory, ...)

Errors carry their context (``source``, ``line``, ``hint``) as attributes, and ``str(error)``
renders them as ``source:line: message (hint: ...)``, the form compilers and linters use.
"""

from __future__ import annotations


class NetpolgenError(Exception):
    """Root of every error netpolgen raises on purpose.

    Args:
        message: what went wrong, in words a user understands.
        source: the file (or ``<stdin>``) the problem was found in, if any.
        line: the 1-based line or record number within ``source``, if any.
        hint: how to fix it, if there is a likely fix.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line
        self.hint = hint

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the context when an error crosses a process boundary (parallel parsing, Dask).
        return (_rebuild, (type(self), self.message, self.source, self.line, self.hint))

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = f"{self.source}:{self.line}: " if self.line is not None else f"{self.source}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class InputError(NetpolgenError):
    """A flow file cannot be read, or one of its records is malformed."""


class FormatDetectionError(InputError):
    """The content of a flow file matches none of the known formats."""


class NoUsableFlowsError(InputError):
    """The input was read, but every record was skipped or filtered: no flow is left to use.

    Writing an empty policy set would look like success (and ``-o DIR --force`` would replace a
    good directory with an empty one), so the CLI treats it as an error.
    """


class NoPoliciesError(NetpolgenError):
    """Usable flows were read, but no policy came of them (every endpoint outside the cluster or
    unresolved, ``-n`` matching nothing, both directions off, an address-only log without an
    inventory; or, for ``verify`` and ``diff``, no policy loaded).

    As with :class:`NoUsableFlowsError`, an empty result that exits 0 looks like success, and
    would let ``-o DIR --force`` empty a good directory: the message says why and what to pass.
    """


class SchemaError(NetpolgenError):
    """A flow table does not follow the documented schema (``netpolgen.flows``)."""


class InventoryError(NetpolgenError):
    """A pod inventory (``kubectl get ... -o json``) cannot be read."""


class PolicyParseError(NetpolgenError):
    """A NetworkPolicy document cannot be read into the policy model."""


class OutputError(NetpolgenError):
    """Output cannot be written where it was asked for."""


def _rebuild(
    cls: type[NetpolgenError], message: str, source: str | None, line: int | None, hint: str | None
) -> NetpolgenError:
    return cls(message, source=source, line=line, hint=hint)
