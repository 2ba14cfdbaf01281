"""Site records published to the ingest servers' bucket, and reconciled with PostgreSQL."""

from __future__ import annotations

import asyncpg
from nats.js import JetStreamContext

from core.migrator import migrate
from core.settings import Settings
from core.site_records import SiteRecord, site_bucket
from report_server.site_publishing import SitePublisher
from report_server.sites import SiteChanges, SiteRegistry


async def test_a_change_is_published_and_a_lost_publish_heals_at_the_next_reconcile(
    js: JetStreamContext, settings: Settings, pool: asyncpg.Pool
) -> None:
    await migrate(pool)
    kv = await site_bucket(js, settings.sites_bucket)
    publisher = SitePublisher(kv, pool, interval=60)
    registry = SiteRegistry(pool, publisher)
    await registry.create("shop", allowed_origins=["https://shop.example"])
    published = await kv.get("shop")
    # Lost: the update's publish never reached NATS, and a site's record vanished.
    await SiteRegistry(pool).update("shop", SiteChanges(allowed_origins=["shop.example"]))
    await SiteRegistry(pool).create("blog", time_zone="Europe/Berlin")
    await kv.put("gone", SiteRecord("gone").to_json())

    changes = await publisher.reconcile()

    assert SiteRecord.from_json(published.value or b"") == SiteRecord(
        "shop", "UTC", ("https://shop.example",)
    )
    assert changes == 3
    assert sorted(await kv.keys()) == ["blog", "shop"]
    assert SiteRecord.from_json((await kv.get("shop")).value or b"") == SiteRecord(
        "shop", "UTC", ("shop.example",)
    )
    assert SiteRecord.from_json((await kv.get("blog")).value or b"") == SiteRecord(
        "blog", "Europe/Berlin"
    )
    assert await publisher.reconcile() == 0


def test_an_origin_or_a_host_name_allows_a_page() -> None:
    record = SiteRecord("shop", allowed_origins=("https://shop.example", "blog.example"))

    assert record.allows("https://shop.example")
    assert record.allows("http://blog.example:8080")
    assert not record.allows("http://shop.example")
    assert not record.allows("https://evil.example")
    assert not record.allows("null")


def test_a_site_without_allowed_origins_allows_any_page() -> None:
    assert SiteRecord("shop").allows("https://anything.example")
