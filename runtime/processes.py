"""Processes we start and stop: the API's worker processes, and, in the development stack, the
embedded servers and the services.

Each child runs in a session of its own and is stopped with its parent: the kernel signals it
when the process that started it dies, so a killed parent leaves no child behind.
"""

from __future__ import annotations

import pwd
import shutil
import signal
import subprocess
from pathlib import Path
from typing import IO

STOP_TIMEOUT_SECONDS = 20.0


class ProcessExited(RuntimeError):
    """A child process exited when it should be running."""


class ChildProcess:
    """A process we start and stop: in a session of its own, so that a Ctrl-C meant for us does
    not reach it, signalled by the kernel when we die, stopped by `stop_signal` (then SIGKILL
    after STOP_TIMEOUT_SECONDS). Its output goes to `log_path`, or to ours when None."""

    def __init__(
        self, name: str, stop_signal: signal.Signals, log_path: Path | None = None
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._stop_signal = stop_signal
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def spawn(
        self, argv: list[str], *, user: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
        self._popen = subprocess.Popen(
            _dying_with_us(argv, self._stop_signal),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            start_new_session=True,
            user=user,
            group=group_of(user) if user else None,
            extra_groups=[] if user else None,
        )

    def check_alive(self) -> None:
        if self._popen is not None and self._popen.poll() is not None:
            raise ProcessExited(
                f"{self.name} exited with status {self._popen.returncode}; "
                f"its log is {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self) -> int | None:
        """Stop it (if running) and return its exit status (None if it never started)."""
        self.ask_to_stop()
        return self.wait_stopped()

    def ask_to_stop(self) -> None:
        """Send the stop signal, once, if it is running; `wait_stopped` then waits for it."""
        if self._popen is not None and self._popen.poll() is None:
            self._popen.send_signal(self._stop_signal)

    def wait_stopped(self) -> int | None:
        """Its exit status, after STOP_TIMEOUT_SECONDS at most (then SIGKILL)."""
        if self._popen is None:
            return None
        try:
            self._popen.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._popen.kill()
        return self._reap()

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        if self._popen is not None:
            self._popen.kill()
            self._reap()

    def _reap(self) -> int:
        assert self._popen is not None
        status = self._popen.wait()
        self._popen = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return status

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def group_of(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _dying_with_us(argv: list[str], death_signal: signal.Signals) -> list[str]:
    """`argv` run so that the kernel sends `death_signal` to it when we die: through
    util-linux's setpriv, which sets the parent-death signal and execs the program (a Python
    preexec_fn could do it too, but running Python between fork and exec is unsafe once gRPC
    has started threads). Without setpriv (not Linux), only our own cleanup stops it."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return argv
    return [setpriv, "--pdeathsig", death_signal.name.removeprefix("SIG"), "--", *argv]
