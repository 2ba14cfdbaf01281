"""CORS for the HTTP door: which origins may read our answers, and the answer to a preflight.

A request whose `Origin` is in CORS_ALLOW_ORIGINS (or any, with `*`) gets
`Access-Control-Allow-Origin`; a preflight (`OPTIONS` with `Access-Control-Request-Method`)
is answered 204 with the methods and the `Content-Type` and `Authorization` headers allowed, or
403 for another origin. The services read no cookies; a request that presents a key or token
(`Authorization`) gets its own origin back, never `*`, so that a private answer is never
marked readable by any page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

PREFLIGHT_MAX_AGE = 86400  # seconds a browser may cache a preflight's answer

Headers = tuple[tuple[bytes, bytes], ...]
_ALLOWED_HEADERS = ("", "content-type", "authorization")


@dataclass(frozen=True)
class PreflightAnswer:
    status: int
    body: Any  # JSON, or None
    headers: Headers = ()


class Cors:
    def __init__(self, allow_origins: Sequence[str]) -> None:
        self._any = "*" in allow_origins
        self._origins = frozenset(origin.encode() for origin in allow_origins)

    def allows(self, origin: bytes) -> bool:
        return self._any or origin in self._origins

    def headers_for(self, origin: bytes, *, credentialed: bool = False) -> Headers:
        """What an answer to a request from `origin` adds, so the browser lets the page read it.
        `credentialed`: the request presented a credential, so its answer may be private."""
        if self._any and not credentialed:
            return ((b"access-control-allow-origin", b"*"),)
        if self._any or origin in self._origins:
            return ((b"access-control-allow-origin", origin), (b"vary", b"Origin"))
        return ((b"vary", b"Origin"),)

    def preflight(self, headers: Mapping[bytes, bytes], methods: Sequence[str]) -> PreflightAnswer:
        """Answer a browser asking whether it may send a request of another origin to a route
        that serves `methods`."""
        origin = headers.get(b"origin", b"")
        method = headers[b"access-control-request-method"].decode("latin-1")
        if not self.allows(origin):
            return _refusal("origin", "is not among CORS_ALLOW_ORIGINS")
        if method not in methods:
            return _refusal("Access-Control-Request-Method", f"{method} is not allowed here")
        requested = headers.get(b"access-control-request-headers", b"").decode("latin-1")
        if any(name.strip().lower() not in _ALLOWED_HEADERS for name in requested.split(",")):
            return _refusal(
                "Access-Control-Request-Headers", "only Content-Type and Authorization are allowed"
            )
        return PreflightAnswer(
            HTTPStatus.NO_CONTENT,
            None,
            (
                (b"access-control-allow-methods", ", ".join(methods).encode()),
                (b"access-control-allow-headers", b"Content-Type, Authorization"),
                (b"access-control-max-age", b"%d" % PREFLIGHT_MAX_AGE),
            ),
        )


def _refusal(field: str, reason: str) -> PreflightAnswer:
    return PreflightAnswer(
        HTTPStatus.FORBIDDEN,
        {
            "error": "cors_refused",
            "message": f"{field} {reason}",
            "field_violations": [{"field": field, "description": reason}],
        },
    )
