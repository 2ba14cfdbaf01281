from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from analytics.v1.event_pb2 import Event

from ingest_server.validation import validate_event
from stack.errors import FieldViolation, InvalidArgument

NOW = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)


def valid_event(**fields: object) -> Event:
    event = Event(site_id="site-123", event_type="page_view", path="/home")
    for name, value in fields.items():
        if name == "timestamp":
            assert isinstance(value, datetime)
            event.timestamp.FromDatetime(value)
        elif name == "properties":
            assert isinstance(value, dict)
            event.properties.update(value)
        else:
            setattr(event, name, value)
    return event


def violations_of(event: Event) -> list[FieldViolation]:
    with pytest.raises(InvalidArgument) as caught:
        validate_event(event, NOW)
    return list(caught.value.violations)


def test_a_complete_event_is_returned_unchanged() -> None:
    event = valid_event(
        event_id="e-1",
        user_id="u10",
        referrer="https://example.com/",
        timestamp=NOW - timedelta(hours=1),
        properties={"plan": "pro"},
    )

    assert validate_event(event, NOW) == event


def test_an_event_without_event_id_gets_a_uuid7() -> None:
    event_id = validate_event(valid_event(), NOW).event_id

    assert uuid.UUID(event_id).version == 7


def test_an_event_without_timestamp_gets_the_receive_time() -> None:
    stored = validate_event(valid_event(), NOW)

    assert stored.timestamp.ToDatetime(tzinfo=UTC) == NOW


def test_the_event_is_completed_in_place() -> None:
    event = valid_event()

    completed = validate_event(event, NOW)

    assert completed is event
    assert event.event_id == completed.event_id != ""
    assert event.timestamp.ToDatetime(tzinfo=UTC) == NOW


def test_every_missing_required_field_is_named() -> None:
    assert violations_of(Event()) == [
        FieldViolation("site_id", "is required"),
        FieldViolation("event_type", "is required"),
        FieldViolation("path", "is required"),
    ]


@pytest.mark.parametrize("site_id", ["example.com", "site-123", "A_1", "7"])
def test_site_ids_may_be_domains_and_slugs(site_id: str) -> None:
    assert validate_event(valid_event(site_id=site_id), NOW).site_id == site_id


@pytest.mark.parametrize("site_id", ["-site", ".com", "site 1", "site/1", "sité", "a*b", "a>b"])
def test_site_ids_with_other_characters_are_refused(site_id: str) -> None:
    assert violations_of(valid_event(site_id=site_id)) == [
        FieldViolation(
            "site_id",
            "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'",
        )
    ]


def test_a_site_id_longer_than_128_characters_is_refused() -> None:
    assert violations_of(valid_event(site_id="s" * 129)) == [
        FieldViolation("site_id", "must be at most 128 characters")
    ]


def test_a_path_must_start_with_a_slash() -> None:
    assert violations_of(valid_event(path="home")) == [
        FieldViolation("path", "must start with '/'")
    ]


def test_a_path_longer_than_2048_characters_is_refused() -> None:
    assert violations_of(valid_event(path="/" + "p" * 2048)) == [
        FieldViolation("path", "must be at most 2048 characters")
    ]


def test_a_path_of_exactly_2048_characters_is_accepted() -> None:
    path = "/" + "p" * 2047

    assert validate_event(valid_event(path=path), NOW).path == path


@pytest.mark.parametrize("field", ["path", "user_id", "referrer"])
@pytest.mark.parametrize("character", ["\x00", "\n", "\x7f", "\x9f"])
def test_control_characters_are_refused(field: str, character: str) -> None:
    value = f"/a{character}b"

    assert violations_of(valid_event(**{field: value})) == [
        FieldViolation(field, "must not contain control characters")
    ]


def test_an_event_type_with_surrounding_whitespace_is_refused() -> None:
    assert violations_of(valid_event(event_type="page_view ")) == [
        FieldViolation("event_type", "must not start or end with whitespace")
    ]


def test_an_event_type_may_be_a_phrase() -> None:
    event = valid_event(event_type="Outbound Link: Click")

    assert validate_event(event, NOW).event_type == "Outbound Link: Click"


def test_an_event_id_with_a_space_is_refused() -> None:
    assert violations_of(valid_event(event_id="a b")) == [
        FieldViolation("event_id", "must be printable ASCII without spaces")
    ]


def test_unicode_text_is_accepted_as_is() -> None:
    stored = validate_event(valid_event(path="/café/日本", user_id="Zoë 👩‍💻"), NOW)

    assert (stored.path, stored.user_id) == ("/café/日本", "Zoë 👩‍💻")


def test_more_than_32_properties_are_refused() -> None:
    properties = {f"k{i}": "v" for i in range(33)}

    assert violations_of(valid_event(properties=properties)) == [
        FieldViolation("properties", "at most 32 entries")
    ]


def test_a_property_value_longer_than_1024_characters_is_named_by_its_key() -> None:
    assert violations_of(valid_event(properties={"plan": "x" * 1025})) == [
        FieldViolation("properties[plan]", "must be at most 1024 characters")
    ]


def test_an_empty_property_key_is_refused() -> None:
    assert violations_of(valid_event(properties={"": "x"})) == [
        FieldViolation("properties", "keys must not be empty")
    ]


def test_a_timestamp_more_than_an_hour_ahead_is_refused() -> None:
    assert violations_of(valid_event(timestamp=NOW + timedelta(hours=1, seconds=1))) == [
        FieldViolation("timestamp", "must not be more than 60 minutes ahead of the server's clock")
    ]


def test_a_timestamp_an_hour_ahead_is_accepted() -> None:
    event = valid_event(timestamp=NOW + timedelta(hours=1))

    assert validate_event(event, NOW).timestamp == event.timestamp


def test_a_timestamp_before_2000_is_refused() -> None:
    assert violations_of(valid_event(timestamp=datetime(1999, 12, 31, 23, 59, tzinfo=UTC))) == [
        FieldViolation("timestamp", "must not be before 2000-01-01T00:00:00+00:00")
    ]


def test_a_timestamp_with_out_of_range_nanos_is_refused() -> None:
    event = valid_event()
    event.timestamp.seconds = 1_763_000_000
    event.timestamp.nanos = 2_000_000_000

    assert violations_of(event) == [FieldViolation("timestamp", "is not a valid time")]


def test_all_violations_are_reported_together() -> None:
    event = valid_event(site_id="", path="x", user_id="a\x00")

    assert violations_of(event) == [
        FieldViolation("site_id", "is required"),
        FieldViolation("path", "must start with '/'"),
        FieldViolation("user_id", "must not contain control characters"),
    ]
