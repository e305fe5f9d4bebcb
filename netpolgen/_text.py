"""Words for messages: counts with the noun they agree with.

A foundation module (standard library only), so that the command line can use it without
importing the pipeline.
"""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``1 record``, ``2 records``, ``1 policy``, ``3 policies``, ``2 addresses``."""
    if count == 1:
        return f"{count} {noun}"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return f"{count} {noun[:-1]}ies"
    if noun.endswith(("s", "sh", "ch", "x")):
        return f"{count} {noun}es"
    return f"{count} {noun}s"
