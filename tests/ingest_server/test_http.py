"""The ingest service's HTTP door: JSON bodies into Events, results into JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from analytics.v1.event_pb2 import Event
from hypothesis import given
from hypothesis import strategies as st

from core.errors import FieldViolation, InvalidArgument
from ingest_server.http import _checked_event, event_from_json, events_from_json, outcome_to_json
from ingest_server.ingestor import Outcome
from transports.http_json import parse_body

SEED_EVENT = {
    "site_id": "site-abc-123",
    "event_type": "page_view",
    "path": "/pricing",
    "user_id": "user-xyz-789",
    "timestamp": "2025-11-12T19:30:01Z",
}


def violations_of(value: Any) -> list[FieldViolation]:
    with pytest.raises(InvalidArgument) as caught:
        event_from_json(value)
    return list(caught.value.violations)


def test_the_seed_event_decodes_field_for_field() -> None:
    event = event_from_json(SEED_EVENT)

    assert (event.site_id, event.event_type, event.path, event.user_id) == (
        "site-abc-123",
        "page_view",
        "/pricing",
        "user-xyz-789",
    )
    assert event.timestamp.ToDatetime(tzinfo=UTC) == datetime(2025, 11, 12, 19, 30, 1, tzinfo=UTC)


def test_optional_fields_decode() -> None:
    event = event_from_json(
        {
            **SEED_EVENT,
            "event_id": "e-1",
            "referrer": "https://a.example/",
            "properties": {"k": "v"},
        }
    )

    assert (event.event_id, event.referrer, dict(event.properties)) == (
        "e-1",
        "https://a.example/",
        {"k": "v"},
    )


def test_null_optional_fields_are_absent() -> None:
    event = event_from_json({**SEED_EVENT, "user_id": None, "timestamp": None, "properties": None})

    assert event == Event(site_id="site-abc-123", event_type="page_view", path="/pricing")


def test_a_timestamp_with_an_offset_is_the_same_instant_in_utc() -> None:
    event = event_from_json({**SEED_EVENT, "timestamp": "2025-11-14T23:30:00-02:00"})

    assert event.timestamp.ToDatetime(tzinfo=UTC) == datetime(2025, 11, 15, 1, 30, tzinfo=UTC)


def test_fractions_of_a_second_are_kept_to_the_microsecond() -> None:
    event = event_from_json({**SEED_EVENT, "timestamp": "2025-11-14T10:00:00.123456789Z"})

    assert event.timestamp.ToDatetime(tzinfo=UTC) == datetime(
        2025, 11, 14, 10, 0, 0, 123456, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "timestamp",
    [
        "2025-11-14",
        "2025-11-14T10:00:00",
        "20251114T100000Z",
        "2025-11-14T25:00:00Z",
        "2025-02-30T10:00:00Z",
        "2025-11-14T10:00:00+01:60",
        "yesterday",
        "0001-01-01T00:00:00+01:00",
        "\uff12\uff10\uff12\uff15-11-14T10:00:00Z",  # fullwidth digits
        "2025-11-14T10:00:00.\u0661\u0662Z",  # Arabic-Indic digits
        1731578400,
    ],
)
def test_timestamps_that_are_not_rfc_3339_with_an_offset_are_refused(timestamp: object) -> None:
    assert violations_of({**SEED_EVENT, "timestamp": timestamp}) == [
        FieldViolation(
            "timestamp", "must be an RFC 3339 date-time with an offset, like 2025-11-14T10:00:00Z"
        )
    ]


@pytest.mark.parametrize("value", [42, 1.5, True, ["a"], {"a": "b"}])
def test_a_non_string_in_a_text_field_is_refused(value: object) -> None:
    assert violations_of({**SEED_EVENT, "user_id": value}) == [
        FieldViolation("user_id", "must be a string")
    ]


def test_a_lone_surrogate_is_refused() -> None:
    assert violations_of({**SEED_EVENT, "path": "/a\ud800"}) == [
        FieldViolation("path", "must be valid Unicode (it holds a lone surrogate)")
    ]


def test_an_unknown_field_is_refused_by_name() -> None:
    assert violations_of({**SEED_EVENT, "url": "https://a.example/"}) == [
        FieldViolation("url", "is not a known field")
    ]


def test_a_property_value_that_is_not_a_string_is_named_by_its_key() -> None:
    assert violations_of({**SEED_EVENT, "properties": {"count": 3}}) == [
        FieldViolation("properties[count]", "must be a string")
    ]


def test_property_values_that_are_not_strings_are_listed_up_to_five_then_counted() -> None:
    properties = {f"n{number}": number for number in range(8)}

    assert violations_of({**SEED_EVENT, "properties": properties}) == [
        *(FieldViolation(f"properties[n{number}]", "must be a string") for number in range(5)),
        FieldViolation("properties", "invalid entries not listed: 3"),
    ]


def test_more_than_32_properties_are_refused_by_their_count_whatever_their_values() -> None:
    properties = {f"n{number}": number for number in range(33)}

    assert violations_of({**SEED_EVENT, "properties": properties}) == [
        FieldViolation("properties", "at most 32 entries")
    ]


def test_properties_must_be_an_object() -> None:
    assert violations_of({**SEED_EVENT, "properties": ["a"]}) == [
        FieldViolation("properties", "must be an object of strings")
    ]


def test_an_event_must_be_an_object() -> None:
    assert violations_of([SEED_EVENT]) == [
        FieldViolation("body", "must be a JSON object (an event)")
    ]


def test_a_batch_decodes_each_element_on_its_own() -> None:
    items = events_from_json([SEED_EVENT, {**SEED_EVENT, "path": 7}])

    assert isinstance(items[0], Event)
    assert isinstance(items[1], InvalidArgument)
    assert items[1].violations == (FieldViolation("path", "must be a string"),)


def test_a_batch_must_be_an_array() -> None:
    with pytest.raises(InvalidArgument) as caught:
        events_from_json(SEED_EVENT)

    assert caught.value.violations == (FieldViolation("body", "must be a JSON array of events"),)


def test_a_duplicate_key_is_refused() -> None:
    assert violations_of(parse_body(b'{"path": "/a", "path": "/b", "path": "/c"}')) == [
        FieldViolation("path", "appears more than once")
    ]


def test_a_duplicate_property_key_is_refused_by_its_name() -> None:
    body = b'{"site_id": "s", "event_type": "e", "path": "/", "properties": {"a": "1", "a": "2"}}'

    assert violations_of(parse_body(body)) == [
        FieldViolation("properties[a]", "appears more than once")
    ]


def test_a_duplicate_key_refuses_only_its_event_of_a_batch() -> None:
    body = b'[{"site_id": "s", "event_type": "e", "path": "/"}, {"path": "/", "path": "/"}]'

    items = events_from_json(parse_body(body))

    assert isinstance(items[0], Event)
    assert isinstance(items[1], InvalidArgument)
    assert items[1].violations == (FieldViolation("path", "appears more than once"),)


def test_an_accepted_outcome_carries_its_event_id() -> None:
    assert outcome_to_json(Outcome(3, event_id="e-1")) == {
        "index": 3,
        "status": "accepted",
        "event_id": "e-1",
    }


def test_a_rejected_outcome_carries_its_violations() -> None:
    outcome = Outcome(1, violations=(FieldViolation("path", "is required"),))

    assert outcome_to_json(outcome) == {
        "index": 1,
        "status": "rejected",
        "field_violations": [{"field": "path", "description": "is required"}],
    }


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
_FIELD_NAMES = st.sampled_from(
    ["event_id", "site_id", "event_type", "path", "user_id", "referrer", "timestamp"]
)


@given(
    fields=st.dictionaries(
        _FIELD_NAMES, st.text() | st.sampled_from(["2025-11-14T10:00:00Z"]) | _JSON_VALUES
    ),
    properties=st.none() | st.dictionaries(st.text(), st.text() | _JSON_VALUES) | _JSON_VALUES,
)
def test_an_object_decodes_as_the_field_by_field_checks_decode_it(
    fields: dict[str, Any], properties: Any
) -> None:
    value = {**fields, "properties": properties}

    def decoded(decode: Any) -> Event | list[FieldViolation]:
        try:
            return decode(value)  # type: ignore[no-any-return]
        except InvalidArgument as error:
            return list(error.violations)

    assert decoded(event_from_json) == decoded(_checked_event)
