"""Fault injection for the tests only (``tests/test_faults.py``): inert unless the environment
variable ``NETPOLGEN_TEST_FAULT`` is set, which no user has reason to set.

``checkpoint(name)`` is called at the moments worth interrupting: after each chunk of flows is
read, after each file is staged, just before and after the renames that publish an output.

* ``NETPOLGEN_TEST_FAULT=SIGKILL@7`` (any signal name, ``N`` counted from 1): at the 7th
  checkpoint this process sends itself that signal, as a user's Ctrl-C (``SIGINT``), a
  ``kill`` (``SIGTERM``) or the out-of-memory killer (``SIGKILL``) would at that moment.
* ``NETPOLGEN_TEST_FAULT=list``: each checkpoint prints ``netpolgen-checkpoint: NAME`` on
  standard error, so that a test knows how many there are to choose from.
* ``NETPOLGEN_TEST_FAULT=pause:0.2``: each checkpoint sleeps that many seconds, so that two
  runs started together are sure to be publishing at the same time.
"""

from __future__ import annotations

import os
import signal
import sys
import time

_SPEC = os.environ.get("NETPOLGEN_TEST_FAULT")
_passed = 0


def checkpoint(name: str) -> None:
    """A moment at which a test may stop this process (see the module's docstring)."""
    global _passed
    if _SPEC is None:
        return
    if _SPEC == "list":
        print(f"netpolgen-checkpoint: {name}", file=sys.stderr, flush=True)
        return
    if _SPEC.startswith("pause:"):
        time.sleep(float(_SPEC[len("pause:") :]))
        return
    signame, _, at = _SPEC.partition("@")
    _passed += 1
    if _passed == int(at):
        os.kill(os.getpid(), signal.Signals[signame])
