"""Event ids for events that arrive without one."""

from __future__ import annotations

import os
import time

# Random bytes drawn from os.urandom in bulk (one call per 512 ids costs less than one each).
_RANDOM_BYTES_PER_ID = 10
_random = bytearray()


def _forget_random() -> None:
    """A forked child must not hand out its parent's ids."""
    _random.clear()


os.register_at_fork(after_in_child=_forget_random)


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): unique, and sorting by it sorts by creation time to the millisecond,
    which keeps the events table's primary key index appending at its right edge."""
    if not _random:
        _random.extend(os.urandom(_RANDOM_BYTES_PER_ID * 512))
    rand = _random[-_RANDOM_BYTES_PER_ID:]
    del _random[-_RANDOM_BYTES_PER_ID:]
    millis = time.time_ns() // 1_000_000
    version_7 = 0x70 | rand[0] & 0x0F
    variant_10 = 0x80 | rand[2] & 0x3F
    value = (millis & 0xFFFF_FFFF_FFFF).to_bytes(6) + bytes((version_7, rand[1], variant_10))
    text = (value + rand[3:]).hex()  # formatted by hand: uuid.UUID costs three times as much
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
