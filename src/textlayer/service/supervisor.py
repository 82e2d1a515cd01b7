"""The one restart loop of ``textlayer up``: every supervised child (embedded Redis, OCR server, Celery worker).

A child that dies is restarted at once the first time, then with exponential backoff up to
:data:`MAX_RESTART_BACKOFF_S` until it stays up for :data:`STABLE_UPTIME_S`. The supervisor never
stops a child: its owner stops the supervisor first, then the children in its own order.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

MAX_RESTART_BACKOFF_S = 30.0
"""Longest wait between two restarts of a child that keeps dying."""

STABLE_UPTIME_S = 60.0
"""A restarted child that stays up this long resets its restart backoff."""


class Supervised(Protocol):
    """A child process the supervisor can watch and start again."""

    def exit_cause(self) -> str | None:
        """Why it is not running (exit status, signal), or None while it runs."""
        ...

    def restart(self) -> None:
        """Start it again after it died."""
        ...


@dataclass
class _Watched:
    name: str
    child: Supervised
    restarts_in_a_row: int = 0
    started_at_s: float = 0.0


class Supervisor:
    """Watches children from one daemon thread and restarts those that die."""

    def __init__(self, *, poll_s: float = 1.0) -> None:
        """Check every child every ``poll_s`` seconds once :meth:`start` is called."""
        self.poll_s = poll_s
        self._watched: list[_Watched] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, child: Supervised, name: str) -> None:
        """Restart ``child`` (running now) whenever it dies; starts the supervisor thread if needed."""
        with self._lock:
            self._watched.append(_Watched(name, child, started_at_s=time.monotonic()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="textlayer-supervisor", daemon=True)
                self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop restarting (waits for a restart in progress); the children keep running."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_s):
            with self._lock:
                watched = list(self._watched)
            for entry in watched:
                if self._stopping.is_set():
                    return
                self._check(entry)

    def _check(self, entry: _Watched) -> None:
        cause = entry.child.exit_cause()
        if cause is None:
            if entry.restarts_in_a_row and time.monotonic() - entry.started_at_s >= STABLE_UPTIME_S:
                entry.restarts_in_a_row = 0
            return
        n = entry.restarts_in_a_row
        delay_s = 0.0 if n == 0 else min(MAX_RESTART_BACKOFF_S, 2.0 ** (n - 1))
        log.warning("%s died unexpectedly (%s); restarting it in %g s", entry.name, cause, delay_s)
        if self._stopping.wait(delay_s):
            return
        entry.restarts_in_a_row += 1
        try:
            entry.child.restart()
        except Exception as exc:  # the next round tries again, with a longer backoff
            log.error("restarting %s failed: %s", entry.name, exc)
            return
        entry.started_at_s = time.monotonic()
        log.warning("%s restarted", entry.name)
