"""Site records as the ingest servers learn them: the JSON the report service puts in a NATS KV
bucket (SITES_BUCKET, one key per site_id) whenever a site changes, and which every ingest
server watches into memory, so that no request waits on PostgreSQL for its site's settings.

Only what the servers need travels: the time zone (the days of the filtered-traffic counts),
the allowed origins, the ingest policy and the report visibility (core.access). A site without
a record (not yet published, or unknown) has the default: UTC, any origin, browsers may send
without a key, reports private.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from core.access import INGEST_BROWSERS, INGEST_POLICIES, PRIVATE, VISIBILITIES
from core.sites import DEFAULT_TIME_ZONE


@dataclass(frozen=True)
class SiteRecord:
    site_id: str
    time_zone: str = DEFAULT_TIME_ZONE
    # As core.sites.normal_origins leaves them; empty: any origin.
    allowed_origins: tuple[str, ...] = ()
    ingest_policy: str = INGEST_BROWSERS
    report_visibility: str = PRIVATE

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "site_id": self.site_id,
                "time_zone": self.time_zone,
                "allowed_origins": list(self.allowed_origins),
                "ingest_policy": self.ingest_policy,
                "report_visibility": self.report_visibility,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SiteRecord:
        """ValueError for bytes that are not a record: a reader of an older version ignores
        fields it does not know."""
        value: Any = json.loads(data)
        if not isinstance(value, dict):
            raise ValueError("a site record is a JSON object")
        site_id, zone = value.get("site_id"), value.get("time_zone", DEFAULT_TIME_ZONE)
        origins = value.get("allowed_origins", [])
        policy = value.get("ingest_policy", INGEST_BROWSERS)
        visibility = value.get("report_visibility", PRIVATE)
        if policy not in INGEST_POLICIES or visibility not in VISIBILITIES:
            raise ValueError("a site record's ingest_policy or report_visibility is unknown")
        if not (
            isinstance(site_id, str)
            and isinstance(zone, str)
            and isinstance(origins, list)
            and all(isinstance(origin, str) for origin in origins)
        ):
            raise ValueError("a site record has a string site_id and time_zone, a list of origins")
        return cls(site_id, zone, tuple(origins), policy, visibility)

    @classmethod
    def from_entry(cls, key: str, data: bytes) -> SiteRecord:
        """The record a bucket holds under `key` (its site_id)."""
        return cls.from_json(data)

    def allows(self, origin: str) -> bool:
        """Whether a page of `origin` (a request's Origin header) may send the site's events:
        listed as an origin, or its host listed as a host name."""
        if not self.allowed_origins or origin in self.allowed_origins:
            return True
        try:
            host = urlsplit(origin).hostname
        except ValueError:
            return False
        return host is not None and host in self.allowed_origins


async def site_bucket(js: JetStreamContext, bucket: str, replicas: int = 1) -> KeyValue:
    """The bucket of site records, created if missing (both services may create it)."""
    # Creating a bucket that exists with the same configuration changes nothing.
    config = KeyValueConfig(bucket=bucket, history=1, replicas=replicas, storage=StorageType.FILE)
    return await js.create_key_value(config)
