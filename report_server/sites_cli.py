"""`analytics-sites`: the site registry from a terminal, through the report service's gRPC
SiteService (at GRPC_LISTEN, or --target).

    analytics-sites create SITE_ID [--name NAME] [--time-zone ZONE] [--allowed-origins LIST]
    analytics-sites get SITE_ID
    analytics-sites list
    analytics-sites update SITE_ID [--name NAME] [--time-zone ZONE] [--allowed-origins LIST]

A new time zone applies to every report of the site, its past days included.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import grpc
from analytics.v1 import site_pb2, site_pb2_grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from runtime.lifecycle import settings_or_exit

PROGRAM = "analytics-sites"


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_or_exit(PROGRAM)
    arguments = _parser(str(settings.grpc_listen)).parse_args(argv)
    sys.exit(asyncio.run(_run(arguments)))


def _parser(default_target: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Create, show, list and change the sites whose events are counted.",
    )
    parser.add_argument(
        "--target",
        default=default_target,
        help=f"host:port of the report service's gRPC (default: GRPC_LISTEN, {default_target})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="register a site")
    create.add_argument("site_id")
    get = commands.add_parser("get", help="show one site")
    get.add_argument("site_id")
    commands.add_parser("list", help="show every site, by site_id")
    update = commands.add_parser(
        "update", help="change a site's name, time zone or allowed origins"
    )
    update.add_argument("site_id")
    for command in (create, update):
        command.add_argument("--name", default="", help="display name (default: the site_id)")
        command.add_argument(
            "--time-zone",
            default="",
            help="IANA time zone its reports use, such as Europe/Berlin (default: UTC)",
        )
        command.add_argument(
            "--allowed-origins",
            default=None,
            help="comma-separated origins (https://example.com) or host names (example.com) "
            "whose pages may send its events from a browser; '' allows any (the default)",
        )
    return parser


async def _run(arguments: argparse.Namespace) -> int:
    async with grpc.aio.insecure_channel(arguments.target) as channel:
        sites = site_pb2_grpc.SiteServiceStub(channel)
        try:
            if arguments.command == "list":
                await _list(sites)
            else:
                _show(await _one(sites, arguments))
        except grpc.aio.AioRpcError as error:
            print(f"{PROGRAM}: {_explained(error)}", file=sys.stderr)
            return 1
    return 0


async def _one(
    sites: site_pb2_grpc.SiteServiceAsyncStub, arguments: argparse.Namespace
) -> site_pb2.Site:
    site_id = arguments.site_id
    origins = arguments.allowed_origins
    allowed = [o.strip() for o in (origins or "").split(",") if o.strip()]
    if arguments.command == "create":
        return await sites.CreateSite(
            site_pb2.CreateSiteRequest(
                site_id=site_id,
                name=arguments.name,
                time_zone=arguments.time_zone,
                allowed_origins=allowed,
            )
        )
    if arguments.command == "get":
        return await sites.GetSite(site_pb2.GetSiteRequest(site_id=site_id))
    fields = {"name": arguments.name, "time_zone": arguments.time_zone}
    paths = [name for name, value in fields.items() if value]
    if origins is not None:
        paths.append("allowed_origins")
    return await sites.UpdateSite(
        site_pb2.UpdateSiteRequest(
            site=site_pb2.Site(site_id=site_id, allowed_origins=allowed, **fields),
            update_mask=FieldMask(paths=paths),
        )
    )


async def _list(sites: site_pb2_grpc.SiteServiceAsyncStub) -> None:
    token = ""
    print(f"{'SITE_ID':<32}  {'TIME ZONE':<24}  NAME")
    while True:
        page = await sites.ListSites(site_pb2.ListSitesRequest(page_token=token))
        for site in page.sites:
            print(f"{site.site_id:<32}  {site.time_zone:<24}  {site.name}")
        token = page.next_page_token
        if not token:
            return


def _show(site: site_pb2.Site) -> None:
    print(f"site_id:    {site.site_id}")
    print(f"name:       {site.name}")
    print(f"time_zone:  {site.time_zone}")
    print(f"allowed_origins: {', '.join(site.allowed_origins) or '(any)'}")
    print(f"created_at: {site.created_at.ToJsonString()}")
    print(f"updated_at: {site.updated_at.ToJsonString()}")


def _explained(error: grpc.aio.AioRpcError) -> str:
    """The error's message, with each field violation on a line of its own."""
    lines = [f"{error.code().name.lower()}: {error.details()}"]
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            lines += [f"  {v.field}: {v.description}" for v in bad_request.field_violations]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
