"""Instructions counted by valgrind's callgrind: a figure that does not move from run to run,
for comparing two checkouts (``benchmarks.recipient``, ``benchmarks.action``)."""

from __future__ import annotations

import os
import re

#: What goes before a command whose instructions are counted (the count comes on stderr).
CALLGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]


def counted_environment(**extra: str) -> dict[str, str]:
    """The environment of a counted process: the hash seed fixed, so the same code counts the same."""
    return {**os.environ, "PYTHONHASHSEED": "0", **extra}


def collected(stderr: str) -> int:
    """The instructions callgrind says it counted, from the counted process's stderr."""
    found = re.search(r"Collected : (\d+)", stderr)
    if found is None:
        raise RuntimeError(f"callgrind said no count:\n{stderr[-2000:]}")
    return int(found.group(1))
