"""Static files a service serves over HTTP (a dashboard's pages, scripts and styles): each read
once, answered with its content type, an ETag of its bytes (a 304 when the client's copy is
current), gzipped for clients that accept it when that makes it smaller, and a Cache-Control
the service chooses per file."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from http import HTTPStatus

from transports.http_app import Headers, Reply, Request

# The content types of the files a service may serve, by suffix; anything else is refused when
# the file is loaded, so a file is never sent with a type guessed by the browser.
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".txt": b"text/plain; charset=utf-8",
    ".svg": b"image/svg+xml",
}


@dataclass(frozen=True)
class StaticFile:
    """One file's bytes as served: plain and, when smaller, gzipped, each with its ETag."""

    content: bytes
    content_type: bytes
    cache_control: bytes
    gzipped: bytes | None
    etag: bytes
    gzip_etag: bytes

    @classmethod
    def of(cls, name: str, content: bytes, cache_control: bytes) -> StaticFile:
        suffix = name[name.rfind(".") :] if "." in name else ""
        if suffix not in CONTENT_TYPES:
            raise ValueError(f"no content type known for {name!r}")
        packed = gzip.compress(content, 9, mtime=0)
        version = hashlib.sha256(content).hexdigest()[:20]
        return cls(
            content=content,
            content_type=CONTENT_TYPES[suffix],
            cache_control=cache_control,
            gzipped=packed if len(packed) < len(content) else None,
            # One tag per representation (RFC 9110, 8.8.3); If-None-Match compares either.
            etag=f'"{version}"'.encode(),
            gzip_etag=f'"{version}-gzip"'.encode(),
        )

    @property
    def version(self) -> str:
        """A short digest of the content, for addresses that change when the file does."""
        return self.etag.strip(b'"').decode()[:12]

    def reply(self, request: Request) -> Reply:
        """The file for this request: 304 if its If-None-Match names the current content,
        gzipped if it accepts gzip and that is smaller, else plain."""
        packed = self.gzipped is not None and accepts_gzip(
            request.headers.get(b"accept-encoding", b"")
        )
        headers: Headers = (
            (b"etag", self.gzip_etag if packed else self.etag),
            (b"cache-control", self.cache_control),
            (b"vary", b"Accept-Encoding"),
        )
        if self._matches(request.headers.get(b"if-none-match")):
            return Reply(HTTPStatus.NOT_MODIFIED, None, headers)
        headers += ((b"content-type", self.content_type), (b"x-content-type-options", b"nosniff"))
        if packed:
            assert self.gzipped is not None
            return Reply(HTTPStatus.OK, self.gzipped, (*headers, (b"content-encoding", b"gzip")))
        return Reply(HTTPStatus.OK, self.content, headers)

    def _matches(self, if_none_match: bytes | None) -> bool:
        if if_none_match is None:
            return False
        tags = {tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")}
        return b"*" in tags or self.etag in tags or self.gzip_etag in tags


def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether an Accept-Encoding header accepts gzip (listed, and not with q=0)."""
    for coding in accept_encoding.lower().split(b","):
        name, _, parameters = coding.partition(b";")
        if name.strip() == b"gzip":
            return parameters.replace(b" ", b"") not in (b"q=0", b"q=0.0", b"q=0.00", b"q=0.000")
    return False
