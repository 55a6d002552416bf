"""A private test hook: ``kill_point(name)`` sends this process SIGKILL when the environment
variable ``_BIOCORESET_KILL_AT`` equals ``name``, and SIGSTOP (a pause, until SIGCONT) when
``_BIOCORESET_PAUSE_AT`` does. Tests kill or pause a command at a chosen step of an output's
replacement (docs/reliability.md). Unset, it costs two dictionary lookups."""

from __future__ import annotations

import os
import signal


def kill_point(name: str) -> None:
    """Die (SIGKILL, no cleanup) or pause (SIGSTOP) here when the test hook names this point."""
    if os.environ.get("_BIOCORESET_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("_BIOCORESET_PAUSE_AT") == name:
        os.kill(os.getpid(), signal.SIGSTOP)
