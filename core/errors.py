"""The errors our services raise on purpose, for a client to be told about.

Each has a `code`, the name of its google.rpc.Code in lower case, which is also the `error` of
an HTTP error body. The transports map the codes to their own statuses, each in one table
(transports.grpc_errors, transports.http_app); nothing else picks status codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class FieldViolation:
    """One problem with one field, in the words of google.rpc.BadRequest.FieldViolation."""

    field: str
    description: str


class ServiceError(Exception):
    """Base of the errors a client can be told about."""

    code: ClassVar[str] = "internal"
    # Seconds after which a retry may succeed (HTTP Retry-After, gRPC RetryInfo); None: do not
    # retry the same request.
    retry_after: ClassVar[int | None] = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request names a field whose value we refuse; nothing of it was stored."""

    code = "invalid_argument"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class Unavailable(ServiceError):
    """A dependency (NATS, PostgreSQL) is unreachable or did not answer in time, or the server
    is at its bound of requests in flight."""

    code = "unavailable"
    retry_after = 1


class ResourceExhausted(ServiceError):
    """A limit is reached: the event stream is full (the writer is behind), or a client asked
    for more than a bound allows at once."""

    code = "resource_exhausted"
    retry_after: ClassVar[int | None] = 5


class LimitReached(ResourceExhausted):
    """A request reached a bound on what one request may do (how long a stream stays open):
    what came before the bound was done, and the rest may be sent at once, in a new request."""

    retry_after = None


class NotFound(ServiceError):
    """The request names something that does not exist (a site, say)."""

    code = "not_found"


class AlreadyExists(ServiceError):
    """The request would create something that exists already."""

    code = "already_exists"


class Unauthenticated(ServiceError):
    """The request needs a credential and presented none, or one that is unknown, malformed or
    revoked (HTTP 401, gRPC UNAUTHENTICATED)."""

    code = "unauthenticated"


class PermissionDenied(ServiceError):
    """The credential presented is valid but does not allow this (another site's, or of another
    kind) (HTTP 403, gRPC PERMISSION_DENIED)."""

    code = "permission_denied"
