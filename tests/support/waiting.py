"""Waiting for the asynchronous pipeline to catch up, within a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], expected: T, within: float = 20.0) -> None:
    """Poll `probe` until it returns `expected`; fail with the last value after `within`
    seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within}s for {expected!r}; last saw {value!r}")
        await asyncio.sleep(0.05)
