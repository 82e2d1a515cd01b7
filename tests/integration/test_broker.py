"""The embedded Redis: start, durability across kill -9, supervision, refusing a second server, TCP."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import redis

from tests.redis_server import private_redis
from textlayer.service.redis import BrokerError, EmbeddedRedis, RedisConfig, redis_server_binary
from textlayer.service.supervisor import Supervisor

pytestmark = pytest.mark.redis

ITEMS = 200


def _client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.redis_url, socket_timeout=5)


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _gone(pid: int) -> bool:
    # Signal 0 checks existence only; the pid is one we started and reaped.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_binary_is_found():
    binary = redis_server_binary()
    assert binary.is_file() and os.access(binary, os.X_OK)


def test_start_set_get_over_unix_socket(tmp_path):
    data_dir = tmp_path / "redis"
    with EmbeddedRedis(RedisConfig(data_dir=data_dir)) as server:
        assert server.alive() and server.pid is not None
        assert server.url == server.redis_url == f"unix://{data_dir / 'redis.sock'}"
        assert server.celery_url == f"redis+socket://{data_dir / 'redis.sock'}"
        assert server.celery_url.startswith("redis+socket:///")
        assert (data_dir / "redis.sock").stat().st_mode & 0o777 == 0o700
        conf = (data_dir / "redis.conf").read_text().splitlines()
        assert {"port 0", "appendonly yes", "appendfsync everysec", 'save ""', "unixsocketperm 700"} <= set(conf)
        with _client(server) as client:
            client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"
            client.lpush("jobs", *[f"job-{i}" for i in range(ITEMS)])
    # A clean stop fsyncs the AOF even within the everysec window.
    with EmbeddedRedis(RedisConfig(data_dir=data_dir)) as server, _client(server) as client:
        assert client.get("greeting") == b"hello"
        assert client.llen("jobs") == ITEMS
    assert {path.name for path in data_dir.iterdir()} >= {"redis.conf", "redis.log"}


def test_kill_9_after_everysec_loses_nothing(tmp_path):
    server = EmbeddedRedis(RedisConfig(data_dir=tmp_path / "redis"))
    server.start()
    try:
        with _client(server) as client:
            for i in range(ITEMS):
                client.lpush("jobs", f"job-{i}")
        time.sleep(1.5)  # appendfsync everysec: one fsync has happened since the last push
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert server.socket_path.exists()  # stale: a killed Redis does not remove its socket
        assert EmbeddedRedis.running_at(server.data_dir) is None
        server.start()  # at once: start() lets a process that was just killed finish dying
        assert server.pid != pid
        with _client(server) as client:
            assert client.llen("jobs") == ITEMS
    finally:
        server.stop()


def test_the_supervisor_restarts_a_killed_server(tmp_path, caplog):
    server = EmbeddedRedis(RedisConfig(data_dir=tmp_path / "redis", appendfsync="always"))
    server.start()
    supervisor = Supervisor(poll_s=0.1)
    try:
        with _client(server) as client:
            client.set("survives", "yes")
        supervisor.watch(server, "redis-server")
        pid = server.pid
        assert pid is not None
        with caplog.at_level("WARNING", logger="textlayer.service.supervisor"):
            os.kill(pid, signal.SIGKILL)
            assert _wait_for(lambda: server.pid not in (None, pid), 5)
        assert "died unexpectedly" in caplog.text
        with _client(server) as client:
            assert client.get("survives") == b"yes"
    finally:
        supervisor.stop()
        server.stop()
    new_pid = server.pid
    assert new_pid is None and not server.alive()
    assert _gone(pid)
    assert not any(thread.name == "textlayer-supervisor" for thread in threading.enumerate())


def test_running_at_finds_a_live_server_and_start_refuses_a_second(tmp_path):
    config = RedisConfig(data_dir=tmp_path / "redis")
    assert EmbeddedRedis.running_at(config.data_dir) is None
    with EmbeddedRedis(config) as server:
        assert EmbeddedRedis.running_at(config.data_dir) == server.url
        with pytest.raises(BrokerError, match="already running") as refused:
            server.start()
        assert refused.value.reason == "broker_unavailable"
        second = EmbeddedRedis(config)
        with pytest.raises(BrokerError, match="already running"):
            second.start()
        assert not second.alive()
        pid = server.pid
    assert pid is not None and _gone(pid)
    assert not server.alive() and server.pid is None
    assert EmbeddedRedis.running_at(config.data_dir) is None
    assert not (config.data_dir / "redis.sock").exists()


def test_tcp_variant_on_a_free_port(tmp_path_factory):
    server = private_redis(tmp_path_factory)
    try:
        port = server.config.port
        assert port not in (0, 6379)
        assert server.redis_url == server.celery_url == f"redis://127.0.0.1:{port}/0"
        assert f"port {port}" in server.conf_path.read_text()
        with _client(server) as client:
            client.set("over", "tcp")
            assert client.get("over") == b"tcp"
        # The unix socket is there too, so other commands find the server by its data dir.
        assert EmbeddedRedis.running_at(server.data_dir) is not None
    finally:
        server.stop()
    assert not server.alive()


def test_too_long_a_socket_path_is_refused_clearly(tmp_path):
    server = EmbeddedRedis(RedisConfig(data_dir=tmp_path / ("d" * 120)))
    with pytest.raises(BrokerError, match="shorter data dir"):
        server.start()


def test_configure_for_another_broker_publishes_there(tmp_path):
    """Celery caches its connection pool: re-pointing the app must not keep publishing to the old broker."""
    from textlayer.queue.app import app, configure

    first, second = private_redis(tmp_path / "first"), private_redis(tmp_path / "second")
    try:
        configure(first.celery_url)
        app.send_task("textlayer.process", ("a",), queue="textlayer")
        configure(second.celery_url)
        app.send_task("textlayer.process", ("b",), queue="textlayer")
        assert redis.Redis.from_url(first.redis_url).llen("textlayer") == 1
        assert redis.Redis.from_url(second.redis_url).llen("textlayer") == 1
    finally:
        first.stop()
        second.stop()
