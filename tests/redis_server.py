"""A private Redis for tests: an EmbeddedRedis on a free TCP port in a temp dir, never the machine's own Redis."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from textlayer.service.redis import BrokerError, EmbeddedRedis, RedisConfig

_START_TRIES = 3
"""Another process may grab the picked port between our probe and Redis's bind: retry with a new one."""


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def private_redis(base: pytest.TempPathFactory | Path, *, appendfsync: str = "everysec") -> EmbeddedRedis:
    """Start a Redis of our own for a test session or module; the caller stops it.

    Args:
        base: ``tmp_path_factory`` (a fresh ``redis*`` dir is made) or a dir (its ``redis`` subdir is used).
        appendfsync: AOF fsync policy (``always`` makes kill -9 tests need no wait).

    Returns:
        The started server: ``redis_url``/``celery_url`` point at ``redis://127.0.0.1:PORT/0``.
    """
    data_dir = base.mktemp("redis") if isinstance(base, pytest.TempPathFactory) else base / "redis"
    for attempt in range(1, _START_TRIES + 1):
        server = EmbeddedRedis(RedisConfig(data_dir=data_dir, port=free_tcp_port(), appendfsync=appendfsync))
        try:
            server.start()
        except BrokerError:
            if attempt == _START_TRIES:
                raise
            continue
        return server
    raise AssertionError("unreachable")
