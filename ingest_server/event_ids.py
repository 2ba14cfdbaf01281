"""Event ids for events that arrive without one."""

from __future__ import annotations

import os
import time


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): unique, and sorting by it sorts by creation time to the millisecond,
    which keeps the events table's primary key index appending at its right edge."""
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10))
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | random & ~(0xF << 76 | 0x3 << 62)
    value |= 0x7 << 76 | 0x2 << 62  # version 7, variant 0b10
    text = f"{value:032x}"  # formatted by hand: uuid.UUID costs three times as much
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
