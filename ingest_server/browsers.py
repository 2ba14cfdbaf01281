"""The rules for events a browser sends: dropped (a bot's; a page's of an origin its site does
not allow), or kept with what the request says about the visitor, derived here so that the
raw user agent and IP go no further than this process.

A browser's request is one that carries an `Origin` header: browsers send one with every POST
(`fetch`, `sendBeacon`), servers and scripts do not, and their events are stored as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from analytics.internal.v1.stream_pb2 import EventContext
from analytics.v1.event_pb2 import Event

from ingest_server.countries import Countries
from ingest_server.drops import BOT, ORIGIN_NOT_ALLOWED, Drops
from ingest_server.referrers import referrer_of
from ingest_server.site_watch import SiteRecords
from ingest_server.user_agents import UserAgent, user_agent
from ingest_server.visitors import VisitorKeys

# The campaign fields, read from the event's properties of the same names.
_UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
_NO_UTM = ("",) * len(_UTM_FIELDS)
# EventContext.visitor_id on the wire: field 2, 64-bit (sfixed64, little-endian).
_VISITOR_TAG = b"\x11"


@dataclass(frozen=True, slots=True)
class BrowserRequest:
    """What a page's request says about who sent it; never stored or sent on."""

    origin: str  # the Origin header
    user_agent: str
    ip: str  # the client's, see ingest_server.client_ip

    @property
    def host(self) -> str:
        return _host(self.origin)


class Browsers:
    def __init__(
        self,
        sites: SiteRecords,
        keys: VisitorKeys,
        drops: Drops,
        countries: Countries | None = None,
    ) -> None:
        self._sites = sites
        self._keys = keys
        self._drops = drops
        self._countries = countries

    @property
    def sites(self) -> SiteRecords:
        return self._sites

    def judge(self, event: Event, request: BrowserRequest, received_at: datetime) -> bytes | str:
        """The context to store a valid event with (a serialized EventContext), or the reason
        it is dropped (counted)."""
        site = self._sites.get(event.site_id)
        agent = user_agent(request.user_agent)
        if agent.bot:
            reason = BOT
        elif not site.allows(request.origin):
            reason = ORIGIN_NOT_ALLOWED
        else:
            return self._context(event, request, agent, received_at)
        self._drops.count(event.site_id, _local_day(received_at, site.time_zone), reason)
        return reason

    def _context(
        self, event: Event, request: BrowserRequest, agent: UserAgent, received_at: datetime
    ) -> bytes:
        properties = event.properties
        utm = tuple(properties.get(name, "") for name in _UTM_FIELDS) if properties else _NO_UTM
        country = self._countries.country(request.ip) if self._countries is not None else ""
        context = _shared_context(agent, referrer_of(event.referrer, request.host), utm, country)
        if event.user_id:
            return context
        visitor = self._keys.visitor_id(
            received_at.date(), event.site_id, request.ip, request.user_agent
        )
        return context + _VISITOR_TAG + visitor.to_bytes(8, "little", signed=True)


@lru_cache(maxsize=10_000)
def _shared_context(
    agent: UserAgent, referrer: tuple[str, str], utm: tuple[str, ...], country: str
) -> bytes:
    """The serialized EventContext of what many events share (all but the visitor): made
    once per combination, since building and serializing a message per event cost a third of
    a browser's request."""
    context = EventContext(
        browser=agent.browser,
        os=agent.os,
        device=agent.device,
        referrer_host=referrer[0],
        referrer_source=referrer[1],
        country=country,
    )
    for name, value in zip(_UTM_FIELDS, utm, strict=True):
        if value:
            setattr(context, name, value)
    return context.SerializeToString()


@lru_cache(maxsize=1000)
def _host(origin: str) -> str:
    try:
        return urlsplit(origin).hostname or ""
    except ValueError:
        return ""


def _local_day(moment: datetime, time_zone: str) -> date:
    try:
        return moment.astimezone(ZoneInfo(time_zone)).date()
    except (ValueError, KeyError):  # a zone this machine's tz database lacks
        return moment.date()
