"""One child process of ``textlayer up`` (the OCR server, the Celery worker): start, watch, stop, log file."""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


def exit_cause(process: subprocess.Popen[bytes] | None) -> str | None:
    """Why a child is not running (exit status, signal), or None while it runs."""
    if process is None:
        return "it is not running"
    code = process.poll()
    if code is None:
        return None
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def stop_process(process: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
    """SIGTERM (a clean shutdown: Redis fsyncs its AOF, Celery finishes its tasks), SIGKILL if it lingers; reap it."""
    # Popen.terminate/kill do nothing once the child is reaped, so a recycled pid is never signalled.
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %d) ignored SIGTERM for %g s; killing it", name, process.pid, timeout_s)
        process.kill()
        process.wait()


class ChildProcess:
    """A command run with its output appended to a log file; restartable (see :class:`Supervisor`)."""

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        """Describe the child; :meth:`start` runs it."""
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's pid, else None."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self) -> None:
        """Run the command (its stdout and stderr go to the log file)."""
        if self._log_file is None:
            self._log_file = self.log_path.open("ab")
        # Own session, like Redis: a Ctrl-C reaches `up` alone, and stop() ends the children with SIGTERM
        # (a SIGINT to the whole group killed the OCR server mid-import, and gave the worker two signals).
        self._process = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            start_new_session=True,
        )
        log.info("%s started (pid %d), log %s", self.name, self._process.pid, self.log_path)

    restart = start

    def exit_cause(self) -> str | None:
        """Why the process is not running, or None while it runs."""
        return exit_cause(self._process)

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM: Celery's warm shutdown, the OCR server's drain)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float) -> None:
        """Terminate, wait up to ``timeout_s``, then kill; close the log file."""
        if self._process is not None:
            stop_process(self._process, self.name, timeout_s)
            log.info("%s stopped", self.name)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
