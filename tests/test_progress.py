"""Progress reporting: modes, and the timed log lines used without a terminal."""

from __future__ import annotations

import io
import re

import pytest

from biocoreset.errors import ConfigError
from biocoreset.runtime.progress import (
    LogProgress,
    log_interval,
    progress_bar,
    progress_enabled,
    progress_mode,
    progress_settings,
)


def test_modes_resolve(monkeypatch):
    monkeypatch.delenv("BIOCORESET_PROGRESS", raising=False)
    assert progress_mode(False) == "none" and progress_mode("bar") == "bar"
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal: auto logs
    assert progress_mode(None) == progress_mode(True) == "log"
    with progress_settings("none"):
        assert not progress_enabled(None) and progress_enabled("log")
    assert progress_mode(None) == "log"  # restored
    monkeypatch.setenv("BIOCORESET_PROGRESS", "none")
    assert progress_mode(None) == "none"
    monkeypatch.setenv("BIOCORESET_PROGRESS_INTERVAL", "2.5")
    assert log_interval() == 2.5
    with pytest.raises(ConfigError, match="progress must be one of auto, bar, log, none"):
        progress_mode("lgo")


def test_log_lines_give_done_total_rate_eta_and_fields(monkeypatch):
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr("biocoreset.runtime.progress.time.monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = LogProgress(total=10, desc="score", unit="seq", interval=2, file=out)  # t = 0
    bar.update(1)  # t = 1: too early
    bar.set_postfix(loss="1.2345")
    bar.update(3)  # t = 2: a line
    bar.update(2)  # t = 3: too early
    bar.close()  # t = 4: the last line
    lines = out.getvalue().splitlines()
    assert lines[0] == "score: 4/10 seq (40%), 2 seq/s, elapsed 00:02, ETA 00:03; loss=1.2345"
    assert lines[1].startswith("score: 6/10 seq (60%), 1.5 seq/s, elapsed 00:04, done")
    assert len(lines) == 2


def test_short_steps_print_nothing_and_iteration_counts():
    out = io.StringIO()
    items = list(LogProgress(range(5), desc="x", interval=60, file=out))
    assert items == [0, 1, 2, 3, 4] and out.getvalue() == ""
    fast = LogProgress(range(3), desc="x", interval=0, file=out)
    assert list(fast) == [0, 1, 2] and fast.n == 3
    assert re.search(r"x: 3/3 it \(100%\)", out.getvalue())


def test_byte_counts_and_resumed_runs(monkeypatch):
    out = io.StringIO()
    bar = LogProgress(
        total=4 << 20,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        initial=1 << 20,
        desc="read",
        interval=0,
        file=out,
    )
    bar.update(1 << 20)
    assert out.getvalue().startswith("read: 2.00M/4.00M B (50%)")


def test_progress_bar_picks_the_mode(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(progress_bar(total=3, enabled=None), LogProgress)
    assert not isinstance(progress_bar(total=3, enabled="bar"), LogProgress)
    with progress_bar(total=3, enabled=False) as silent:
        silent.update(3)
