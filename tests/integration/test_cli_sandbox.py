"""`textlayer ocr` reads pages in the jail unless told otherwise; `textlayer sandbox check` reports the layers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.pages import make_page, page_to_png

pytestmark = [pytest.mark.sandbox, pytest.mark.onnx]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "textlayer", *args], capture_output=True, text=True, timeout=600, env=env
    )


def _layers_env() -> dict[str, str]:
    import os

    from tests.integration.test_sandbox import LAYERS

    return {**os.environ, "TEXTLAYER_SANDBOX_LAYERS": LAYERS}


def test_ocr_runs_in_a_verified_jail_by_default(tmp_path):
    page = make_page("receipt", dpi=150)
    source = tmp_path / "receipt.png"
    source.write_bytes(page_to_png(page))
    jailed = _run("-v", "ocr", str(source), env=_layers_env())
    assert jailed.returncode == 0, jailed.stderr
    assert "worker(s) verified" in jailed.stderr and "seccomp" in jailed.stderr
    plain = _run("ocr", str(source), "--no-sandbox")
    assert plain.returncode == 0
    assert "warning: --no-sandbox" in plain.stderr
    assert plain.stdout == jailed.stdout and "TOTAL" in jailed.stdout.upper()


def test_sandbox_check_prints_the_layers_in_force():
    result = _run("sandbox", "check", env=_layers_env())
    assert result.returncode == 0, result.stderr
    assert "verified from /proc" in result.stdout
    assert "seccomp" in result.stdout and "rlimits" in result.stdout


def test_bad_layer_setting_is_one_clear_line():
    import os

    result = _run("sandbox", "check", env={**os.environ, "TEXTLAYER_SANDBOX_LAYERS": "sometimes"})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "textlayer: error: bad setting: TEXTLAYER_SANDBOX_LAYERS='sometimes' must be one of require, prefer"
    )
