"""The day's visitor keys, shared by every ingest server through NATS KV."""

from __future__ import annotations

from datetime import date

import pytest
from nats.js import JetStreamContext

from core.errors import Unavailable
from core.settings import Settings
from ingest_server.visitors import VisitorKeys

DAY = date(2026, 12, 6)


async def keys_of(js: JetStreamContext, settings: Settings, today: date) -> VisitorKeys:
    keys = await VisitorKeys.open(js, settings.visitor_keys_bucket, today=lambda: today)
    await keys.refresh()
    return keys


async def test_two_servers_give_a_visitor_the_same_id_on_the_same_day(
    js: JetStreamContext, settings: Settings
) -> None:
    one, other = await keys_of(js, settings, DAY), await keys_of(js, settings, DAY)

    assert one.visitor_id(DAY, "shop", "203.0.113.7", "Firefox") == other.visitor_id(
        DAY, "shop", "203.0.113.7", "Firefox"
    )


async def test_a_visitor_has_another_id_the_next_day_and_on_another_site(
    js: JetStreamContext, settings: Settings
) -> None:
    keys = await keys_of(js, settings, DAY)
    tomorrow = date(2026, 12, 7)

    ids = {
        keys.visitor_id(DAY, "shop", "203.0.113.7", "Firefox"),
        keys.visitor_id(tomorrow, "shop", "203.0.113.7", "Firefox"),
        keys.visitor_id(DAY, "blog", "203.0.113.7", "Firefox"),
    }

    assert len(ids) == 3


async def test_the_key_of_a_past_day_is_deleted_from_the_bucket(
    js: JetStreamContext, settings: Settings
) -> None:
    await keys_of(js, settings, DAY)
    later = await keys_of(js, settings, date(2026, 12, 8))
    kv = await js.key_value(settings.visitor_keys_bucket)

    assert sorted(await kv.keys()) == ["day-2026-12-08", "day-2026-12-09"]
    with pytest.raises(Unavailable):
        later.visitor_id(DAY, "shop", "203.0.113.7", "Firefox")
