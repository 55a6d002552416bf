"""Progress reporting for every long step: tqdm bars on a terminal, timed log lines otherwise.

Four modes (the ``--progress`` option of every long command):

* ``"bar"`` — a tqdm bar with rate and ETA;
* ``"log"`` — one line on stderr every :data:`DEFAULT_INTERVAL` seconds (30 s) with done/total,
  rate, ETA and the step's extra fields (e.g. the loss), and a last line when a step that logged
  finishes — what a job under ``nohup``, a scheduler or ``2> log.txt`` needs;
* ``"auto"`` (default) — ``"bar"`` when stderr is a terminal, else ``"log"``;
* ``"none"`` — nothing.

Functions take ``progress=None`` (the process-wide mode, set by the command line with
:func:`set_progress` or by the ``BIOCORESET_PROGRESS`` / ``BIOCORESET_PROGRESS_INTERVAL``
environment variables), ``False`` (nothing), ``True`` (show, in the process-wide mode) or a mode name.

>>> bar = progress_bar(total=3, enabled=False, desc="demo")
>>> bar.update(3); bar.close()
>>> import io
>>> log = LogProgress(total=4, desc="score", unit="seq", interval=0, file=io.StringIO())
>>> log.update(2); log.file.getvalue().startswith("score: 2/4 seq (50%)")
True
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from biocoreset.errors import ConfigError, did_you_mean

__all__ = [
    "DEFAULT_INTERVAL",
    "PROGRESS_MODES",
    "LogProgress",
    "log_interval",
    "progress_bar",
    "progress_enabled",
    "progress_mode",
    "progress_settings",
    "set_progress",
]

PROGRESS_MODES = ("auto", "bar", "log", "none")
"""Accepted values of ``--progress``."""

DEFAULT_INTERVAL = 30.0
"""Seconds between two lines in ``"log"`` mode."""

_settings: dict[str, Any] = {"mode": None, "interval": None}


def _check_mode(mode: str) -> str:
    if mode not in PROGRESS_MODES:
        raise ConfigError(
            f"progress must be one of {', '.join(PROGRESS_MODES)}; got {mode!r}."
            + did_you_mean(str(mode), PROGRESS_MODES)
        )
    return mode


def set_progress(mode: str | None = None, *, interval: float | None = None) -> None:
    """Set the process-wide progress mode and the log interval (``None``: leave as is).

    Prefer :func:`progress_settings`, which restores the previous settings afterwards.

    Raises:
        ConfigError: Unknown mode or a negative interval.
    """
    if mode is not None:
        _settings["mode"] = _check_mode(mode)
    if interval is not None:
        if not interval >= 0:
            raise ConfigError(f"progress interval must be >= 0 seconds, got {interval!r}.")
        _settings["interval"] = float(interval)


@contextlib.contextmanager
def progress_settings(mode: str | None = None, *, interval: float | None = None) -> Iterator[None]:
    """:func:`set_progress` inside the block, the previous settings after it.

    >>> with progress_settings("log", interval=5):
    ...     progress_mode(None), log_interval()
    ('log', 5.0)
    """
    saved = dict(_settings)
    try:
        set_progress(mode, interval=interval)
        yield
    finally:
        _settings.update(saved)


def _default_mode() -> str:
    mode = _settings["mode"] or os.environ.get("BIOCORESET_PROGRESS") or "auto"
    return _check_mode(mode)


def log_interval() -> float:
    """Seconds between log lines: :func:`set_progress`'s, else ``$BIOCORESET_PROGRESS_INTERVAL``,
    else :data:`DEFAULT_INTERVAL`."""
    if _settings["interval"] is not None:
        return float(_settings["interval"])
    env = os.environ.get("BIOCORESET_PROGRESS_INTERVAL")
    try:
        return float(env) if env else DEFAULT_INTERVAL
    except ValueError:
        raise ConfigError(
            f"BIOCORESET_PROGRESS_INTERVAL must be a number of seconds, got {env!r}."
        ) from None


def progress_mode(enabled: bool | str | None) -> str:
    """Resolve ``enabled`` to ``"bar"``, ``"log"`` or ``"none"``.

    ``False``: ``"none"``; ``None`` or ``True``: the process-wide mode; a mode name: that mode.
    ``"auto"`` becomes ``"bar"`` when stderr is a terminal, else ``"log"``.

    >>> progress_mode(False), progress_mode("log")
    ('none', 'log')
    """
    if enabled is False:
        return "none"
    mode = _check_mode(enabled) if isinstance(enabled, str) else _default_mode()
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "log"
    return mode


def progress_enabled(enabled: bool | str | None) -> bool:
    """Whether ``enabled`` shows anything (see :func:`progress_mode`).

    >>> progress_enabled(False), progress_enabled("log")
    (False, True)
    """
    return progress_mode(enabled) != "none"


def progress_bar(iterable: Any = None, *, enabled: bool | str | None, **kw: Any) -> Any:
    """A progress object with tqdm's interface: a tqdm bar, a :class:`LogProgress` or a silent bar.

    Args:
        iterable: Optional iterable to wrap.
        enabled: ``None``/``True`` (the process-wide mode), ``False`` or a mode name.
        **kw: tqdm options (``total``, ``desc``, ``unit``, ``unit_scale``, ``initial``...).
    """
    mode = progress_mode(enabled)
    if mode == "log":
        return LogProgress(iterable, **kw)
    from tqdm.auto import tqdm

    kw.setdefault("dynamic_ncols", True)
    kw.setdefault("mininterval", 0.5)
    kw.setdefault("smoothing", 0.1)
    return tqdm(iterable, disable=mode == "none", **kw)


class LogProgress:
    """tqdm's interface, printing one line every ``interval`` seconds instead of drawing a bar.

    A line reads ``desc: done/total unit (pct%), rate unit/s, elapsed, ETA; extra fields``. Nothing
    is printed for a step shorter than ``interval``; a step that printed prints a last line when it
    closes.

    Args:
        iterable: Optional iterable to wrap (iterating counts one per item).
        total: Expected count (``None``: no percentage or ETA).
        desc: Name of the step.
        unit: Unit of the count.
        initial: Count already done (a resumed run).
        unit_scale: Show counts with k/M/G prefixes (bytes with ``unit_divisor=1024``).
        unit_divisor: 1000 or 1024.
        interval: Seconds between lines (default: :func:`log_interval`).
        file: Stream to write to (default: ``sys.stderr``).
        **_: Other tqdm options, ignored.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        unit_scale: bool = False,
        unit_divisor: int = 1000,
        interval: float | None = None,
        file: IO[str] | None = None,
        **_: Any,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = initial
        self.unit_scale = unit_scale
        self.unit_divisor = unit_divisor
        self.interval = log_interval() if interval is None else float(interval)
        self.file = file if file is not None else sys.stderr
        self._initial = initial
        self._start = self._last = time.monotonic()
        self._postfix = ""
        self._printed = False
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LogProgress was created without an iterable.")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Add ``n`` to the count; print a line when ``interval`` seconds have passed."""
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._emit(now)

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        """Extra fields shown at the end of the next line (e.g. ``loss=0.93``)."""
        fields = dict(ordered_dict or {}, **kwargs)
        self._postfix = ", ".join(f"{k}={v}" for k, v in fields.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Rename the step."""
        self.desc = desc or ""

    def refresh(self) -> None:
        """Print a line now."""
        self._emit(time.monotonic())

    def write(self, text: str) -> None:
        """Print ``text`` on its own line."""
        print(text, file=self.file, flush=True)

    def close(self) -> None:
        """Print the last line if this step printed before."""
        if self._closed:
            return
        self._closed = True
        if self._printed:
            self._emit(time.monotonic(), final=True)

    def _count(self, value: float) -> str:
        if self.unit_scale:
            from tqdm import tqdm

            return str(tqdm.format_sizeof(value, divisor=self.unit_divisor))
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"

    def _emit(self, now: float, *, final: bool = False) -> None:
        from tqdm import tqdm

        elapsed = now - self._start
        done = self.n - self._initial
        rate = done / elapsed if elapsed > 0 else 0.0
        count = self._count(self.n)
        if self.total:
            count += f"/{self._count(self.total)} {self.unit} ({100.0 * self.n / self.total:.0f}%)"
        else:
            count += f" {self.unit}"
        shown = self._count(rate) if self.unit_scale else f"{rate:.3g}"
        parts = [
            count,
            f"{shown} {self.unit}/s",
            f"elapsed {tqdm.format_interval(elapsed)}",
        ]
        if final:
            parts.append("done")
        elif self.total and rate > 0:
            parts.append(f"ETA {tqdm.format_interval(max(0.0, self.total - self.n) / rate)}")
        line = f"{self.desc or 'progress'}: " + ", ".join(parts)
        if self._postfix:
            line += f"; {self._postfix}"
        print(line, file=self.file, flush=True)
        self._printed = True
        self._last = now
