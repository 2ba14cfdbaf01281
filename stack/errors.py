"""The errors our services raise on purpose, each mapped once to an HTTP status and a gRPC code.

The HTTP shim and the gRPC servicers both translate these; nothing else picks status codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

import grpc


@dataclass(frozen=True)
class FieldViolation:
    """One problem with one field, in the words of google.rpc.BadRequest.FieldViolation."""

    field: str
    description: str


class ServiceError(Exception):
    """Base of the errors a client can be told about."""

    code: str = "internal"
    http_status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    grpc_status: grpc.StatusCode = grpc.StatusCode.INTERNAL
    # Seconds after which a retry may succeed (HTTP Retry-After, gRPC RetryInfo); None: do not
    # retry the same request.
    retry_after: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request names a field whose value we refuse; nothing of it was stored."""

    code = "invalid_argument"
    http_status = HTTPStatus.BAD_REQUEST
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"
    http_status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class Unavailable(ServiceError):
    """A dependency (NATS, PostgreSQL) is unreachable or did not answer in time."""

    code = "unavailable"
    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    grpc_status = grpc.StatusCode.UNAVAILABLE
    retry_after = 1


class ResourceExhausted(ServiceError):
    """The event stream is at its configured limits: the writer is behind."""

    code = "resource_exhausted"
    http_status = HTTPStatus.TOO_MANY_REQUESTS
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_after = 5
