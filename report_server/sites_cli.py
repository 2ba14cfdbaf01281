"""`analytics-sites`: the site registry from a terminal, through the report service's gRPC
SiteService (at GRPC_LISTEN, or --target).

    analytics-sites create SITE_ID [--name NAME] [--time-zone ZONE] [--allowed-origins LIST]
        [--ingest-policy browsers|key_required] [--report-visibility private|public]
    analytics-sites get SITE_ID
    analytics-sites list
    analytics-sites update SITE_ID [the same options]

A new time zone applies to every report of the site, its past days included. Every command
takes the admin token: --token, or the ANALYTICS_TOKEN environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import grpc
from analytics.v1 import site_pb2, site_pb2_grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from runtime.lifecycle import settings_or_exit

PROGRAM = "analytics-sites"
TOKEN_VARIABLE = "ANALYTICS_TOKEN"


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
    add_token_option(parser)
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
        command.add_argument(
            "--ingest-policy",
            default="",
            choices=("browsers", "key_required"),
            help="browsers (the default): a browser may send events without a key, from the "
            "allowed origins, other callers need an ingest key; key_required: every event "
            "needs an ingest key",
        )
        command.add_argument(
            "--report-visibility",
            default="",
            choices=("private", "public"),
            help="private (the default): reading its reports takes a read token; public: "
            "anyone may read them",
        )
    return parser


def add_token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_VARIABLE, ""),
        help=f"the admin token (anat_...; default: the {TOKEN_VARIABLE} environment variable; "
        "`make run` prints one)",
    )


def call_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The metadata that presents the token, if any."""
    return (("authorization", f"Bearer {token}"),) if token else ()


async def _run(arguments: argparse.Namespace) -> int:
    async with grpc.aio.insecure_channel(arguments.target) as channel:
        sites = site_pb2_grpc.SiteServiceStub(channel)
        metadata = call_metadata(arguments.token)
        try:
            if arguments.command == "list":
                await _list(sites, metadata)
            else:
                _show(await _one(sites, arguments, metadata))
        except grpc.aio.AioRpcError as error:
            print(f"{PROGRAM}: {explained(error)}", file=sys.stderr)
            return 1
    return 0


async def _one(
    sites: site_pb2_grpc.SiteServiceAsyncStub,
    arguments: argparse.Namespace,
    metadata: tuple[tuple[str, str], ...],
) -> site_pb2.Site:
    site_id = arguments.site_id
    origins = getattr(arguments, "allowed_origins", None)  # not an option of `get`
    allowed = [o.strip() for o in (origins or "").split(",") if o.strip()]
    if arguments.command == "create":
        return await sites.CreateSite(
            site_pb2.CreateSiteRequest(
                site_id=site_id,
                name=arguments.name,
                time_zone=arguments.time_zone,
                allowed_origins=allowed,
                ingest_policy=arguments.ingest_policy,
                report_visibility=arguments.report_visibility,
            ),
            metadata=metadata,
        )
    if arguments.command == "get":
        return await sites.GetSite(site_pb2.GetSiteRequest(site_id=site_id), metadata=metadata)
    fields = {
        "name": arguments.name,
        "time_zone": arguments.time_zone,
        "ingest_policy": arguments.ingest_policy,
        "report_visibility": arguments.report_visibility,
    }
    paths = [name for name, value in fields.items() if value]
    if origins is not None:
        paths.append("allowed_origins")
    return await sites.UpdateSite(
        site_pb2.UpdateSiteRequest(
            site=site_pb2.Site(site_id=site_id, allowed_origins=allowed, **fields),
            update_mask=FieldMask(paths=paths),
        ),
        metadata=metadata,
    )


async def _list(
    sites: site_pb2_grpc.SiteServiceAsyncStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    token = ""
    print(f"{'SITE_ID':<32}  {'TIME ZONE':<24}  NAME")
    while True:
        page = await sites.ListSites(site_pb2.ListSitesRequest(page_token=token), metadata=metadata)
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
    print(f"ingest_policy: {site.ingest_policy}")
    print(f"report_visibility: {site.report_visibility}")
    print(f"created_at: {site.created_at.ToJsonString()}")
    print(f"updated_at: {site.updated_at.ToJsonString()}")


def explained(error: grpc.aio.AioRpcError) -> str:
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
