"""The clock, passed in where time matters (consents end on a date, sessions expire).

Code takes a :class:`Clock` instead of calling ``date.today()`` itself, so a
test (or a replay) can set the day without patching any module.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def today(self) -> str:
        """The date consents are judged on, YYYY-MM-DD."""

    def now(self) -> str:
        """The time recorded with a change: UTC, ISO 8601, seconds."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for timeouts and expiry within one process."""


class SystemClock:
    def today(self) -> str:
        return date.today().isoformat()

    def now(self) -> str:
        return datetime.now(timezone.utc).isoformat(timespec="seconds")

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
