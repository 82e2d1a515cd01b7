"""The SQLite job store: lifecycle, leases, attempts, idempotency, tenants and concurrent claims."""

from __future__ import annotations

import multiprocessing
import queue
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from textlayer.errors import TextlayerError
from textlayer.store import (
    TOO_MANY_ATTEMPTS,
    Job,
    JobNotFound,
    JobState,
    JobStore,
    JobStoreError,
    PageError,
    SqliteJobStore,
)

T0 = 1_700_000_000.0
"""A fixed clock for the tests: every time-dependent call passes ``now``."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteJobStore]:
    with SqliteJobStore(tmp_path / "jobs.db") as opened:
        yield opened


def _create(store: JobStore, tenant: str = "acme", **kwargs: Any) -> Job:
    kwargs.setdefault("filename", "scan.pdf")
    kwargs.setdefault("size_bytes", 1234)
    kwargs.setdefault("sha256", "ab" * 32)
    kwargs.setdefault("now", T0)
    return store.create(tenant, **kwargs)


def test_lifecycle_queued_running_succeeded(store: SqliteJobStore) -> None:
    job = _create(store, options={"lang": "en", "dpi": 300})
    assert job.state == JobState.QUEUED and not job.terminal
    assert len(job.id) == 32 and int(job.id, 16) >= 0
    assert (job.filename, job.size_bytes, job.sha256) == ("scan.pdf", 1234, "ab" * 32)
    assert (job.pages_total, job.pages_done, job.attempts) == (None, 0, 0)
    assert (job.lease_owner, job.lease_expires_at, job.reason, job.message) == (None, None, None, None)
    assert job.created_at == job.updated_at == T0
    assert job.options == {"lang": "en", "dpi": 300}
    assert store.get(job.id) == job

    running = store.claim(job.id, "w1", lease_s=30, max_attempts=3, now=T0 + 1)
    assert running is not None
    assert running.state == JobState.RUNNING
    assert (running.lease_owner, running.lease_expires_at, running.attempts) == ("w1", T0 + 31, 1)
    assert store.set_pages_total(job.id, "w1", 2)
    assert store.page_done(job.id, "w1", 0) == 1
    assert store.renew(job.id, "w1", lease_s=30, now=T0 + 20)
    assert store.get(job.id).lease_expires_at == T0 + 50
    assert store.page_done(job.id, "w1", 1) == 2

    errors = [PageError(page=1, reason="ocr_unavailable", message="No OCR server could read the page.")]
    assert store.finish(job.id, "w1", JobState.SUCCEEDED_WITH_ERRORS, page_errors=errors, now=T0 + 40)
    done = store.get(job.id, "acme")
    assert done.state == JobState.SUCCEEDED_WITH_ERRORS and done.terminal
    assert (done.pages_total, done.pages_done, done.attempts) == (2, 2, 1)
    assert (done.lease_owner, done.lease_expires_at) == (None, None)
    assert done.page_errors == tuple(errors)
    assert done.updated_at == T0 + 40
    # A terminal job is never claimed again, nor renewed, nor finished twice.
    assert store.claim(job.id, "w2", lease_s=30, max_attempts=3, now=T0 + 1000) is None
    assert not store.renew(job.id, "w1", lease_s=30)
    assert not store.finish(job.id, "w1", JobState.FAILED)


def test_plain_succeeded_and_failed_with_reason(store: SqliteJobStore) -> None:
    ok, bad = _create(store), _create(store)
    store.claim(ok.id, "w", lease_s=10, max_attempts=1, now=T0)
    store.claim(bad.id, "w", lease_s=10, max_attempts=1, now=T0)
    assert store.finish(ok.id, "w", JobState.SUCCEEDED)
    assert store.finish(bad.id, "w", JobState.FAILED, reason="encrypted_pdf", message="The PDF is encrypted.")
    assert store.get(ok.id).state == "SUCCEEDED"
    failed = store.get(bad.id)
    assert (failed.state, failed.reason, failed.message) == (JobState.FAILED, "encrypted_pdf", "The PDF is encrypted.")


def test_finish_needs_a_terminal_state(store: SqliteJobStore) -> None:
    job = _create(store)
    store.claim(job.id, "w", lease_s=10, max_attempts=1, now=T0)
    for state in (JobState.QUEUED, JobState.RUNNING):
        with pytest.raises(ValueError, match="terminal"):
            store.finish(job.id, "w", state)
    assert store.get(job.id).state == JobState.RUNNING


def test_idempotency_key_returns_the_existing_job(store: SqliteJobStore) -> None:
    first = _create(store, idempotency_key="upload-1")
    again = _create(store, idempotency_key="upload-1", now=T0 + 5)
    assert again == first
    assert _create(store, idempotency_key="upload-2").id != first.id
    assert _create(store, "other", idempotency_key="upload-1").id != first.id  # keys are per tenant
    assert _create(store).id != _create(store).id  # no key: every call is a new job
    # The existing job is returned whatever its state.
    store.fail(first.id, reason="file_too_large", message="Too large.")
    assert _create(store, idempotency_key="upload-1").state == JobState.FAILED
    assert len(store.list("acme")) == 4


def test_two_owners_claim_exactly_one_wins(store: SqliteJobStore) -> None:
    job = _create(store)
    first = store.claim(job.id, "a", lease_s=60, max_attempts=5, now=T0)
    second = store.claim(job.id, "b", lease_s=60, max_attempts=5, now=T0 + 1)
    assert first is not None and first.lease_owner == "a"
    assert second is None
    current = store.get(job.id)
    assert (current.lease_owner, current.attempts) == ("a", 1)
    # Only the holder may write.
    assert not store.renew(job.id, "b", lease_s=60)
    assert not store.set_pages_total(job.id, "b", 3)
    assert not store.finish(job.id, "b", JobState.SUCCEEDED)
    assert not store.requeue(job.id, "b")
    assert store.get(job.id).pages_total is None


def test_threads_claim_one_job_once(store: SqliteJobStore) -> None:
    job = _create(store)
    barrier = threading.Barrier(8)
    winners: list[str] = []
    failures: list[BaseException] = []

    def claim(owner: str) -> None:
        barrier.wait(timeout=10)
        try:
            if store.claim(job.id, owner, lease_s=60, max_attempts=5) is not None:
                winners.append(owner)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=claim, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert len(winners) == 1
    assert store.get(job.id).lease_owner == winners[0]


def test_expired_lease_lets_another_owner_claim_and_the_first_loses(store: SqliteJobStore) -> None:
    job = _create(store)
    assert store.claim(job.id, "a", lease_s=10, max_attempts=5, now=T0) is not None
    assert store.claim(job.id, "b", lease_s=10, max_attempts=5, now=T0 + 9.9) is None  # lease still live
    taken = store.claim(job.id, "b", lease_s=10, max_attempts=5, now=T0 + 10)
    assert taken is not None
    assert (taken.lease_owner, taken.attempts, taken.lease_expires_at) == ("b", 2, T0 + 20)
    assert not store.finish(job.id, "a", JobState.SUCCEEDED)
    assert not store.renew(job.id, "a", lease_s=10)
    assert store.get(job.id).state == JobState.RUNNING
    assert store.finish(job.id, "b", JobState.SUCCEEDED)
    assert store.get(job.id).state == JobState.SUCCEEDED


def test_a_lapsed_lease_nobody_took_is_still_held(store: SqliteJobStore) -> None:
    # Claims and finishes are compare-and-set on the owner: a slow worker whose lease lapsed
    # may still finish as long as no other claim took the job in between.
    job = _create(store)
    store.claim(job.id, "a", lease_s=10, max_attempts=5, now=T0)
    assert store.finish(job.id, "a", JobState.SUCCEEDED, now=T0 + 100)


def test_attempts_cap_fails_the_job(store: SqliteJobStore) -> None:
    job = _create(store)
    for attempt in range(3):
        claimed = store.claim(job.id, f"w{attempt}", lease_s=10, max_attempts=3, now=T0 + 100 * attempt)
        assert claimed is not None and claimed.attempts == attempt + 1
    # The third worker died too: its lease lapses, and a fourth claim would exceed the cap.
    assert store.claim(job.id, "w3", lease_s=10, max_attempts=3, now=T0 + 300) is None
    failed = store.get(job.id)
    assert failed.state == JobState.FAILED
    assert failed.reason == TOO_MANY_ATTEMPTS == "too_many_attempts"
    assert failed.message and "3 times" in failed.message
    assert (failed.attempts, failed.lease_owner, failed.lease_expires_at) == (3, None, None)
    assert not store.finish(job.id, "w2", JobState.SUCCEEDED)  # the last worker's lease is gone
    assert store.claim(job.id, "w4", lease_s=10, max_attempts=10, now=T0 + 400) is None


def test_requeue_gives_the_job_up_but_keeps_attempts_and_pages(store: SqliteJobStore) -> None:
    job = _create(store)
    store.claim(job.id, "a", lease_s=60, max_attempts=2, now=T0)
    store.set_pages_total(job.id, "a", 4)
    store.page_done(job.id, "a", 3)
    assert store.requeue(job.id, "a", now=T0 + 5)
    queued = store.get(job.id)
    assert (queued.state, queued.lease_owner, queued.lease_expires_at) == (JobState.QUEUED, None, None)
    assert (queued.attempts, queued.pages_done, queued.updated_at) == (1, 1, T0 + 5)
    assert not store.requeue(job.id, "a")  # no longer held
    again = store.claim(job.id, "b", lease_s=60, max_attempts=2, now=T0 + 6)
    assert again is not None and again.attempts == 2
    assert store.page_done(job.id, "b", 3) == 1  # done in the first attempt already
    assert store.requeue(job.id, "b", now=T0 + 7)
    assert store.claim(job.id, "c", lease_s=60, max_attempts=2, now=T0 + 8) is None
    assert store.get(job.id).reason == TOO_MANY_ATTEMPTS


def test_page_done_counts_each_page_once(store: SqliteJobStore) -> None:
    job = _create(store)
    store.claim(job.id, "w", lease_s=60, max_attempts=5, now=T0)
    assert store.page_done(job.id, "w", 0) == 1  # total not known yet: any page is accepted
    store.set_pages_total(job.id, "w", 3)
    assert store.page_done(job.id, "w", 0) == 1
    assert store.page_done(job.id, "w", 2) == 2
    assert store.page_done(job.id, "w", 2) == 2
    assert store.page_done(job.id, "intruder", 1) == 2  # not the holder: not recorded
    assert store.page_done(job.id, "w", 1) == 3
    with pytest.raises(ValueError):
        store.page_done(job.id, "w", 3)
    with pytest.raises(ValueError):
        store.page_done(job.id, "w", -1)
    assert store.get(job.id).pages_done == 3
    with pytest.raises(JobNotFound):
        store.page_done("0" * 32, "w", 0)


def test_stuck_finds_old_queued_and_lapsed_running_jobs(store: SqliteJobStore) -> None:
    old_queued = _create(store, now=T0)
    recent = _create(store, now=T0 + 95)
    lapsed = _create(store, now=T0)
    live = _create(store, now=T0)
    done = _create(store, now=T0)
    store.claim(lapsed.id, "dead", lease_s=10, max_attempts=5, now=T0 + 50)
    store.claim(live.id, "alive", lease_s=100, max_attempts=5, now=T0 + 50)
    store.claim(done.id, "w", lease_s=10, max_attempts=5, now=T0)
    store.finish(done.id, "w", JobState.SUCCEEDED, now=T0 + 1)

    stuck = store.stuck(queued_older_than_s=30, now=T0 + 100)
    assert [job.id for job in stuck] == [old_queued.id, lapsed.id]
    assert [job.id for job in store.stuck(queued_older_than_s=1, now=T0 + 100)] == [old_queued.id, lapsed.id, recent.id]
    assert store.stuck(queued_older_than_s=1000, now=T0 + 55) == []


def test_tenant_isolation_in_get_and_list(store: SqliteJobStore) -> None:
    mine = [_create(store, "acme", now=T0 + i) for i in range(3)]
    theirs = _create(store, "globex")
    with pytest.raises(JobNotFound) as caught:
        store.get(theirs.id, "acme")
    assert caught.value.reason == "job_not_found"
    assert isinstance(caught.value, TextlayerError)
    with pytest.raises(JobNotFound):
        store.get("f" * 32)
    assert store.get(theirs.id, "globex") == theirs
    assert [job.id for job in store.list("acme")] == [job.id for job in reversed(mine)]  # newest first
    assert [job.id for job in store.list("acme", limit=2)] == [mine[2].id, mine[1].id]
    assert store.list("acme", limit=0) == []
    assert store.list("globex") == [theirs]
    assert store.list("nobody") == []


def test_fail_is_unconditional_and_needs_an_existing_job(store: SqliteJobStore) -> None:
    job = _create(store)
    store.claim(job.id, "w", lease_s=60, max_attempts=5, now=T0)
    store.fail(job.id, reason="file_too_large", message="The file is 300 MiB; at most 256 MiB are accepted.")
    failed = store.get(job.id)
    assert (failed.state, failed.reason, failed.lease_owner) == (JobState.FAILED, "file_too_large", None)
    assert not store.finish(job.id, "w", JobState.SUCCEEDED)
    with pytest.raises(JobNotFound):
        store.fail("0" * 32, reason="x", message="x")


def test_claim_of_an_unknown_job_returns_none(store: SqliteJobStore) -> None:
    assert store.claim("0" * 32, "w", lease_s=10, max_attempts=1) is None


def test_bad_arguments_are_refused(store: SqliteJobStore) -> None:
    job = _create(store)
    with pytest.raises(ValueError):
        store.claim(job.id, "w", lease_s=0, max_attempts=1)
    with pytest.raises(ValueError):
        store.claim(job.id, "w", lease_s=10, max_attempts=0)
    with pytest.raises(ValueError):
        store.claim(job.id, "", lease_s=10, max_attempts=1)
    with pytest.raises(ValueError):
        _create(store, options={"bad": object()})
    with pytest.raises(ValueError):
        _create(store, "")
    assert store.get(job.id).state == JobState.QUEUED


def test_reopening_keeps_jobs_and_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with SqliteJobStore(path) as store:
        job = _create(store)
    with SqliteJobStore(path) as store:
        assert store.get(job.id) == job
    store_after_close = SqliteJobStore(path)
    store_after_close.close()
    with pytest.raises(JobStoreError):
        store_after_close.get(job.id)

    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    try:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(JobStoreError, match="not a textlayer job store"):
        SqliteJobStore(foreign)
    with pytest.raises(JobStoreError, match="folder does not exist"):
        SqliteJobStore(tmp_path / "missing" / "jobs.db")


def _claim_all(path: str, owner: str, job_ids: list[str], barrier: Any, results: Any) -> None:
    """Run in a spawned process: claim every job, report the wins and every error."""
    won: list[str] = []
    errors: list[str] = []
    try:
        with SqliteJobStore(Path(path)) as store:
            barrier.wait(timeout=30)
            for job_id in job_ids:
                try:
                    if store.claim(job_id, owner, lease_s=600, max_attempts=5) is not None:
                        won.append(job_id)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    results.put((owner, won, errors))


def test_four_processes_claim_each_job_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with SqliteJobStore(path) as store:
        job_ids = [_create(store).id for _ in range(20)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_claim_all, args=(str(path), f"proc{i}", job_ids, barrier, results)) for i in range(4)
    ]
    reports = []
    try:
        for process in processes:
            process.start()
        for _ in processes:
            reports.append(results.get(timeout=60))
    except queue.Empty:
        pytest.fail(f"a claiming process did not report; got {reports}")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
            process.close()
        results.close()
        results.join_thread()

    errors = [error for _, _, errs in reports for error in errs]
    assert errors == [], errors  # in particular no "database is locked"
    wins = [job_id for _, won, _ in reports for job_id in won]
    assert sorted(wins) == sorted(job_ids)  # every job claimed, none twice
    with SqliteJobStore(path) as store:
        owners = {owner for owner, won, _ in reports for _ in won}
        for job_id in job_ids:
            job = store.get(job_id)
            assert job.state == JobState.RUNNING and job.attempts == 1 and job.lease_owner in owners
