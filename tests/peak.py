"""Peak memory of a child process, as the child reads it itself.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is wrong for this: Linux carries the parent's peak
across ``fork`` and ``exec`` into it (``signal->maxrss`` is set from the old address space at
exec), so a child of a pytest process that has grown to 800 MiB reports at least 800 MiB.
``VmHWM`` in ``/proc/self/status`` is the high-water mark of the process's own address space,
which exec starts afresh (proc(5)).
"""

from __future__ import annotations

# A Python expression for the child: its peak resident set in KiB (double quotes inside: the
# children embed it in single-quoted f-strings).
PEAK_RSS_KIB_EXPRESSION = (
    'int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))'
)
