"""Real processes for the integration tests: an ``opsloop serve`` subprocess and helpers to wait on them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import httpx


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.05) -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def opsloop_command() -> list[str]:
    """The ``opsloop`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("opsloop")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from api.cli import main; main()"]


def answers(url: str) -> bool:
    """Whether an HTTP GET of ``url`` gets a 2xx right now."""
    try:
        return httpx.get(url, timeout=1).is_success
    except httpx.HTTPError:
        return False


class Process:
    """A child process with its output in a log file, stopped for sure by ``stop``/``kill``."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    def start(self) -> None:
        """Start the process (appending to its log)."""
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=self._out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        """The last lines of the process's output, for failure messages."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        """Like ``wait_for``, but fail at once, with the log, if the process dies."""

        def ready() -> bool:
            if not self.alive():
                raise AssertionError(
                    f"{self.name} exited (code {self.proc and self.proc.returncode}) while waiting for {what}"
                )
            return check()

        try:
            wait_for(f"{self.name}: {what}", ready, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.tail()}") from None

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self._reap(10)

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM the process; return whether it exited cleanly within ``timeout`` (else SIGKILL it).

        Clean means exit code 0, or death by the SIGTERM itself: uvicorn (and Go daemons
        with default handlers) re-raise the signal once their graceful shutdown is done.
        """
        if self.proc is None:
            return True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self._reap(10)
                return False
        return self._reap(10) in (0, -signal.SIGTERM)

    def _reap(self, timeout: float) -> int:
        code = self.proc.wait(timeout) if self.proc is not None else 0
        if self._out is not None:
            self._out.close()
            self._out = None
        return code


class OpsloopServer(Process):
    """``opsloop serve --db FILE --port P`` as a subprocess."""

    def __init__(self, db: Path, port: int, log: Path, env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "OPSLOOP_LOG_LEVEL": "warning", **(env or {})}
        argv = [*opsloop_command(), "serve", "--db", str(db), "--port", str(port)]
        super().__init__("opsloop", argv, log, full_env)
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        """Start the server and wait until it is ready."""
        super().start()
        self.wait_until("/readyz", lambda: answers(f"{self.url}/readyz"), timeout=30)
