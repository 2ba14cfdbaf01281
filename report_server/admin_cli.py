"""`analytics-admin`: ingest keys, read tokens and admin tokens from a terminal, through the
report service's gRPC AdminService (at GRPC_LISTEN, or --target), with the admin token
(--token, or ANALYTICS_TOKEN).

    analytics-admin keys create SITE_ID [--name NAME]
    analytics-admin tokens create (--sites A,B | --all-sites | --admin) [--name NAME]
    analytics-admin keys|tokens list
    analytics-admin keys|tokens revoke CREDENTIAL_ID
    analytics-admin keys|tokens rotate CREDENTIAL_ID
    analytics-admin bootstrap [--name NAME]

`bootstrap` makes an admin token straight in PostgreSQL and NATS (DATABASE_URL, NATS_URL), for
the first one, which nobody could ask the service for.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import grpc
from analytics.v1 import admin_pb2, admin_pb2_grpc

from core.access import ADMIN_TOKEN, INGEST_KEY, READ_TOKEN
from report_server.credentials import bootstrap_admin_token
from report_server.sites_cli import add_token_option, call_metadata, explained
from runtime.lifecycle import settings_or_exit

PROGRAM = "analytics-admin"

_REVOKE_HELP = (
    "revoke it at once: within seconds no server accepts it any more (the id is the "
    "credential_id of `list`, never the secret)"
)
_ROTATE_HELP = (
    "make a new secret for it (same kind, name and sites) and revoke the old one at once; "
    "to change a secret without a gap, create a second one, deploy it, then revoke the first"
)


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_or_exit(PROGRAM)
    arguments = _parser(str(settings.grpc_listen)).parse_args(argv)
    if arguments.group == "bootstrap":
        created = asyncio.run(bootstrap_admin_token(settings, arguments.name))
        _show_created(created.credential.credential_id, ADMIN_TOKEN, created.secret)
        return
    sys.exit(asyncio.run(_run(arguments)))


def _parser(default_target: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Make, list, revoke and rotate ingest keys and read or admin tokens. A "
        "secret is printed once, when made; only its SHA-256 is kept.",
    )
    parser.add_argument(
        "--target",
        default=default_target,
        help=f"host:port of the report service's gRPC (default: GRPC_LISTEN, {default_target})",
    )
    add_token_option(parser)
    groups = parser.add_subparsers(dest="group", required=True)

    keys = groups.add_parser(
        "keys",
        help="ingest keys: what a backend sends events with",
        description="An ingest key lets a backend send the events of one site "
        "(Authorization: Bearer anik_...), from any time back to 2000-01-01; without one, only "
        "browsers may send, and only recent events (KEYLESS_BACKFILL_DAYS).",
    )
    key_commands = keys.add_subparsers(dest="command", required=True)
    create_key = key_commands.add_parser(
        "create",
        help="make an ingest key for one site and print its secret once",
        description="Make an ingest key for one site and print its secret once (only its "
        "SHA-256 is kept: a lost secret cannot be shown again; rotate it). A backend sends it "
        "as `Authorization: Bearer anik_...` (HTTP) or `authorization` metadata (gRPC); the "
        "Python client takes it as api_key=. Every ingest server accepts it within seconds.",
    )
    create_key.add_argument("site_id", help="the site whose events the key may send")
    create_key.add_argument("--name", default="", help="a note for people, such as 'checkout'")

    tokens = groups.add_parser(
        "tokens",
        help="read tokens (reports of some sites, or all) and admin tokens",
        description="A read token lets its holder read the reports of its sites "
        "(Authorization: Bearer anrt_...); an admin token manages sites, keys and tokens and "
        "reads every report (anat_...).",
    )
    token_commands = tokens.add_subparsers(dest="command", required=True)
    create_token = token_commands.add_parser(
        "create",
        help="make a read token or an admin token and print its secret once",
        description="Make a read token (the reports of the sites named, or of all) or an "
        "admin token (manages sites, keys and tokens, reads every report), and print its "
        "secret once; only its SHA-256 is kept. Sent as `Authorization: Bearer ...`.",
    )
    scope = create_token.add_mutually_exclusive_group(required=True)
    scope.add_argument("--sites", help="comma-separated site_ids the read token may read")
    scope.add_argument("--all-sites", action="store_true", help="a read token for every site")
    scope.add_argument("--admin", action="store_true", help="an admin token")
    create_token.add_argument("--name", default="", help="a note for people, such as 'grafana'")

    for group, kind in ((key_commands, INGEST_KEY), (token_commands, "")):
        listed = "ingest keys" if kind else "read and admin tokens"
        listing = group.add_parser(
            "list",
            help="show them, revoked ones too, newest first",
            description=f"Show the {listed}, revoked ones too, newest first: id, kind, "
            "sites, when revoked, name. Secrets are never shown again.",
        )
        listing.set_defaults(kind=kind)
        for command, explanation in (("revoke", _REVOKE_HELP), ("rotate", _ROTATE_HELP)):
            group.add_parser(
                command, help=explanation, description=explanation[0].upper() + explanation[1:]
            ).add_argument("credential_id", help="cred_..., as `list` shows it")

    bootstrap = groups.add_parser(
        "bootstrap",
        help="make an admin token straight in PostgreSQL and NATS (the first one)",
        description="Make an admin token without asking the service (which would take one): "
        "connects to DATABASE_URL and NATS_URL itself. Earlier admin tokens of the same name "
        "are revoked.",
    )
    bootstrap.add_argument("--name", default="bootstrap", help="its name (default: bootstrap)")
    return parser


async def _run(arguments: argparse.Namespace) -> int:
    async with grpc.aio.insecure_channel(arguments.target) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        metadata = call_metadata(arguments.token)
        try:
            await _command(admin, arguments, metadata)
        except grpc.aio.AioRpcError as error:
            print(f"{PROGRAM}: {explained(error)}", file=sys.stderr)
            return 1
    return 0


async def _command(
    admin: admin_pb2_grpc.AdminServiceAsyncStub,
    arguments: argparse.Namespace,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    command = arguments.command
    if command == "create":
        created = await admin.CreateCredential(_create_request(arguments), metadata=metadata)
        credential = created.credential
        _show_created(credential.credential_id, credential.kind, created.secret)
    elif command == "list":
        listed = await admin.ListCredentials(
            admin_pb2.ListCredentialsRequest(kind=arguments.kind), metadata=metadata
        )
        shown = [c for c in listed.credentials if arguments.group == "keys" or c.kind != INGEST_KEY]
        _show_list(shown)
    elif command == "revoke":
        revoked = await admin.RevokeCredential(
            admin_pb2.RevokeCredentialRequest(credential_id=arguments.credential_id),
            metadata=metadata,
        )
        print(f"revoked {revoked.credential_id} at {revoked.revoked_at.ToJsonString()}")
    else:
        rotated = await admin.RotateCredential(
            admin_pb2.RotateCredentialRequest(credential_id=arguments.credential_id),
            metadata=metadata,
        )
        credential = rotated.credential
        print(f"revoked {credential.replaces}")
        _show_created(credential.credential_id, credential.kind, rotated.secret)


def _create_request(arguments: argparse.Namespace) -> admin_pb2.CreateCredentialRequest:
    if arguments.group == "keys":
        return admin_pb2.CreateCredentialRequest(
            kind=INGEST_KEY, name=arguments.name, site_ids=[arguments.site_id]
        )
    if arguments.admin:
        return admin_pb2.CreateCredentialRequest(kind=ADMIN_TOKEN, name=arguments.name)
    sites = [s.strip() for s in (arguments.sites or "").split(",") if s.strip()]
    return admin_pb2.CreateCredentialRequest(
        kind=READ_TOKEN, name=arguments.name, site_ids=sites, all_sites=arguments.all_sites
    )


def _show_created(credential_id: str, kind: str, secret: str) -> None:
    print(f"made {kind.replace('_', ' ')} {credential_id}; its secret, shown this once:")
    print(secret)


def _show_list(credentials: Sequence[admin_pb2.Credential]) -> None:
    print(f"{'CREDENTIAL_ID':<22}  {'KIND':<11}  {'SITES':<24}  {'REVOKED':<20}  NAME")
    for c in credentials:
        sites = "(all)" if c.all_sites or c.kind == ADMIN_TOKEN else ",".join(c.site_ids)
        revoked = c.revoked_at.ToJsonString() if c.HasField("revoked_at") else "-"
        print(f"{c.credential_id:<22}  {c.kind:<11}  {sites:<24}  {revoked:<20}  {c.name}")


if __name__ == "__main__":
    main()
