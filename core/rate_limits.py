"""Rate limits as token buckets: how much a key (a site, a client IP, a caller) may send, on
average (`rate` tokens a second) and at once (`burst` tokens).

A bucket starts full, holds at most `burst` tokens and gains `rate` a second. A request costing
n tokens passes when its bucket holds n, and takes them; one costing more than the burst (a
batch larger than it) passes when the bucket is full and leaves it in debt, which the requests
after it wait out, so the average holds whatever the sizes. A request limited by several buckets
(an ingest request: its client IP's and each of its sites') passes only if every one lets it,
and then takes from each: a refused request costs nothing.

The buckets live in the process's memory, so that a request never waits on another server for
them: with several processes, each keeps its own (README, Limits). Memory is bounded two ways:
a bucket left alone until it is full again is the same as none, so such buckets are dropped by
a sweep run at most once per refill time; and past `max_keys` buckets (many keys at once, as
from a spread of addresses), the oldest are dropped, and start again full.

Written here rather than taken from a library: it is a few lines of arithmetic on a dict, on
the path of every request (docs/benchmarks.md measures it), while the libraries (pyrate-limiter,
limits) keep items or timestamps per key behind a storage interface meant for Redis as well,
with locks this single-threaded event loop does not need.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from core.errors import RateLimited

# Buckets one limit keeps at most; each costs about 200 bytes.
MAX_KEYS = 100_000


class Tally(Protocol):
    """Where refused requests are counted (a metric's counter)."""

    def inc(self, amount: float = 1) -> None: ...


class TokenBuckets:
    """The buckets of one limit, by key."""

    def __init__(
        self,
        name: str,
        rate: float,
        burst: float,
        *,
        unit: str = "requests",
        subject: Callable[[str], str] = str,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
        refused: Tally | None = None,
    ) -> None:
        """`name`: the limit's, named in refusals; `unit`: what a token is (`events`), and
        `subject`: what a key is called, likewise; `refused`: counts each request this limit
        refuses."""
        if rate <= 0 or burst < 1:
            raise ValueError("a limit needs a positive rate and a burst of at least 1")
        self.name = name
        self.rate = rate
        self.burst = float(burst)
        self.unit = unit
        self._subject = subject
        self._clock = clock
        self._max_keys = max_keys
        self._refused = refused
        # key → [tokens, when last refilled]: lists, changed in place.
        self._buckets: dict[str, list[float]] = {}
        self._refill_seconds = self.burst / rate
        self._next_sweep = clock() + self._refill_seconds

    def __len__(self) -> int:
        return len(self._buckets)

    def shortfall(self, key: str, cost: float) -> float:
        """Seconds until the key's bucket holds `cost` (at most the burst); 0.0 if it does.
        Refills the bucket to now, which changes nothing of what it allows."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if now >= self._next_sweep:
                self._sweep(now)
            bucket = self._buckets[key] = [self.burst, now]
            if len(self._buckets) > self._max_keys:
                del self._buckets[next(iter(self._buckets))]  # the oldest key
        else:
            tokens = bucket[0] + (now - bucket[1]) * self.rate
            bucket[0] = tokens if tokens < self.burst else self.burst
            bucket[1] = now
        missing = (cost if cost < self.burst else self.burst) - bucket[0]
        return missing / self.rate if missing > 0 else 0.0

    def take(self, key: str, cost: float) -> None:
        """Take `cost` from the key's bucket (just refilled by `shortfall`)."""
        self._buckets[key][0] -= cost

    def _sweep(self, now: float) -> None:
        """Drop the buckets that are full again by now: they are as if new."""
        rate, burst = self.rate, self.burst
        full = [
            k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * rate >= burst
        ]
        for key in full:
            del self._buckets[key]
        self._next_sweep = now + self._refill_seconds

    def refusal(self, key: str, wait: float) -> RateLimited:
        if self._refused is not None:
            self._refused.inc()
        subject = self._subject(key)
        return RateLimited(
            self.name,
            subject,
            wait,
            f"rate limit {self.name}: {subject} may send {self.rate:g} {self.unit} a second "
            f"({self.burst:g} at once); retry in {math.ceil(wait)} s",
        )


# One bucket charged for a request: the limit, the key, the cost.
Charge = tuple[TokenBuckets, str, float]


def admit(charges: Sequence[Charge]) -> None:
    """Take each charge's cost from its bucket if every bucket can pay now; otherwise take
    nothing and raise RateLimited naming the limit with the longest wait."""
    worst = 0.0
    refusing: tuple[TokenBuckets, str] | None = None
    for limits, key, cost in charges:
        wait = limits.shortfall(key, cost)
        if wait > worst:
            worst, refusing = wait, (limits, key)
    if refusing is not None:
        raise refusing[0].refusal(refusing[1], worst)
    for limits, key, cost in charges:
        limits.take(key, cost)
