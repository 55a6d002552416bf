"""A private test hook: ``kill_point(name)`` sends this process SIGKILL when the environment
variable ``_BIOCORESET_KILL_AT`` equals ``name`` (tests kill a command at a chosen step of an
output's replacement, see docs/reliability.md). Unset, it costs one dictionary lookup."""

from __future__ import annotations

import os
import signal

_VAR = "_BIOCORESET_KILL_AT"


def kill_point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) when the test hook names this point."""
    if os.environ.get(_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)
