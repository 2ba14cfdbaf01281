"""Waiting out a dependency that is down: capped exponential backoff, and the one loop that
retries an operation with it, logging each failure, until it succeeds or we are told to stop.

Every service retries the same way: connecting to NATS or PostgreSQL at start, setting up a
stream, and the writer storing a batch through an outage.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


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


class Stopped(Exception):
    """Asked to stop while waiting to retry: the operation did not succeed."""


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    retryable: Callable[[BaseException], bool],
    logger: logging.Logger,
    maximum: float = 5.0,
    stopping: asyncio.Event | None = None,
) -> T:
    """`attempt()`'s result, retried after each error `retryable` accepts, with backoff up to
    `maximum` seconds; any other error goes through. Each failure is logged as a warning
    ("`what` failed (...); retrying in 0.4s"). With `stopping`, a wait ends early when it is
    set, raising Stopped."""
    backoff = Backoff(maximum=maximum)
    while True:
        try:
            return await attempt()
        except Exception as error:
            if not retryable(error):
                raise
            if stopping is not None and stopping.is_set():
                raise Stopped from error
            delay = backoff.next_delay()
            logger.warning("%s failed (%s); retrying in %.1fs", what, describe(error), delay)
        await _wait(delay, stopping)


def describe(error: BaseException) -> str:
    """An error in a log line: its type, and its message where it has one."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def _wait(delay: float, stopping: asyncio.Event | None) -> None:
    if stopping is None:
        await asyncio.sleep(delay)
        return
    try:
        await asyncio.wait_for(stopping.wait(), delay)
    except TimeoutError:
        return
    raise Stopped
