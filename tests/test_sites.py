"""The site registry through both doors of the running services (SiteService over gRPC,
`/sites` over HTTP), and a site's time zone deciding the days its reports count."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from analytics.v1.report_pb2 import GetStatsRequest
from analytics.v1.site_pb2 import (
    CreateSiteRequest,
    GetSiteRequest,
    ListSitesRequest,
    Site,
    UpdateSiteRequest,
)
from google.protobuf.field_mask_pb2 import FieldMask

from core.settings import Settings
from runtime.serve import ApiServer
from tests.support.clients import GrpcClients, field_violations
from tests.support.env import settings_env
from tests.support.waiting import eventually
from writer.service import RunningWriter


def without_times(site: dict[str, Any]) -> dict[str, Any]:
    assert site.pop("created_at").endswith("Z")
    assert site.pop("updated_at").endswith("Z")
    return site


async def test_a_site_created_over_http_is_read_over_both_doors(
    http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    created = await http.post(
        "/sites", json={"site_id": "shop", "name": "The Shop", "time_zone": "Europe/Berlin"}
    )
    read = await http.get("/sites/shop")
    over_grpc = await rpc.sites.GetSite(GetSiteRequest(site_id="shop"))

    assert created.status_code == 201
    site = {
        "site_id": "shop",
        "name": "The Shop",
        "time_zone": "Europe/Berlin",
        "allowed_origins": [],
        "ingest_policy": "browsers",
        "report_visibility": "private",
    }
    assert without_times(created.json()) == site
    assert without_times(read.json()) == site
    assert (over_grpc.site_id, over_grpc.name, over_grpc.time_zone) == (
        "shop",
        "The Shop",
        "Europe/Berlin",
    )


async def test_a_site_created_over_grpc_is_listed_over_http(
    http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    await rpc.sites.CreateSite(CreateSiteRequest(site_id="b-site"))
    await rpc.sites.CreateSite(CreateSiteRequest(site_id="a-site", time_zone="Asia/Kolkata"))

    listed = await http.get("/sites")
    page = await rpc.sites.ListSites(ListSitesRequest())

    defaults = {"allowed_origins": [], "ingest_policy": "browsers", "report_visibility": "private"}
    assert [without_times(site) for site in listed.json()["sites"]] == [
        {"site_id": "a-site", "name": "a-site", "time_zone": "Asia/Kolkata", **defaults},
        {"site_id": "b-site", "name": "b-site", "time_zone": "UTC", **defaults},
    ]
    assert listed.json()["next_page_token"] is None
    assert [site.site_id for site in page.sites] == ["a-site", "b-site"]


async def test_an_update_over_either_door_changes_only_what_it_names(
    http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    await http.post("/sites", json={"site_id": "shop", "name": "Shop"})

    patched = await http.patch("/sites/shop", json={"time_zone": "America/New_York"})
    updated = await rpc.sites.UpdateSite(
        UpdateSiteRequest(
            site=Site(site_id="shop", name="Renamed", time_zone="ignored"),
            update_mask=FieldMask(paths=["name"]),
        )
    )

    assert without_times(patched.json())["time_zone"] == "America/New_York"
    assert (updated.name, updated.time_zone) == ("Renamed", "America/New_York")


async def test_errors_name_the_field_or_the_site(http: httpx.AsyncClient, rpc: GrpcClients) -> None:
    await http.post("/sites", json={"site_id": "shop"})

    again = await http.post("/sites", json={"site_id": "shop"})
    missing = await http.get("/sites/nope")
    bad = await http.patch("/sites/shop", json={"time_zone": "Nowhere", "color": "red"})
    with pytest.raises(grpc.aio.AioRpcError) as not_found:
        await rpc.sites.GetSite(GetSiteRequest(site_id="nope"))
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await rpc.sites.CreateSite(CreateSiteRequest(site_id="x", time_zone="Nowhere"))

    assert (again.status_code, again.json()["error"]) == (409, "already_exists")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "site 'nope' is not registered"}
    assert bad.status_code == 400
    assert bad.json()["field_violations"] == [
        {"field": "color", "description": "is not a known field"}
    ]
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(invalid.value) == [("time_zone", "is not an IANA time zone: 'Nowhere'")]


async def test_stats_count_the_days_of_the_sites_zone(
    http: httpx.AsyncClient, rpc: GrpcClients, writer: RunningWriter
) -> None:
    await http.post("/sites", json={"site_id": "nepal", "time_zone": "Asia/Kathmandu"})
    for moment in ("2025-11-14T18:14:00Z", "2025-11-14T18:16:00Z"):  # 23:59 and 00:01 there
        event = {"site_id": "nepal", "event_type": "page_view", "path": "/", "timestamp": moment}
        assert (await http.post("/event", json=event)).status_code == 202

    async def views_on(day: str) -> int:
        stats = await rpc.report.GetStats(GetStatsRequest(site_id="nepal", date=day))
        return stats.total_views

    await eventually(lambda: views_on("2025-11-15"), 1)
    assert await views_on("2025-11-14") == 1


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


async def test_the_command_creates_shows_updates_and_lists_sites(
    api: ApiServer, settings: Settings
) -> None:
    async def command(*arguments: str) -> Finished:
        # Run beside this event loop, which serves the API the command calls.
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "report_server.sites_cli", "--target", str(api.grpc)),
            *arguments,
            env=settings_env(settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
        assert process.returncode is not None
        return Finished(process.returncode, stdout.decode(), stderr.decode())

    created = await command("create", "shop", "--name", "The Shop", "--time-zone", "Asia/Kolkata")
    updated = await command("update", "shop", "--time-zone", "Europe/London")
    listed = await command("list")
    refused = await command("create", "bad site")

    assert created.returncode == 0
    assert created.stdout.splitlines()[:3] == [
        "site_id:    shop",
        "name:       The Shop",
        "time_zone:  Asia/Kolkata",
    ]
    assert "time_zone:  Europe/London" in updated.stdout
    assert listed.stdout.splitlines()[1].split() == ["shop", "Europe/London", "The", "Shop"]
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "analytics-sites: invalid_argument: site_id: must start with a letter or digit and "
        "hold only letters, digits, '.', '_' and '-'",
        "  site_id: must start with a letter or digit and hold only letters, digits, '.', '_' "
        "and '-'",
    ]
