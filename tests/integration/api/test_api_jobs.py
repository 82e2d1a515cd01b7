"""Jobs through the HTTP API: status, downloads, search with word boxes, deletion, listing, webhooks, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import xmlschema

from tests.api_stack import ApiStack, job_ids_in, payload
from tests.pages import make_page, page_to_png
from textlayer.api.webhooks import verify

pytestmark = [pytest.mark.redis, pytest.mark.sandbox, pytest.mark.onnx, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
CORRUPT_PDF = b"%PDF-1.7\n" + b"\0" * 4096
RECEIPT = make_page("receipt", dpi=100)
TABLE = make_page("table", dpi=100)


@pytest.fixture(scope="module")
def done(stack: ApiStack, receiver):
    """Tenant "acme" with a receipt and a table, OCRed, each with a callback."""
    token = stack.token("acme")
    with stack.client(token) as client:
        jobs = {}
        for name, page in (("receipt.png", RECEIPT), ("table.png", TABLE)):
            response = client.post(
                "/v1/documents",
                params={"filename": name, "callback_url": f"{receiver.url}/acme/{name}"},
                content=page_to_png(page),
            )
            assert response.status_code == 202, response.text
            jobs[name] = response.json()["id"]
        finished = stack.wait_jobs(client, list(jobs.values()))
    assert {job["state"] for job in finished.values()} == {"SUCCEEDED"}, finished
    return token, jobs


def _overlap(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def test_a_job_reports_its_state_pages_and_timings(stack, done):
    token, jobs = done
    with stack.client(token) as client:
        job = client.get(f"/v1/jobs/{jobs['receipt.png']}").json()
    assert job["state"] == "SUCCEEDED" and job["filename"] == "receipt.png"
    assert job["pages_total"] == job["pages_done"] == 1 and job["page_errors"] == [] and job["reason"] is None
    timings = job["timings"]
    assert timings["finished_at"] >= timings["created_at"] and timings["duration_s"] > 0


def test_results_download_with_safe_headers(stack, done):
    token, jobs = done
    job_id = jobs["receipt.png"]
    with stack.client(token) as client:
        pdf = client.get(f"/v1/jobs/{job_id}/pdf")
        text = client.get(f"/v1/jobs/{job_id}/text")
        record = client.get(f"/v1/jobs/{job_id}/json")
        hocr = client.get(f"/v1/jobs/{job_id}/hocr")
        alto = client.get(f"/v1/jobs/{job_id}/alto")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith('attachment; filename="receipt.pdf"')
    assert pdf.headers["x-content-type-options"] == "nosniff" and pdf.headers["content-security-policy"] == "sandbox"
    assert RECEIPT.words[0].text in text.text and text.headers["content-disposition"].startswith("attachment")
    # The one result JSON of every path (CLI, job results, API), and ALTO 4 against the official schema.
    jsonschema.validate(record.json(), json.loads((ROOT / "schemas" / "result.schema.json").read_text()))
    assert record.json()["document"]["job"] == job_id and len(record.json()["pages"]) == 1
    assert "ocrx_word" in hocr.text and hocr.headers["content-disposition"].startswith("attachment")
    alto_dir = ROOT / "tests" / "resources" / "alto"
    schema = xmlschema.XMLSchema(
        str(alto_dir / "alto-4-4.xsd"),
        locations=[("http://www.w3.org/1999/xlink", str(alto_dir / "xlink.xsd"))],
        use_location_hints=False,
    )
    schema.validate(alto.text)
    assert alto.headers["content-disposition"].startswith('attachment; filename="receipt.xml"')


def test_search_returns_the_page_a_marked_snippet_and_each_matched_words_box(stack, done):
    token, jobs = done
    word = next(w for w in TABLE.words if len(w.text) >= 6 and w.text.isalpha())
    with stack.client(token) as client:
        result = client.get("/v1/search", params={"q": word.text.upper()}).json()
    (hit,) = [h for h in result["hits"] if h["job_id"] == jobs["table.png"]]
    assert hit["page"] == 0 and f"[{word.text}]".lower() in hit["snippet"].lower()
    assert (hit["page_width"], hit["page_height"]) == (TABLE.image.shape[1], TABLE.image.shape[0])
    truth = [w.box for w in TABLE.words if w.text.lower() == word.text.lower()]
    assert len(hit["boxes"]) == len(truth)
    for box in hit["boxes"]:
        assert max(_overlap(box, t) for t in truth) > 0.5, (box, truth)


def test_another_tenants_job_is_404_on_every_endpoint_and_its_text_is_never_found(stack, done):
    _, jobs = done
    job_id = jobs["receipt.png"]
    with stack.client(stack.token("intruder")) as intruder:
        missing = intruder.get(f"/v1/jobs/{'0' * 32}").json()["error"]
        for method, path in [
            ("GET", f"/v1/jobs/{job_id}"),
            ("GET", f"/v1/jobs/{job_id}/pdf"),
            ("GET", f"/v1/jobs/{job_id}/text"),
            ("GET", f"/v1/jobs/{job_id}/json"),
            ("GET", f"/v1/jobs/{job_id}/hocr"),
            ("GET", f"/v1/jobs/{job_id}/alto"),
            ("GET", f"/v1/jobs/{job_id}/deliveries"),
            ("DELETE", f"/v1/documents/{job_id}"),
        ]:
            response = intruder.request(method, path)
            assert response.status_code == 404, (method, path)
            assert response.json()["error"]["code"] == missing["code"]
        hits = intruder.get("/v1/search", params={"q": RECEIPT.words[0].text}).json()
        assert hits == {"hits": [], "next_cursor": None}
        assert intruder.get("/v1/jobs").json() == {"jobs": [], "next_cursor": None}


def test_jobs_are_listed_newest_first_a_page_at_a_time(stack, done):
    token, jobs = done
    with stack.client(token) as client:
        first = client.get("/v1/jobs", params={"limit": 1}).json()
        second = client.get("/v1/jobs", params={"limit": 1, "cursor": first["next_cursor"]}).json()
        assert [j["id"] for j in first["jobs"] + second["jobs"]] == [jobs["table.png"], jobs["receipt.png"]]
        assert second["next_cursor"] is None
        assert client.get("/v1/jobs", params={"state": "FAILED"}).json()["jobs"] == []
        bad = client.get("/v1/jobs", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"
        invalid = client.get("/v1/jobs", params={"limit": 0})
        assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_request"


def test_the_webhook_of_an_ended_job_is_signed_the_standard_webhooks_way(stack, done, receiver):
    token, jobs = done
    secret = stack.textlayer("tokens", "secret", "--tenant", "acme").stdout.strip()
    (call,) = receiver.wait_for("/acme/receipt.png", 1)
    assert verify(secret, call.headers, call.body)
    assert not verify(secret, call.headers, call.body + b" ")
    event = payload(call)
    assert event["type"] == "job.succeeded" and event["data"]["id"] == jobs["receipt.png"]
    assert call.headers["webhook-id"].startswith("msg_")
    with stack.client(token) as client:
        deadline = time.monotonic() + 10
        while (d := client.get(f"/v1/jobs/{jobs['receipt.png']}/deliveries").json()["deliveries"])[0]["state"] != (
            "delivered"
        ):
            assert time.monotonic() < deadline, d
            time.sleep(0.1)
    assert [a["status_code"] for a in d[0]["attempts"]] == [204] and d[0]["id"] == call.headers["webhook-id"]


def test_a_receiver_that_fails_three_times_gets_the_fourth(stack, receiver):
    token = stack.token("flaky")
    receiver.fail_first["/flaky"] = 3
    with stack.client(token) as client:
        job = client.post("/v1/documents", params={"callback_url": f"{receiver.url}/flaky"}, content=CORRUPT_PDF)
        calls = receiver.wait_for("/flaky", 4)
        deadline = time.monotonic() + 10
        while (d := client.get(f"/v1/jobs/{job.json()['id']}/deliveries").json()["deliveries"][0])["state"] != (
            "delivered"
        ):
            assert time.monotonic() < deadline, d
            time.sleep(0.1)
    secret = stack.textlayer("tokens", "secret", "--tenant", "flaky").stdout.strip()
    assert [c.answered for c in calls] == [500, 500, 500, 204]
    assert all(verify(secret, c.headers, c.body) for c in calls)
    assert len({c.headers["webhook-id"] for c in calls}) == 1 and payload(calls[0])["type"] == "job.failed"
    assert [a["status_code"] for a in d["attempts"]] == [500, 500, 500, 204]
    gaps = [b["at"] - a["at"] for a, b in zip(d["attempts"], d["attempts"][1:], strict=False)]
    assert gaps[0] >= 0.15 and gaps[2] >= gaps[0] * 1.5, gaps  # exponential backoff from 0.2 s


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.1/hook",
        "http://192.168.1.10/hook",
        "http://[fe80::1]/hook",
        "http://user:secret@127.0.0.1/hook",
        "ftp://127.0.0.1/hook",
        "http://metadata.google.internal/",
    ],
)
def test_a_callback_to_metadata_private_or_odd_urls_is_refused(stack, url):
    with stack.client(stack.token("ssrf")) as client:
        response = client.post("/v1/documents", params={"callback_url": url}, content=CORRUPT_PDF)
        assert response.status_code == 422 and response.json()["error"]["code"] == "callback_not_allowed", url
        assert client.get("/v1/jobs").json()["jobs"] == []


def test_delete_removes_blobs_index_rows_and_the_job(stack, done):
    token = stack.token("deleter")
    with stack.client(token) as client:
        job_id = client.post("/v1/documents", content=page_to_png(RECEIPT)).json()["id"]  # reuses acme's? no: own
        stack.wait_jobs(client, [job_id])
        word = RECEIPT.words[0].text
        assert job_id in job_ids_in(client.get("/v1/search", params={"q": word}).text)
        folder = stack.service.data_dir / "blobs" / "deleter" / job_id
        assert folder.is_dir()
        assert client.delete(f"/v1/documents/{job_id}").status_code == 204
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert client.get(f"/v1/jobs/{job_id}/pdf").status_code == 404
        assert job_id not in job_ids_in(client.get("/v1/search", params={"q": word}).text)
        assert client.delete(f"/v1/documents/{job_id}").status_code == 404
    assert not folder.exists()
    assert stack.service.pipeline.index.page_count("deleter", job_id) == 0


def test_the_cli_submits_follows_downloads_and_searches_through_the_api(stack, done, tmp_path):
    token = stack.token("cli")
    env = {"TEXTLAYER_TOKEN": token, "TEXTLAYER_API_URL": stack.url}
    scan = tmp_path / "receipt.png"
    scan.write_bytes(page_to_png(RECEIPT))
    submitted = stack.textlayer("submit", str(scan), "--wait", env=env)
    assert submitted.returncode == 0 and "SUCCEEDED" in submitted.stdout, submitted.stderr
    job_id = submitted.stdout.split()[0]
    status = stack.textlayer("status", job_id, env=env)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout and "1/1" in status.stdout
    output = tmp_path / "out.pdf"
    got = stack.textlayer("get", job_id, "-o", str(output), "--api", stack.url, env={"TEXTLAYER_TOKEN": token})
    assert got.returncode == 0 and output.read_bytes().startswith(b"%PDF-"), got.stderr
    found = stack.textlayer("search", RECEIPT.words[0].text, env=env)
    assert found.returncode == 0 and job_id in found.stdout
    refused = stack.textlayer("submit", str(tmp_path / "out.pdf.missing"), env=env)
    assert refused.returncode != 0
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    refused = stack.textlayer("submit", str(empty), env=env)
    assert refused.returncode == 2 and "[empty_file]" in refused.stderr


def test_readyz_and_metrics_report_the_stack(stack, done):
    with stack.client(None) as client:
        assert client.get("/readyz").status_code == 401
        ready = client.get("/readyz", headers={"Authorization": f"Bearer {done[0]}"})
        metrics = client.get("/metrics").text
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": dict.fromkeys(("redis", "job_store", "index", "ocr"), True)}
    for needle in (
        'textlayer_api_requests_total{method="GET",route="/v1/jobs/{job_id}",status="200"}',
        "textlayer_api_upload_bytes_total",
        'textlayer_jobs{state="SUCCEEDED"}',
        "textlayer_queue_depth",
        'textlayer_webhook_deliveries{state="delivered"}',
        'textlayer_webhook_attempts_total{outcome="delivered"}',
    ):
        assert needle in metrics, needle


def test_the_readme_python_client_works(stack, done, tmp_path):
    token, _ = done
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.splitlines()) <= 20
    code = code.replace('"http://127.0.0.1:8080", "tl_..."', f"{stack.url!r}, {token!r}")
    (tmp_path / "scan.pdf").write_bytes(page_to_png(RECEIPT))  # acme's receipt again: its result is reused
    (tmp_path / "client.py").write_text(code)
    ran = subprocess.run([sys.executable, "client.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout.startswith("SUCCEEDED"), ran.stderr
    assert (tmp_path / "scan.searchable.pdf").read_bytes().startswith(b"%PDF-")


def test_the_interactive_docs_work_offline(stack):
    """Swagger UI comes from the swagger-ui-bundle wheel, served by the API itself: no CDN is reachable here."""
    with stack.client(None) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text.lower() and "http://" not in page.text and "https://" not in page.text
        script = client.get("/docs/assets/swagger-ui-bundle.js")
        assert script.status_code == 200 and len(script.content) > 100_000
        assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
