"""`analytics-writer`: moves events from the stream into PostgreSQL."""

from __future__ import annotations

import logging

from core.settings import Settings
from runtime.lifecycle import Lifecycle, run_service
from writer.service import running_writer

logger = logging.getLogger("writer")


async def serve(settings: Settings, life: Lifecycle) -> None:
    async with running_writer(settings) as writer:
        life.started()
        logger.info("writer running")
        await writer.wait(life.stopping)


def main() -> None:
    run_service("analytics-writer", serve)


if __name__ == "__main__":
    main()
