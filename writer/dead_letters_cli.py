"""`analytics-dead-letters`: list, replay or drop what the writer could not store.

    analytics-dead-letters list
    analytics-dead-letters replay (--all | SEQUENCE ...)
    analytics-dead-letters drop (--all | SEQUENCE ...)

Replay puts a message back on its original subject, for the writer to store once the cause is
fixed (a migration that loosens a constraint, say); a message that still cannot be stored comes
back to the dead letters after its deliveries. Configured by the services' environment
variables (NATS_URL, DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECT).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import nats

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
    commands.add_parser("list", help="show every dead letter, oldest first")
    for name, action in (("replay", "put back on its subject"), ("drop", "discard")):
        command = commands.add_parser(name, help=f"{action} dead letters")
        which = command.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="every dead letter")
        which.add_argument("sequences", nargs="*", type=int, default=[], metavar="SEQUENCE")
    return parser


async def _run(settings: Settings, arguments: argparse.Namespace) -> int:
    try:
        nc = await nats.connect(settings.nats_servers, connect_timeout=2, allow_reconnect=False)
    except (OSError, TimeoutError, nats.errors.Error) as error:
        print(f"analytics-dead-letters: cannot reach NATS: {error}", file=sys.stderr)
        return 1
    try:
        dead_letters = DeadLetters(nc.jetstream(), DeadLetterStream.from_settings(settings))
        letters = [letter async for letter in dead_letters.all()]
        if arguments.command == "list":
            _print_table(letters)
            return 0
        chosen = letters if arguments.all else _pick(letters, arguments.sequences)
        if chosen is None:
            return 1
        for letter in chosen:
            if arguments.command == "replay":
                await dead_letters.replay(letter)
            else:
                await dead_letters.drop(letter)
        verb = "replayed" if arguments.command == "replay" else "dropped"
        print(f"{verb} {len(chosen)} dead letter{'s' if len(chosen) != 1 else ''}")
        return 0
    finally:
        await nc.close()


def _pick(letters: list[DeadLetter], sequences: list[int]) -> list[DeadLetter] | None:
    by_sequence = {letter.sequence: letter for letter in letters}
    unknown = [str(s) for s in sequences if s not in by_sequence]
    if unknown:
        print(f"analytics-dead-letters: no dead letter {', '.join(unknown)}", file=sys.stderr)
        return None
    return [by_sequence[s] for s in sequences]


def _print_table(letters: list[DeadLetter]) -> None:
    if not letters:
        print("no dead letters")
        return
    print("SEQUENCE  DEAD AT (UTC)        DELIVERIES  ORIGINAL SUBJECT AND SEQUENCE  REASON")
    for letter in letters:
        print(
            f"{letter.sequence:<8}  {letter.dead_at:%Y-%m-%d %H:%M:%S}  {letter.deliveries:<10}  "
            f"{letter.original_subject} #{letter.original_sequence}  {letter.reason}"
        )


if __name__ == "__main__":
    main()
