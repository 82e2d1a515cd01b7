"""`textlayer up` and `textlayer demo`: the whole stack from one command, on the embedded defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_sandbox import LAYERS
from tests.pages import make_page, page_to_png
from tests.redis_server import free_tcp_port

pytestmark = [pytest.mark.redis, pytest.mark.sandbox, pytest.mark.onnx, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TEXTLAYER_OCR_SERVERS")}
    return {
        **env,
        "TEXTLAYER_DATA_DIR": str(data_dir),
        "TEXTLAYER_SANDBOX_LAYERS": LAYERS,
        "TEXTLAYER_API_LISTEN": f"127.0.0.1:{free_tcp_port()}",
    }


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_demo_runs_the_main_job_on_the_embedded_defaults(tmp_path):
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "textlayer", "demo", str(REPO / "samples" / "two-column-scan.jpg")],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "SUCCEEDED ->" in result.stdout and 'search "' in result.stdout and "page 1" in result.stdout
    output = Path(result.stdout.split("SUCCEEDED -> ")[1].split()[0])
    assert output.is_file() and output.is_relative_to(data_dir)
    assert (data_dir / "logs" / "worker.log").exists() and (data_dir / "redis" / "appendonly.aof").exists()


def test_up_serves_submissions_and_stops_everything_on_sigterm(tmp_path):
    data_dir = tmp_path / "data"
    env = _env(data_dir)
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen([sys.executable, "-m", "textlayer", "up"], env=env, stderr=log, stdout=log)
    log.close()
    try:
        deadline = time.monotonic() + 300
        while "textlayer is up" not in (tmp_path / "up.log").read_text():
            assert up.poll() is None and time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.2)
        api_url = (tmp_path / "up.log").read_text().split("API at ")[1].split()[0]
        assert api_url == "http://" + env["TEXTLAYER_API_LISTEN"]
        with urllib.request.urlopen(f"{api_url}/healthz", timeout=10) as health:
            assert json.load(health) == {"status": "ok"}
        scan = tmp_path / "receipt.png"
        scan.write_bytes(page_to_png(make_page("receipt", dpi=100)))
        submitted = subprocess.run(
            [sys.executable, "-m", "textlayer", "submit", str(scan), "--wait"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert submitted.returncode == 0 and "SUCCEEDED" in submitted.stdout, submitted.stderr
        children = _descendants(up.pid)
        assert len(children) >= 4  # redis-server, ocr-server (+ jailed workers), Celery worker (+ pool), API
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, (tmp_path / "up.log").read_text()
    deadline = time.monotonic() + 10  # a process killed by its parent-death signal may take a moment to go
    while [pid for pid in children if Path(f"/proc/{pid}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {pid: _state(pid) for pid in children if Path(f"/proc/{pid}").exists()}
    assert not left, left
    stopped = subprocess.run(
        [sys.executable, "-m", "textlayer", "status", "0" * 32], env=env, capture_output=True, text=True, timeout=60
    )
    assert stopped.returncode != 0


def _state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:200].decode(errors="replace")
    except OSError:
        return "gone"
    return " ".join(line for line in status if line.startswith(("Name", "State", "PPid"))) + " " + cmdline
