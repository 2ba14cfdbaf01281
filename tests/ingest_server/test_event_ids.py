from __future__ import annotations

import time
import uuid

from ingest_server.event_ids import new_event_id


def test_event_ids_are_rfc_9562_version_7_uuids() -> None:
    parsed = uuid.UUID(new_event_id())

    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)


def test_event_ids_carry_their_creation_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    parsed = uuid.UUID(new_event_id())
    after = time.time_ns() // 1_000_000

    assert before <= parsed.int >> 80 <= after


def test_event_ids_are_unique() -> None:
    ids = {new_event_id() for _ in range(10_000)}

    assert len(ids) == 10_000


def test_event_ids_are_written_in_the_canonical_lowercase_form() -> None:
    event_id = new_event_id()

    assert str(uuid.UUID(event_id)) == event_id
