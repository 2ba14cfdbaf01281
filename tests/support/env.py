"""Running our services as separate processes, as production does."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from core.settings import Settings
from runtime.processes import ChildProcess


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment under which a service process reads `settings`."""
    assert settings.nats_url
    assert settings.database_url
    return {**os.environ, **settings.to_env()}


def start_service(module: str, settings: Settings) -> ChildProcess:
    """`python -m <module>` configured by `settings`; SIGTERM stops it."""
    process = ChildProcess(module, signal.SIGTERM)
    process.spawn([sys.executable, "-m", module], env=settings_env(settings))
    return process


ServiceStarter = Callable[[str, Settings], ChildProcess]
