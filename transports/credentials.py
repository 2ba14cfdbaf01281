"""The credential a request presents, read from either door the same way: the HTTP
`Authorization` header or the gRPC `authorization` metadata, `Bearer <secret>`. What the
secret allows is the services' business (core.access); this only reads it, and never logs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from core.access import MALFORMED
from core.errors import Unauthenticated

_SCHEME = "bearer "
_MAX_SECRET = 256

Context = grpc.aio.ServicerContext[Any, Any]


def bearer_secret(value: str | None) -> str | None:
    """The secret of an `Authorization: Bearer <secret>` value; None when there is none.
    Unauthenticated for a value of another form (another scheme, no secret, spaces in it)."""
    if value is None:
        return None
    if value[: len(_SCHEME)].lower() != _SCHEME:
        raise Unauthenticated(MALFORMED)
    secret = value[len(_SCHEME) :].strip()
    if not secret or len(secret) > _MAX_SECRET or not secret.isascii() or " " in secret:
        raise Unauthenticated(MALFORMED)
    return secret


def http_secret(headers: Mapping[bytes, bytes]) -> str | None:
    """The secret an HTTP request presents, if any."""
    value = headers.get(b"authorization")
    return None if value is None else bearer_secret(value.decode("latin-1"))


def grpc_secret(context: Context) -> str | None:
    """The secret a gRPC call presents in its metadata, if any."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            return bearer_secret(text)
    return None
