"""The ingest service's rate limits, in events: per site (each event counts against its site)
and per client IP (every event of a request, valid or not). A request passes whole or not at
all: a batch is refused if any of its sites, or its IP, is over the limit, and then nothing of
it is stored or counted. Events rather than requests, because what a request costs (the stream,
the writer, the database) grows with its events: a 1000-event batch weighs what 1000 single
events weigh.

Both doors count against the same buckets, per process (README, Limits).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from analytics.v1.event_pb2 import Event

from core.errors import InvalidArgument
from core.rate_limits import Charge, TokenBuckets, admit
from core.settings import Settings
from runtime.metrics import throttled

# A site_id is at most this long in a refusal's message (an invalid one may be any length).
SHOWN_SITE_CHARS = 64


class IngestLimits:
    def __init__(self, sites: TokenBuckets | None, ips: TokenBuckets | None) -> None:
        self._sites = sites
        self._ips = ips

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits | None:
        """The configured limits; None when both are off."""
        sites = ips = None
        if settings.ingest_rate_per_site:
            sites = TokenBuckets(
                "ingest_site",
                settings.ingest_rate_per_site,
                settings.ingest_burst_per_site,
                unit="events",
                subject=_site_subject,
                refused=throttled("ingest_site", settings.metrics),
            )
        if settings.ingest_rate_per_ip:
            ips = TokenBuckets(
                "ingest_ip",
                settings.ingest_rate_per_ip,
                settings.ingest_burst_per_ip,
                unit="events",
                subject="ip:".__add__,
                refused=throttled("ingest_ip", settings.metrics),
            )
        return None if sites is None and ips is None else cls(sites, ips)

    def admit(self, ip: str, items: Sequence[Event | InvalidArgument]) -> None:
        """Count a request's events; RateLimited (nothing counted) if a limit refuses them."""
        charges: list[Charge] = []
        if self._ips is not None:
            charges.append((self._ips, ip, len(items)))
        if self._sites is not None:
            charges += [(self._sites, site, count) for site, count in _sites_of(items).items()]
        admit(charges)


def _sites_of(items: Sequence[Event | InvalidArgument]) -> dict[str, int]:
    """The events of each site (items refused on decoding have none)."""
    if len(items) == 1:
        item = items[0]
        return {item.site_id: 1} if isinstance(item, Event) else {}
    try:
        return Counter([item.site_id for item in items])  # type: ignore[union-attr]
    except AttributeError:  # some were refused on decoding (HTTP)
        return Counter([item.site_id for item in items if isinstance(item, Event)])


def _site_subject(site_id: str) -> str:
    return f"site:{site_id[:SHOWN_SITE_CHARS]}"
