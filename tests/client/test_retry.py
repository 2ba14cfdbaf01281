"""How long the client waits before a new stream after a failed one, and what it reads out of
an error: as a server says it, in the grpc-status-details-bin trailer."""

from __future__ import annotations

import grpc
from analytics_client.events import Violation
from analytics_client.retry import MAX_BACKOFF, Backoff, retry_delay, violations
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from core.errors import RateLimited
from transports.grpc_errors import rich_status


def error(code: grpc.StatusCode, *details: Message, message: str = "no") -> grpc.aio.AioRpcError:
    """A failed call as the client receives it, with `details` in its google.rpc.Status."""
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    trailer = rpc_status.to_status(status).trailing_metadata
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailer), details=message
    )


def retry_info(seconds: int) -> Message:
    info: Message = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=seconds))
    return info


def test_the_wait_the_server_asks_for_is_kept_and_lengthened_by_at_most_a_fifth() -> None:
    unavailable = error(grpc.StatusCode.UNAVAILABLE, retry_info(1))

    least = Backoff(lambda: 0.0).delay(unavailable, answered=False)
    most = Backoff(lambda: 1.0).delay(unavailable, answered=False)

    assert (least, most) == (1.0, 1.2)


def test_without_retry_info_the_bound_of_the_wait_doubles_with_each_failure() -> None:
    backoff = Backoff(lambda: 1.0)  # the draw at the top of the bound
    unavailable = error(grpc.StatusCode.UNAVAILABLE)

    delays = [backoff.delay(unavailable, answered=False) for _ in range(4)]

    assert delays == [0.1, 0.2, 0.4, 0.8]


def test_the_wait_is_drawn_at_random_below_its_bound() -> None:
    backoff = Backoff(lambda: 0.5)

    assert backoff.delay(error(grpc.StatusCode.UNAVAILABLE), answered=False) == 0.05


def test_the_bound_stops_growing_at_max_backoff() -> None:
    backoff = Backoff(lambda: 1.0)
    unavailable = error(grpc.StatusCode.UNAVAILABLE)

    delays = [backoff.delay(unavailable, answered=False) for _ in range(12)]

    assert delays[-1] == MAX_BACKOFF


def test_a_stream_that_answered_before_it_ended_is_followed_by_a_new_one_at_once() -> None:
    backoff = Backoff(lambda: 1.0)
    for _ in range(3):
        backoff.delay(error(grpc.StatusCode.UNAVAILABLE), answered=False)

    # RESOURCE_EXHAUSTED without RetryInfo: the server's bound on how long a stream stays open.
    delay = backoff.delay(error(grpc.StatusCode.RESOURCE_EXHAUSTED), answered=True)

    assert (delay, backoff.failures) == (0.0, 0)


def test_retry_info_is_read_from_the_status_details() -> None:
    assert retry_delay(error(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_info(5))) == 5


def test_an_error_without_details_has_no_retry_info() -> None:
    assert retry_delay(error(grpc.StatusCode.UNAVAILABLE)) is None


def test_a_status_whose_code_differs_from_the_calls_is_not_trusted() -> None:
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="no")
    packed = any_pb2.Any()
    packed.Pack(retry_info(1))
    status.details.append(packed)
    trailer = rpc_status.to_status(status).trailing_metadata
    other = grpc.aio.AioRpcError(
        grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(*trailer), details="no"
    )

    assert retry_delay(other) is None


def test_the_fields_of_a_bad_request_are_read_from_the_status_details() -> None:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="events", description="too many")
        ]
    )

    found = violations(error(grpc.StatusCode.INVALID_ARGUMENT, bad_request))

    assert found == (Violation("events", "too many"),)


def test_a_stream_a_rate_limit_ended_is_followed_by_a_new_one_after_the_wait_it_names() -> None:
    # The status the ingest server ends a stream with when a rate limit refuses a request.
    limited = RateLimited("ingest_site", "site:a", 2.5, "rate limit ingest_site: ...")
    trailer = rpc_status.to_status(rich_status(limited)).trailing_metadata
    ended = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*trailer),
        details=limited.message,
    )

    assert Backoff(lambda: 0.0).delay(ended, answered=True) == 3.0
