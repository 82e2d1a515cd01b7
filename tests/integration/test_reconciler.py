"""The reconciler recovers lost messages without flooding the broker (release gate item 1)."""

from __future__ import annotations

import time

import pytest

from tests.redis_server import private_redis
from textlayer.conversion import InProcessConverter
from textlayer.index import open_index
from textlayer.media.limits import DocumentLimits
from textlayer.queue.pipeline import Pipeline
from textlayer.queue.reconciler import Reconciler
from textlayer.store import BlobStore, SqliteJobStore

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    from textlayer.queue.app import configure

    redis = private_redis(tmp_path_factory)
    configure(redis.celery_url)
    yield redis
    redis.stop()


@pytest.fixture
def pipeline(tmp_path):
    return Pipeline(
        jobs=SqliteJobStore(tmp_path / "jobs.db"),
        blobs=BlobStore(tmp_path / "blobs"),
        index=open_index(tmp_path / "index.db"),
        reader=None,  # type: ignore[arg-type]  # nothing is read: no worker runs in these tests
        converter=InProcessConverter(DocumentLimits()),
    )


def _queued_long_ago(pipeline: Pipeline, count: int) -> list[str]:
    an_hour_ago = time.time() - 3600
    return [
        pipeline.jobs.create("t", filename=f"{i}.png", size_bytes=1, sha256=f"{i:064d}", now=an_hour_ago).id
        for i in range(count)
    ]


def test_queue_depth_counts_the_messages_waiting_in_redis(broker):
    from textlayer.queue.broker import queue_depth
    from textlayer.queue.tasks import publish

    broker_client = __import__("redis").Redis.from_url(broker.redis_url)
    broker_client.flushdb()
    for job_id in ("a", "b", "c"):
        publish(job_id)
    assert queue_depth() == 3
    broker_client.flushdb()
    assert queue_depth() == 0


def test_queued_jobs_behind_a_backlog_are_not_published_again(pipeline):
    _queued_long_ago(pipeline, 5)
    published: list[str] = []
    reconciler = Reconciler(pipeline, published.append, period_s=10, queued_grace_s=60, queue_depth=lambda: 5)
    for second in range(0, 600, 10):
        reconciler.once(now=second)
    assert published == []


def test_lost_messages_are_published_again_with_backoff_not_every_round(pipeline):
    jobs = _queued_long_ago(pipeline, 5)
    published: list[str] = []
    reconciler = Reconciler(pipeline, published.append, period_s=10, queued_grace_s=60)
    assert sorted(reconciler.once(now=0)) == sorted(jobs)  # the queue is empty: their messages are lost
    for second in range(10, 600, 10):
        reconciler.once(now=second)
    # A 10-minute outage: 5 jobs x (0, 20, 60, 140, 300 s) = 25 publishes, where publishing every round gave 270.
    assert len(published) == 25
    assert all(published.count(job_id) == 5 for job_id in jobs)


def test_a_job_that_is_no_longer_stuck_is_forgotten(pipeline):
    (job_id,) = _queued_long_ago(pipeline, 1)
    reconciler = Reconciler(pipeline, lambda _: None, period_s=10, queued_grace_s=60)
    assert reconciler.once(now=0) == [job_id]
    assert pipeline.jobs.claim(job_id, "w", lease_s=600, max_attempts=5) is not None
    assert reconciler.once(now=10) == []
    assert reconciler._published == {}
