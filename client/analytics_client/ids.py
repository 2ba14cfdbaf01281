"""Event ids minted by the client, so that every resend of an event is the same event to the
server, which stores an event once per (site_id, event_id)."""

from __future__ import annotations

import os
import time
import uuid

_RAND_B_BITS = 62


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562), like those the server assigns: 48 bits of Unix milliseconds, the
    version, 12 random bits, the variant, 62 random bits. Ids sort by creation time to the
    millisecond, which keeps the server's index of events appending at its right edge. The
    random bits come from os.urandom for every id, so a forked child never repeats its
    parent's."""
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 of them used
    rand_a = (random >> _RAND_B_BITS) & 0xFFF
    rand_b = random & ((1 << _RAND_B_BITS) - 1)
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))
