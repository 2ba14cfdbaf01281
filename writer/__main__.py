"""`analytics-writer`: moves events from the stream into PostgreSQL."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from core.settings import Settings
from runtime.lifecycle import Lifecycle, run_service
from runtime.ops import serving_ops
from runtime.tls import http_scheme
from writer.service import running_writer

logger = logging.getLogger("writer")


async def serve(settings: Settings, life: Lifecycle) -> None:
    async with running_writer(settings) as writer, AsyncExitStack() as ops:
        if settings.writer_http_listen is not None:
            address = await ops.enter_async_context(
                serving_ops(settings, settings.writer_http_listen, writer.ready)
            )
            scheme = http_scheme(settings)
            logger.info("writer: /metrics, /healthz and /readyz on %s://%s", scheme, address)
        life.started()
        logger.info("writer running")
        await writer.wait(life.stopping)


def main() -> None:
    run_service("analytics-writer", serve)


if __name__ == "__main__":
    main()
