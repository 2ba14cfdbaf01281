"""Which failed streams to try again, and after how long: as the server asks (RetryInfo), or
else with exponential backoff and full jitter, so that many clients do not come back at once."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from analytics_client.events import Violation

# What a later attempt may get past: the server or its dependencies unreachable or busy, a
# stream ended by a bound of the server, a connection closed under the call. Any other code
# says the request itself is refused (INVALID_ARGUMENT, a missing or wrong key), and sending it
# again would be refused again.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)

M = TypeVar("M", bound=Message)

FIRST_BACKOFF = 0.1  # seconds: the bound of the first wait without RetryInfo
MAX_BACKOFF = 10.0  # seconds: the bound doubles after each failure up to this
# A wait the server asked for is lengthened by up to this fraction, drawn at random, so that
# the clients it turned away together do not all return in the same instant.
RETRY_INFO_JITTER = 0.2


class Backoff:
    """The wait before the next stream, after one that failed."""

    def __init__(self, draw: Callable[[], float] = random.random) -> None:
        self._draw = draw
        self._failures = 0  # in a row, without an answer between them

    def delay(self, error: grpc.aio.AioRpcError | None, *, answered: bool) -> float:
        """Seconds to wait after a stream that ended with `error` (None: it went unanswered
        within the request timeout); `answered`: whether it answered any request first."""
        if answered:
            self._failures = 0
        asked = retry_delay(error) if error is not None else None
        if asked is not None:
            return asked * (1 + RETRY_INFO_JITTER * self._draw())
        if answered:
            # It worked until it ended (a bound of the server on a stream's life, a connection
            # asked to reconnect): a new stream may start at once.
            return 0.0
        self._failures += 1
        return self._draw() * min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** (self._failures - 1))

    @property
    def failures(self) -> int:
        """Failures in a row without an answer between them."""
        return self._failures


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The seconds of the google.rpc.RetryInfo in the error's details, if it has one."""
    info = _detail(error, error_details_pb2.RetryInfo)
    if info is None:
        return None
    seconds: float = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return seconds


def violations(error: grpc.aio.AioRpcError) -> tuple[Violation, ...]:
    """The fields named by the google.rpc.BadRequest in the error's details, if any."""
    bad_request = _detail(error, error_details_pb2.BadRequest)
    if bad_request is None:
        return ()
    return tuple(Violation(v.field, v.description) for v in bad_request.field_violations)


def _detail(error: grpc.aio.AioRpcError, kind: type[M]) -> M | None:
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a status whose code or message differs from the call's: not to trust
        return None
    if status is None:
        return None
    for detail in status.details:
        found = kind()
        if detail.Unpack(found):
            return found
    return None
