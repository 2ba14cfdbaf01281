from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from analytics.v1.event_pb2 import Event
from hypothesis import given
from hypothesis import strategies as st

from core.errors import FieldViolation, InvalidArgument
from core.events import _violations, validate_event

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
        FieldViolation("path", "must be at most 2048 bytes in UTF-8")
    ]


def test_a_path_of_exactly_2048_characters_is_accepted() -> None:
    path = "/" + "p" * 2047

    assert validate_event(valid_event(path=path), NOW).path == path


def test_a_path_of_more_than_2048_bytes_in_utf8_is_refused() -> None:
    # 700 characters, 2,101 bytes: the per-path aggregates' index could not hold it.
    assert violations_of(valid_event(path="/" + "\u4e2d" * 700)) == [
        FieldViolation("path", "must be at most 2048 bytes in UTF-8")
    ]


def test_a_path_of_exactly_2048_bytes_in_utf8_is_accepted() -> None:
    path = "/" + "\u4e2d" * 682 + "p"

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


def test_all_violations_are_reported_together_in_a_fixed_order() -> None:
    event = valid_event(
        site_id="",
        path="x",
        user_id="a\x00",
        properties={"": "v"},
        timestamp=NOW + timedelta(hours=2),
    )

    assert violations_of(event) == [
        FieldViolation("site_id", "is required"),
        FieldViolation("path", "must start with '/'"),
        FieldViolation("user_id", "must not contain control characters"),
        FieldViolation("properties", "keys must not be empty"),
        FieldViolation("timestamp", "must not be more than 60 minutes ahead of the server's clock"),
    ]


def test_an_explicit_zero_timestamp_is_refused_not_replaced() -> None:
    event = valid_event()
    event.timestamp.SetInParent()

    assert violations_of(event) == [
        FieldViolation("timestamp", "must not be before 2000-01-01T00:00:00+00:00")
    ]


# Values at the rules' edges. The text holds control characters, a zero-width joiner (not
# printable to Python, yet allowed), spaces, slashes and letters.
_edgy_text = st.text(alphabet="a/ .\u200d\x00\x1f\x7f\x9fé", max_size=6)
_LATEST = int((NOW + timedelta(hours=1)).timestamp())
_EDGE_VALUES: dict[str, st.SearchStrategy[object]] = {
    "event_id": st.sampled_from(["e-1", "e 1", "e\x7f", "e" * 128, "e" * 129]),
    "site_id": st.sampled_from(["", "-site", "a" * 128, "a" * 129]),
    "event_type": st.sampled_from(["", " click", "x" * 100, "x" * 101]),
    "path": st.sampled_from(
        ["", "/", "home", "/" * 2048, "/" * 2049, "/" + "\u4e2d" * 682 + "p", "/" + "\u4e2d" * 683]
    )
    | _edgy_text.map("/{}".format),
    "user_id": _edgy_text | st.sampled_from(["u" * 256, "u" * 257]),
    "referrer": _edgy_text | st.sampled_from(["r" * 2048, "r" * 2049]),
    "properties": st.dictionaries(
        _edgy_text | st.sampled_from(["k" * 64, "k" * 65]),
        _edgy_text | st.sampled_from(["v" * 1024, "v" * 1025]),
        max_size=3,
    )
    | st.sampled_from([{f"k{i}": "v" for i in range(n)} for n in (32, 33)]),
    "timestamp": st.tuples(
        st.sampled_from([0, 946_684_799, 946_684_800, _LATEST - 1, _LATEST, _LATEST + 1]),
        st.sampled_from([0, 1, 999_999_999, 1_000_000_000, -1]),
    ),
}


@st.composite
def _events_with_one_field_at_an_edge(draw: st.DrawFn) -> Event:
    event = valid_event()
    field = draw(st.sampled_from(sorted(_EDGE_VALUES)))
    value = draw(_EDGE_VALUES[field])
    if field == "timestamp":
        assert isinstance(value, tuple)
        event.timestamp.seconds, event.timestamp.nanos = value
    elif field == "properties":
        assert isinstance(value, dict)
        event.properties.clear()
        event.properties.update(value)
    else:
        setattr(event, field, value)
    return event


@given(event=_events_with_one_field_at_an_edge())
def test_an_event_is_accepted_exactly_when_no_rule_is_broken(event: Event) -> None:
    broken = _violations(event, NOW)

    if broken:
        assert violations_of(event) == broken
    else:
        assert validate_event(event, NOW) is event


def test_an_event_lists_five_property_violations_and_counts_the_rest() -> None:
    properties = {f"k{i:02}": "\x00" for i in range(32)}

    assert violations_of(valid_event(properties=properties)) == [
        *(
            FieldViolation(f"properties[k{i:02}]", "must not contain control characters")
            for i in range(5)
        ),
        FieldViolation("properties", "invalid entries not listed: 27"),
    ]
