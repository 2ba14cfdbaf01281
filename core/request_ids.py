"""The id of each request, which its log lines carry and its events take along through the
stream to the writer's log lines: the client's own (an `X-Request-Id` header, or gRPC
metadata `x-request-id`) when it is sane, else one made here.

The request being served is a context variable: each HTTP request and each gRPC call runs in an
asyncio task of its own, so setting it for one never shows in another.
"""

from __future__ import annotations

import itertools
import re
import secrets
from contextvars import ContextVar

# The request being served; "" outside of one.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")
# A client's id is taken as it is if it is this: what fits in a header, a log line and a
# query without escaping, and keeps a flood of odd ids out of the logs.
MAX_REQUEST_ID_CHARACTERS = 128
_SANE = re.compile(rf"[A-Za-z0-9._:/+=@-]{{1,{MAX_REQUEST_ID_CHARACTERS}}}")

# Ids made here: 48 random bits drawn once per process, then a count. Unique across the
# processes of a deployment (a draw colliding is as likely as in 2^24 processes), and made
# without a system call per request.
_PREFIX = secrets.token_hex(6)
_COUNT = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNT):08x}"


def request_id_from(given: bytes | str | None) -> str:
    """The client's id if it gave a sane one, else a new one."""
    if given:
        text = given.decode("latin-1") if isinstance(given, bytes) else given
        if _SANE.fullmatch(text):
            return text
    return new_request_id()
