"""A log line that repeats under load (every refused message of a full stream, say) written at
most once per interval, with a count of the times it was held back."""

from __future__ import annotations

import logging
import time


class ThrottledLog:
    def __init__(self, logger: logging.Logger, level: int, interval: float) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._next = 0.0  # monotonic time from which the next line may be written
        self._held_back = 0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held_back += 1
            return
        if self._held_back:
            message += f" (and {self._held_back} more like it in the last {self._interval:g}s)"
        self._logger.log(self._level, message, *args)
        self._next = now + self._interval
        self._held_back = 0
