"""What a request to the ingest service may send, from the credential it presents: the grants
(SHA-256 of each valid key, core.access) are watched from the CREDENTIALS_BUCKET into memory,
so a request costs a dictionary lookup and never a database round trip, and a key revoked at
the report service stops working here within moments."""

from __future__ import annotations

from core.access import Grant, IngestAccess, identify
from core.kv_watch import WatchedBucket


class IngestGate:
    def __init__(self, grants: WatchedBucket[Grant], ingest_open: bool) -> None:
        self._grants = grants
        self._ingest_open = ingest_open

    def access(self, secret: str | None, *, browser: bool) -> IngestAccess:
        """The access of a request presenting `secret` (None: no credential); Unauthenticated
        at once for a secret that is no valid credential."""
        return IngestAccess(identify(secret, self._grants.values), browser, self._ingest_open)
