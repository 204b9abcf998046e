"""A one-line progress bar for batch runs, without dependencies or threads.

By default it draws only on an interactive terminal, so logs of CI jobs, pipes and captured
notebook output stay clean::

    with Progress(len(files), desc="cell cycle") as bar:
        for path in files:
            ...
            bar.update(note=path.name)

draws ``cell cycle [#####...............] 12/96 (12%) 3.1 files/s ETA 0:27 b07.fcs``.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]

# Seconds between redraws: ~10 a second is smooth to the eye and cheap on a slow terminal.
_MIN_INTERVAL = 0.1
_BAR_WIDTH = 20

# The clock, a module attribute so that tests can replace it.
_now = time.monotonic


def _is_tty(stream: TextIO | None) -> bool:
    if stream is None:
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _clock(seconds: float) -> str:
    """``M:SS``, or ``H:MM:SS`` from an hour up; rounded up, so work left never shows 0:00."""
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """A progress bar redrawn in place on one line of a terminal.

    Parameters
    ----------
    total
        Number of steps expected (0 is allowed: the bar is then full from the start).
    desc
        Label at the start of the line.
    enabled
        Draw or not; None (default) draws only when ``stream`` is a terminal (``isatty()``),
        so nothing is written in CI, into pipes or into captured notebook output.
    stream
        Where to draw; default :data:`sys.stderr` (as it is when the bar is created).
    unit
        What a step is, for the rate (``3.1 files/s``).

    Notes
    -----
    Redraws are limited to about ten a second; the last state is always drawn when the count
    reaches ``total`` and on :meth:`close`, which ends the line. Counting past ``total`` is
    allowed (the bar stays full). An error writing to the stream turns the bar off instead of
    interrupting the work it reports on.
    """

    def __init__(
        self,
        total: int,
        *,
        desc: str = "",
        enabled: bool | None = None,
        stream: TextIO | None = None,
        unit: str = "files",
    ) -> None:
        if total < 0:
            msg = f"total must be 0 or more steps, not {total}"
            raise ValueError(msg)
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _is_tty(self.stream) if enabled is None else bool(enabled)
        self.closed = False
        self._note = ""
        self._start = _now()
        self._last_draw: float | None = None
        self._drawn_n: int | None = None  # the count the visible line shows
        self._width = 0  # length of the visible line, to blank out leftovers of a longer one

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def update(self, n: int = 1, *, note: str = "") -> None:
        """Count ``n`` more steps done and redraw if it is time to.

        Parameters
        ----------
        n
            Steps just completed.
        note
            Short text shown at the end of the line (e.g. the file just done) until the next
            update.
        """
        self.n += n
        self._note = note
        if not self.enabled or self.closed:
            return
        now = _now()
        due = self._last_draw is None or now - self._last_draw >= _MIN_INTERVAL
        if due or self.n >= self.total:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line; later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        if not self.enabled:
            return
        if self._drawn_n != self.n or self._last_draw is None:
            self._draw(_now())
        self._write("\n")

    def line(self, now: float | None = None) -> str:
        """The text of the bar as it would be drawn now (without the carriage return or padding)."""
        now = _now() if now is None else now
        frac = 1.0 if self.total <= 0 else min(max(self.n / self.total, 0.0), 1.0)
        filled = int(frac * _BAR_WIDTH)
        parts = [self.desc] if self.desc else []
        parts.append(f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}]")
        parts.append(f"{self.n}/{self.total} ({int(frac * 100)}%)")
        elapsed = now - self._start
        if self.n > 0 and elapsed > 0:
            rate = self.n / elapsed
            parts.append(f"{rate:.1f} {self.unit}/s" if rate >= 1 else f"{rate:.2f} {self.unit}/s")
            if self.n < self.total:
                parts.append(f"ETA {_clock((self.total - self.n) / rate)}")
        if self._note:
            parts.append(self._note)
        return " ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        # A line longer than the terminal wraps, and \r then returns only to its last row.
        columns = shutil.get_terminal_size(fallback=(80, 24)).columns
        text = text[: max(columns - 1, 10)]
        pad = " " * max(self._width - len(text), 0)
        self._write(f"\r{text}{pad}")
        self._width = len(text)
        self._last_draw = now
        self._drawn_n = self.n

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream: give up drawing, keep working
            self.enabled = False
