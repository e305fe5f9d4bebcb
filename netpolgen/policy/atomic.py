"""The two file-system steps that make an output appear whole: a lock that keeps two runs from
publishing into one directory at once, and an atomic exchange of two directories.

* :func:`directory_lock`: ``flock`` on the directory that holds the output (``flock(2)`` works
  on a directory opened read-only, so no lock file is left beside the output). Two runs given
  the same ``-o`` take turns: the second sees the first's output whole, and without
  ``--force`` refuses it as it would any non-empty directory.
* :func:`exchange`: Linux's ``renameat2(RENAME_EXCHANGE)`` (since 3.15; glibc 2.28 has the
  wrapper) swaps a staged directory with the old output in one step, so a ``SIGKILL`` at any
  moment leaves the old output or the new one in place, never neither. Elsewhere (another
  system, a file system that refuses it with ``EINVAL``), the caller falls back to two renames.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from netpolgen.errors import OutputError

# How long a run waits for another to finish publishing beside it: publishing is a few
# renames, so a lock held this long belongs to a stopped (SIGSTOP) or hung process.
LOCK_TIMEOUT_SECONDS = 60.0
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# renameat2 refused as unsupported: by the kernel or libc, or by this file system.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP})


@contextmanager
def directory_lock(directory: Path, *, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``directory`` (which must exist) for the block; the
    value is whether the lock is held.

    Where no lock can be taken (no ``fcntl``, a file system without ``flock``, a directory that
    cannot be opened), the block runs unlocked (False): each run still publishes whole, but
    two runs may then both replace the output in turn, and nothing beside it may be taken for
    a dead run's leftovers.

    Raises:
        OutputError: another process has held the lock for ``timeout`` seconds.
    """
    try:
        import fcntl

        handle = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (ImportError, OSError):
        yield False
        return
    try:
        deadline = time.monotonic() + timeout
        locked = True
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OutputError(
                        "another netpolgen run has been writing here for "
                        f"{timeout:.0f} s; gave up waiting",
                        source=str(directory),
                    ) from None
                time.sleep(0.05)
            except OSError:
                locked = False  # no flock on this file system: unlocked, as above
                break
        yield locked
    finally:
        os.close(handle)  # releases the lock


def exchange(first: Path, second: Path) -> bool:
    """Swap ``first`` and ``second`` (both must exist) atomically; False where the system or
    file system cannot, and nothing was changed.

    Raises:
        OSError: the exchange was possible but failed (a permission, a vanished path).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False  # a libc without the wrapper (glibc before 2.28, some musl)
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    old, new = os.fsencode(first), os.fsencode(second)
    if renameat2(_AT_FDCWD, old, _AT_FDCWD, new, _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(second))
