"""The HTTP API's parts without a server: SSRF policy, signatures, backoff, tokens, limits, stores, ranking, sweep."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from textlayer.api.context import ApiContext
from textlayer.api.deliveries import MAX_BACKOFF_S, DeliveryStore, Dispatcher, next_attempt_at
from textlayer.api.errors import ApiError
from textlayer.api.limits import admit_upload
from textlayer.api.retention import sweep_expired, sweep_stale_uploads
from textlayer.api.tenants import LimitOverrides, Scope, TenantStore
from textlayer.api.webhooks import CallbackRefused, WebhookPolicy, sign, verify
from textlayer.config import Settings
from textlayer.elements import Line, PageText, Word
from textlayer.index import SqliteSearchIndex
from textlayer.store import BlobStore, JobNotFound, JobRunning, JobState, SqliteJobStore

# -- callback policy (SSRF) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.0.1/",
        "http://127.0.0.2/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://user:pw@127.0.0.1/",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "http:///nohost",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1/a b",
        "http://evil.example.com/",
    ],
)
def test_the_callback_policy_refuses_metadata_private_and_malformed_urls(url):
    policy = WebhookPolicy.parse("127.0.0.1/32, hooks.example.com, 169.254.0.0/16")
    with pytest.raises(CallbackRefused):
        policy.check(url)


def test_the_callback_policy_allows_what_the_list_names_and_nothing_by_default():
    policy = WebhookPolicy.parse("127.0.0.1/32,localhost,93.184.216.0/24")
    assert policy.check("http://127.0.0.1:8000/hook?x=1") == ("127.0.0.1", 8000, policy.check("http://127.0.0.1/")[2])
    assert str(policy.check("http://localhost/hook")[2]) == "127.0.0.1"
    assert policy.check("https://93.184.216.34/x")[1] == 443
    with pytest.raises(CallbackRefused, match="not enabled"):
        WebhookPolicy.parse(None).check("http://127.0.0.1/")
    with pytest.raises(CallbackRefused):  # a name that resolves to loopback, but only names are listed
        WebhookPolicy.parse("localhost").check("http://localhost/")
    with pytest.raises(ValueError):
        WebhookPolicy.parse("not a host!")


# -- Standard Webhooks signatures --------------------------------------------------------------------


def test_signatures_match_the_standard_webhooks_test_vector():
    # From the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_checks_the_body_the_id_and_the_timestamp():
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    now = time.time()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now))}
    headers["webhook-signature"] = "v0,bogus " + sign(secret, "msg_1", int(now), b"{}")
    assert verify(secret, headers, b"{}", now=now)
    assert not verify(secret, headers, b"{ }", now=now)
    assert not verify(secret, {**headers, "webhook-id": "msg_2"}, b"{}", now=now)
    assert not verify(secret, headers, b"{}", now=now + 301)  # a replay from long ago


# -- retries ---------------------------------------------------------------------------------------


def test_retries_back_off_exponentially_and_go_on_for_at_least_a_day():
    first = now = 1_000_000.0
    times = [now]
    attempts = 1
    while (at := next_attempt_at(attempts=attempts, first_at=first, now=now, backoff_s=5, retry_s=86400)) is not None:
        times.append(at)
        now, attempts = at, attempts + 1
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[:4] == [5, 10, 20, 40] and max(gaps) <= MAX_BACKOFF_S
    assert times[-1] - first == 86400  # the last attempt comes at the end of the 24 hours
    assert len(times) < 25


# -- tenants and tokens ------------------------------------------------------------------------------


def test_tokens_are_stored_as_hashes_and_checked_by_tenant_and_scope(tmp_path):
    with TenantStore(tmp_path / "tenants.db") as store:
        writer, reader = store.create_token("acme"), store.create_token("acme", Scope.READ)
        other = store.create_token("globex")
        principal = store.authenticate(writer)
        assert principal is not None and (principal.tenant, principal.can_write) == ("acme", True)
        assert store.authenticate(reader).scope == Scope.READ  # type: ignore[union-attr]
        assert store.authenticate(other).tenant == "globex"  # type: ignore[union-attr]
        for bad in ("", "tl_", writer + "x", writer.replace("tl_", "xx_"), "tl_" + "0" * 12 + "_abc"):
            assert store.authenticate(bad) is None
        assert store.revoke(writer.split("_")[1]) and not store.revoke(writer.split("_")[1])
        assert store.authenticate(writer) is None
        assert store.webhook_secret(
            "acme",
        ).startswith("whsec_")  # type: ignore[union-attr]
        with pytest.raises(ValueError):
            store.create_token("../etc")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("tenants.db*"))
    for token in (writer, reader, other):
        assert token.split("_", 2)[2].encode() not in raw


def test_the_upload_rate_is_a_sliding_minute(tmp_path):
    with TenantStore(tmp_path / "tenants.db") as store:
        assert [store.take_upload_slot("acme", 2, now=t) for t in (0.0, 10.0)] == [None, None]
        assert store.take_upload_slot("acme", 2, now=20.0) == pytest.approx(40.0)
        assert store.take_upload_slot("globex", 2, now=20.0) is None
        assert store.take_upload_slot("acme", 2, now=60.5) is None


# -- stores and limits -------------------------------------------------------------------------------


def _finished_job(jobs: SqliteJobStore, tenant: str, *, pages: int = 1, now: float | None = None) -> str:
    job = jobs.create(tenant, filename="a.png", size_bytes=1000, sha256="0" * 64, now=now)
    jobs.claim(job.id, "w", lease_s=60, max_attempts=5, now=now)
    jobs.set_pages_total(job.id, "w", pages)
    jobs.finish(job.id, "w", JobState.SUCCEEDED, now=now)
    return job.id


def test_pages_per_day_and_stored_bytes_are_limited_with_retry_after(tmp_path):
    settings = Settings(data_dir=tmp_path, pages_per_day=3, max_stored_mib=1)
    with SqliteJobStore(tmp_path / "jobs.db") as jobs, TenantStore(tmp_path / "tenants.db") as tenants:
        tenants.create_token("acme")
        _finished_job(jobs, "acme", pages=3, now=1000.0)
        with pytest.raises(ApiError) as refused:
            admit_upload(settings, tenants, jobs, "acme", 10, now=1000.0 + 3600)
        assert refused.value.status == 429 and refused.value.reason == "quota_exceeded"
        assert refused.value.headers["Retry-After"] == str(86400 - 3600)
        assert admit_upload(settings, tenants, jobs, "acme", 10, now=1000.0 + 86401).room_bytes == 2**20 - 1000
        with pytest.raises(ApiError, match="1 MiB"):
            admit_upload(settings, tenants, jobs, "acme", 2**20, now=1000.0 + 86401)
        tenants.set_limits("acme", LimitOverrides(max_stored_mib=2))
        assert admit_upload(settings, tenants, jobs, "acme", 2**20, now=1000.0 + 86401).max_stored_mib == 2


def test_job_pages_deletion_and_the_live_lease_rule(tmp_path):
    with SqliteJobStore(tmp_path / "jobs.db") as jobs:
        ids = [jobs.create("acme", filename="a", size_bytes=1, sha256="x", now=float(t)).id for t in range(5)]
        jobs.create("globex", filename="a", size_bytes=1, sha256="x", now=2.5)
        first = jobs.page("acme", limit=2)
        second = jobs.page("acme", limit=2, after=(first[-1].created_at, first[-1].id))
        assert [j.id for j in first + second] == ids[::-1][:4]
        with pytest.raises(JobNotFound):
            jobs.delete(ids[0], "globex")
        jobs.claim(ids[0], "w", lease_s=60, max_attempts=5)
        with pytest.raises(JobRunning):
            jobs.delete(ids[0], "acme")
        assert jobs.delete(ids[1], "acme").id == ids[1]
        assert jobs.claim(ids[1], "w", lease_s=60, max_attempts=5) is None  # a deleted job cannot be claimed
        assert jobs.usage("acme", since=0).jobs == 4
        assert jobs.state_counts()[JobState.RUNNING] == 1


def _page(*words: str) -> PageText:
    quad = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))
    line = Line(words=tuple(Word(w, quad, 0.9) for w in words), quad=quad, confidence=0.9)
    return PageText(width=100, height=100, rotation=0, lines=(line,))


def test_a_tenants_ranking_does_not_depend_on_another_tenants_documents(tmp_path):
    with SqliteSearchIndex(tmp_path / "index.db") as index:
        index.put_document("acme", "d1", [_page("invoice", "total", "total", "due")])
        index.put_document("acme", "d2", [_page("invoice", "paid", "total")])
        index.put_document("acme", "d3", [_page("invoice", *["filler"] * 30, "total")])
        before = index.search("acme", "invoice total")
        for n in range(40):
            index.put_document("globex", f"g{n}", [_page("total", *["word"] * n)])
        after = index.search("acme", "invoice total")
        assert [(h.document_id, h.rank) for h in after] == [(h.document_id, h.rank) for h in before]
        assert [h.document_id for h in before] == ["d1", "d2", "d3"]
        assert [h.document_id for h in index.search("acme", "invoice total", limit=1, offset=1)] == ["d2"]


# -- retention and deliveries ------------------------------------------------------------------------


def _context(tmp_path, **settings) -> ApiContext:
    return ApiContext(
        settings=Settings(data_dir=tmp_path, **settings),
        jobs=SqliteJobStore(tmp_path / "jobs.db"),
        blobs=BlobStore(tmp_path / "blobs"),
        index=SqliteSearchIndex(tmp_path / "index.db"),
        tenants=TenantStore(tmp_path / "tenants.db"),
        deliveries=DeliveryStore(tmp_path / "webhooks.db"),
        policy=WebhookPolicy.parse("127.0.0.1/32"),
        publish=lambda job_id: None,
    )


def test_the_retention_sweep_deletes_old_finished_jobs_with_everything_they_stored(tmp_path):
    context = _context(tmp_path, retention_days=2)
    old = _finished_job(context.jobs, "acme", now=time.time() - 3 * 86400)
    new = _finished_job(context.jobs, "acme")
    for job_id in (old, new):
        context.blobs.put("acme", job_id, "output.pdf", b"%PDF-")
        context.index.put_document("acme", job_id, [_page("kept")])
    assert sweep_expired(context) == 1
    assert context.jobs.page("acme") == [context.jobs.get(new)]
    assert not context.blobs.exists("acme", old, "output.pdf") and context.index.page_count("acme", old) == 0
    assert context.blobs.exists("acme", new, "output.pdf") and context.index.page_count("acme", new) == 1
    context.close()
    kept = _context(tmp_path)  # no TEXTLAYER_RETENTION_DAYS: nothing is ever swept
    assert sweep_expired(kept, now=time.time() + 10 * 365 * 86400) == 0
    kept.close()


def test_stale_upload_parts_are_swept_and_live_ones_kept(tmp_path):
    stale, live = tmp_path / ".a.part", tmp_path / ".b.part"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    now = time.time()
    import os

    os.utime(stale, (now - 1000, now - 1000))
    assert sweep_stale_uploads(tmp_path, older_than_s=600, now=now) == 1
    assert live.exists() and not stale.exists()


def test_deliveries_of_deleted_jobs_are_cancelled_and_refused_urls_not_retried(tmp_path):
    context = _context(tmp_path)
    context.tenants.create_token("acme")
    gone = context.jobs.create("acme", filename="a", size_bytes=1, sha256="x")
    context.deliveries.add("acme", gone.id, "http://127.0.0.1:9/hook")
    context.jobs.delete(gone.id, "acme")
    refused = _finished_job(context.jobs, "acme")
    context.deliveries.add("acme", refused, "http://10.0.0.1/hook")  # allowed once, refused now
    dispatcher = Dispatcher(context.deliveries, context.jobs, context.tenants, context.policy, backoff_s=1, retry_s=60)
    dispatcher.round()
    assert context.deliveries.for_job("acme", gone.id) == []
    (delivery,) = context.deliveries.for_job("acme", refused)
    assert delivery.state == "refused" and delivery.history[0].status_code is None
    assert "not allowed" in (delivery.history[0].error or "")
    assert context.deliveries.state_counts()["refused"] == 1
    context.close()


# -- the process -------------------------------------------------------------------------------------


def test_the_api_process_never_imports_a_document_parser():
    code = (
        "import sys, textlayer.api.app, textlayer.api.context, textlayer.cli.api, textlayer.cli.remote\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pypdf', 'pypdfium2', 'PIL', 'cv2', 'reportlab', 'numpy', 'onnxruntime')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_new_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {"TEXTLAYER_RETENTION_DAYS": "30", "TEXTLAYER_WEBHOOK_ALLOW": "*", "TEXTLAYER_API_URL": "http://h:1"}
    )
    assert (settings.retention_days, settings.webhook_allow, settings.api_url) == (30, "*", "http://h:1")
    assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(ValueError, match="TEXTLAYER_RETENTION_DAYS"):
        Settings.from_env({"TEXTLAYER_RETENTION_DAYS": "soon"})


def test_the_api_refuses_plaintext_on_a_reachable_address():
    from textlayer.api.app import check_listen, parse_listen
    from textlayer.errors import TextlayerError

    for local in ("127.0.0.1", "localhost", "::1"):
        check_listen(local, tls=False, allow_plaintext=False)
    with pytest.raises(TextlayerError, match="plaintext") as refused:
        check_listen("0.0.0.0", tls=False, allow_plaintext=False)
    assert refused.value.reason == "insecure_listen"
    check_listen("0.0.0.0", tls=True, allow_plaintext=False)
    check_listen("10.0.0.5", tls=False, allow_plaintext=True)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    with pytest.raises(ValueError):
        parse_listen("8080")
