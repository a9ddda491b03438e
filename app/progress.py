"""A one-line progress bar on stderr for long commands."""

import sys
import time


class ProgressBar:
    def __init__(self, label: str, width: int = 30) -> None:
        self.label = label
        self.width = width
        self.started = time.monotonic()
        self.interactive = sys.stderr.isatty()
        self._last_percent = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 if total == 0 else min(100, done * 100 // total)
        if not self.interactive and percent < 100 and percent // 10 == self._last_percent // 10:
            return
        self._last_percent = percent
        filled = self.width * percent // 100
        rate = done / max(time.monotonic() - self.started, 1e-9)
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {percent:3d}% {done}/{total} ({rate:,.0f}/s)"
        )
        sys.stderr.write(("\r" if self.interactive else "") + line + ("" if self.interactive else "\n"))
        if self.interactive and percent == 100:
            sys.stderr.write("\n")
        sys.stderr.flush()
