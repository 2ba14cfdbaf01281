"""Capped exponential backoff for retrying a dependency that is down."""

from __future__ import annotations

import random


class Backoff:
    """Delays of initial, 2x, 4x ... seconds up to `maximum`, each with up to 20% jitter so that
    many clients do not retry in lockstep."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2.0**self.attempts)
        self.attempts += 1
        return delay * random.uniform(0.8, 1.0)
