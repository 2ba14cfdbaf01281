"""`analytics-dead-letters`: list, replay or drop what the writer could not store.

    analytics-dead-letters list [--limit N]
    analytics-dead-letters replay (--all | SEQUENCE ...)
    analytics-dead-letters drop (--all | SEQUENCE ...)

Replay puts a letter (a whole message, or one event as a message of its own) back on its
original subject, for the writer to store once the cause is fixed (a migration that loosens a
constraint, say); what still cannot be stored comes back to the dead letters after its
deliveries. Letters are read one at a time, so the command's memory does not grow with their
number. Configured by the services' environment variables (NATS_URL, DEAD_LETTER_STREAM,
DEAD_LETTER_SUBJECT).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence

import nats

from core.nats_connection import nats_options
from core.settings import ConfigError, Settings
from core.stream import DeadLetterStream
from writer.dead_letters import DeadLetter, DeadLetters


def main(argv: Sequence[str] | None = None) -> None:
    arguments = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        sys.exit(f"analytics-dead-letters: configuration error: {error}")
    sys.exit(asyncio.run(_run(settings, arguments)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="analytics-dead-letters", description="List, replay or drop dead letters."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show the dead letters, oldest first")
    listing.add_argument(
        "--limit", type=int, default=None, metavar="N", help="show the N oldest only"
    )
    for name, action in (("replay", "put back on its subject"), ("drop", "discard")):
        command = commands.add_parser(name, help=f"{action} dead letters")
        which = command.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="every dead letter")
        which.add_argument("sequences", nargs="*", type=int, default=[], metavar="SEQUENCE")
    return parser


async def _run(settings: Settings, arguments: argparse.Namespace) -> int:
    try:
        nc = await nats.connect(
            settings.nats_servers,
            connect_timeout=2,
            allow_reconnect=False,
            **nats_options(settings),
        )
    except (OSError, TimeoutError, nats.errors.Error) as error:
        print(f"analytics-dead-letters: cannot reach NATS: {error}", file=sys.stderr)
        return 1
    try:
        dead_letters = DeadLetters(nc.jetstream(), DeadLetterStream.from_settings(settings))
        if arguments.command == "list":
            await _print_table(dead_letters.all(), arguments.limit)
            return 0
        chosen = dead_letters.all() if arguments.all else _picked(dead_letters, arguments.sequences)
        done = 0
        async for letter in chosen:
            if arguments.command == "replay":
                await dead_letters.replay(letter)
            else:
                await dead_letters.drop(letter)
            done += 1
        verb = "replayed" if arguments.command == "replay" else "dropped"
        print(f"{verb} {done} dead letter{'s' if done != 1 else ''}")
        return 0
    except _UnknownLetters as unknown:
        print(f"analytics-dead-letters: no dead letter {unknown}", file=sys.stderr)
        return 1
    finally:
        await nc.close()


class _UnknownLetters(Exception):
    """Sequences asked for that hold no dead letter."""


async def _picked(dead_letters: DeadLetters, sequences: list[int]) -> AsyncIterator[DeadLetter]:
    """The letters of those sequences; _UnknownLetters, before any is yielded, if some of
    them hold none."""
    letters = {sequence: await dead_letters.get(sequence) for sequence in sequences}
    if unknown := [str(sequence) for sequence, letter in letters.items() if letter is None]:
        raise _UnknownLetters(", ".join(unknown))
    for letter in letters.values():
        assert letter is not None
        yield letter


async def _print_table(letters: AsyncIterator[DeadLetter], limit: int | None) -> None:
    shown = 0
    async for letter in letters:
        if shown == limit:
            print(f"... more dead letters not shown (--limit {limit})")
            return
        if not shown:
            print(
                "SEQUENCE  DEAD AT (UTC)        DELIVERIES  ORIGINAL SUBJECT, SEQUENCE, EVENT  "
                "REASON"
            )
        event = "" if letter.original_position is None else f" event {letter.original_position}"
        print(
            f"{letter.sequence:<8}  {letter.dead_at:%Y-%m-%d %H:%M:%S}  {letter.deliveries:<10}  "
            f"{letter.original_subject} #{letter.original_sequence}{event}  {letter.reason}"
        )
        shown += 1
    if not shown:
        print("no dead letters")


if __name__ == "__main__":
    main()
