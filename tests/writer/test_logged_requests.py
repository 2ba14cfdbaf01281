"""What a writer's log line says of the requests of the events it is about."""

from __future__ import annotations

from writer.logged_requests import LoggedRequests


def test_a_few_requests_are_all_named_once_each() -> None:
    assert str(LoggedRequests.of(["a", "b", "a", "c"])) == "requests a, b, c"


def test_many_requests_are_named_up_to_five_and_the_rest_counted() -> None:
    requests = LoggedRequests.of(f"r{n}" for n in range(1000))

    assert str(requests) == "requests r0, r1, r2, r3, r4 and 995 more"
    assert requests.extra == {"request_ids": ["r0", "r1", "r2", "r3", "r4"]}


def test_events_of_no_request_id_are_said_to_have_none() -> None:
    assert str(LoggedRequests.of(["", ""])) == "no request ids"
