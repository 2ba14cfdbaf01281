"""Event ids minted by the client: UUIDv7, like the server's."""

from __future__ import annotations

import time
import uuid

from analytics_client import new_event_id


def test_an_event_id_is_a_version_7_uuid_of_the_rfc_variant() -> None:
    parsed = uuid.UUID(new_event_id())

    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)


def test_an_event_id_carries_the_millisecond_it_was_made_in() -> None:
    before = time.time_ns() // 1_000_000
    millis = uuid.UUID(new_event_id()).int >> 80
    after = time.time_ns() // 1_000_000

    assert before <= millis <= after


def test_event_ids_differ() -> None:
    assert len({new_event_id() for _ in range(10_000)}) == 10_000
