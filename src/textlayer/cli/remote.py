"""``submit``, ``status``, ``get`` and ``search`` over the HTTP API (``--api URL`` / ``TEXTLAYER_API_URL``).

A small client on the standard library (urllib): the upload streams the file from disk, downloads stream to a temp
file. The tenant is the token's (``TEXTLAYER_TOKEN``); ``--tenant`` does not apply.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

from textlayer.config import Settings
from textlayer.errors import InputDocumentError, TextlayerError

DOCUMENT_REFUSALS = frozenset({"empty_file", "unsupported_type", "file_too_large"})
"""Error codes that mean "this document cannot be used" (exit status 2, like a local refusal)."""

TIMEOUT_S = 60.0
"""Per request (an upload's body streams within it; a slow link needs a larger one)."""


class ApiClient:
    """Calls the textlayer HTTP API with a bearer token."""

    def __init__(self, base_url: str, token: str | None) -> None:
        """Talk to ``base_url`` (``http://host:8080``) with ``token``."""
        if not token:
            raise TextlayerError("the API needs a token: set TEXTLAYER_TOKEN (textlayer tokens create)")
        self.base_url = base_url.rstrip("/")
        self.token = token
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TextlayerError(f"--api wants http(s)://HOST:PORT, got {base_url!r}")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"textlayer: warning: the token goes to {parts.hostname} in plain text; use https:// there",
                file=sys.stderr,
            )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: BinaryIO | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One call; returns the open response (the caller reads and closes it).

        Raises:
            InputDocumentError: The API refused the document (its code is the reason).
            TextlayerError: Any other error answer, or the API cannot be reached.
        """
        query = ("?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})) if params else ""
        request = urllib.request.Request(
            self.base_url + path + query,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
        )
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 (the user's own API URL)
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", f"HTTP {exc.code}"
            finally:
                exc.close()
            if code in DOCUMENT_REFUSALS:
                raise InputDocumentError(message, reason=code) from None
            raise TextlayerError(f"{message} ({code})", reason=code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise TextlayerError(f"cannot reach the API at {self.base_url}: {exc}", reason="api_unreachable") from exc

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call whose answer is JSON."""
        with self.request(method, path, **kwargs) as response:
            return json.loads(response.read())

    def upload(self, path: Path) -> dict[str, Any]:
        """Upload a file (streamed from disk); returns its job."""
        try:
            file = path.open("rb")
        except OSError as exc:
            raise TextlayerError(f"cannot read {path}: {exc.strerror}") from exc
        with file:
            size = path.stat().st_size
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            job: dict[str, Any] = self.json(
                "POST", "/v1/documents", params={"filename": path.name}, body=file, headers=headers
            )
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's state."""
        job: dict[str, Any] = self.json("GET", f"/v1/jobs/{urllib.parse.quote(job_id, safe='')}")
        return job

    def download(self, job_id: str, kind: str, target: Path) -> None:
        """Stream a result (``pdf``, ``text``, ``json``, ``hocr``) into ``target`` (written whole or not at all)."""
        from textlayer.files import fsync_dir

        partial = target.with_name(f".{target.name}.part")
        path = f"/v1/jobs/{urllib.parse.quote(job_id, safe='')}/{kind}"
        with self.request("GET", path) as response, partial.open("wb") as file:
            shutil.copyfileobj(response, file, 1024 * 1024)
        partial.replace(target)
        fsync_dir(target.parent.resolve())

    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        """The hits of a search."""
        result: dict[str, Any] = self.json("GET", "/v1/search", params={"q": query, "limit": limit})
        return list(result["hits"])


def _client(settings: Settings) -> ApiClient:
    assert settings.api_url is not None
    return ApiClient(settings.api_url, settings.token)


def submit(settings: Settings, args: argparse.Namespace) -> int:
    """``textlayer submit --api``: upload each file, print its job id; with ``--wait``, follow them to the end."""
    client = _client(settings)
    jobs = []
    for path in args.files:
        job = client.upload(path)
        jobs.append((job["id"], path))
        print(f"{job['id']}  {path}", flush=True)
    if not args.wait:
        return 0
    failed = 0
    for job_id, path in jobs:
        while (job := client.job(job_id))["state"] not in ("SUCCEEDED", "SUCCEEDED_WITH_ERRORS", "FAILED"):
            time.sleep(0.5)
        if job["state"] == "FAILED":
            failed += 1
            print(f"{path.name}: FAILED ({job['reason']}): {job['message']}")
        else:
            note = f" ({len(job['page_errors'])} page(s) without text)" if job["page_errors"] else ""
            print(f"{path.name}: {job['state']}{note} -> {settings.api_url.rstrip('/')}/v1/jobs/{job_id}/pdf")  # type: ignore[union-attr]
    return 2 if failed else 0


def status(settings: Settings, args: argparse.Namespace) -> int:
    """``textlayer status --api``."""
    job = _client(settings).job(args.job)
    total = job["pages_total"] if job["pages_total"] is not None else "?"
    print(f"job       {job['id']}\nfile      {job['filename']}\nstate     {job['state']}")
    print(f"pages     {job['pages_done']}/{total}\nattempts  {job['attempts']}")
    if job["reason"]:
        print(f"reason    {job['reason']}: {job['message']}")
    for error in job["page_errors"]:
        print(f"page {error['page'] + 1}: {error['reason']}: {error['message']}")
    return 0 if job["state"] != "FAILED" else 2


def get(settings: Settings, args: argparse.Namespace) -> int:
    """``textlayer get --api``: the PDF (or ``--text``/``--json``) into this directory or ``-o``."""
    from textlayer.store.names import download_name

    client = _client(settings)
    kind, suffix = ("text", ".txt") if args.text else ("json", ".json") if args.json else ("pdf", ".pdf")
    job = client.job(args.job)
    output = args.output or Path(download_name(job["filename"], suffix=suffix))
    client.download(job["id"], kind, output)
    print(output)
    return 0


def search(settings: Settings, args: argparse.Namespace) -> int:
    """``textlayer search --api``."""
    hits = _client(settings).search(args.query, args.limit)
    for hit in hits:
        print(f"{hit['job_id']}  page {hit['page'] + 1}: {hit['snippet']}")
    if not hits:
        print("no match", file=sys.stderr)
    return 0 if hits else 1
