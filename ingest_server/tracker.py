"""`GET /tracker.js`: the tracker script (tracker.js beside this file), gzipped for clients that
accept it, cacheable for an hour and then revalidated by its ETag (a 304 when unchanged), so a
page's visitors fetch it again only after it changes."""

from __future__ import annotations

import gzip
import hashlib
from http import HTTPStatus
from importlib import resources

from transports.http_app import Headers, Reply, Request

MAX_AGE_SECONDS = 3600
MAX_GZIPPED_BYTES = 1536


class Tracker:
    def __init__(self) -> None:
        self.script = (resources.files("ingest_server") / "tracker.js").read_bytes()
        self.gzipped = gzip.compress(self.script, 9, mtime=0)
        version = hashlib.sha256(self.script).hexdigest()[:20]
        # One tag per representation (RFC 9110, 8.8.3); If-None-Match compares either.
        self._etags = {False: f'"{version}"'.encode(), True: f'"{version}-gzip"'.encode()}

    async def get(self, request: Request) -> Reply:
        gzipped = _accepts_gzip(request.headers.get(b"accept-encoding", b""))
        headers: Headers = (
            (b"etag", self._etags[gzipped]),
            (b"cache-control", b"public, max-age=%d" % MAX_AGE_SECONDS),
            (b"vary", b"Accept-Encoding"),
        )
        if self._matches(request.headers.get(b"if-none-match")):
            return Reply(HTTPStatus.NOT_MODIFIED, None, headers)
        headers += ((b"content-type", b"text/javascript; charset=utf-8"),)
        if gzipped:
            return Reply(HTTPStatus.OK, self.gzipped, (*headers, (b"content-encoding", b"gzip")))
        return Reply(HTTPStatus.OK, self.script, headers)

    def _matches(self, if_none_match: bytes | None) -> bool:
        if if_none_match is None:
            return False
        tags = {tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")}
        return b"*" in tags or not tags.isdisjoint(self._etags.values())


def _accepts_gzip(accept_encoding: bytes) -> bool:
    for coding in accept_encoding.lower().split(b","):
        name, _, parameters = coding.partition(b";")
        if name.strip() == b"gzip":
            return parameters.replace(b" ", b"") not in (b"q=0", b"q=0.0", b"q=0.00", b"q=0.000")
    return False
