"""`textlayer ocr` on bad input: one clear line, a non-zero exit, nothing written."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import pytest
from reportlab.pdfgen import canvas


def _pdf(encrypt=None) -> bytes:
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=(200, 100), encrypt=encrypt)
    c.rect(10, 10, 50, 50, fill=1)
    c.showPage()
    c.save()
    return out.getvalue()


def _png_bomb() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    )


BAD_INPUTS = {
    "empty.pdf": (b"", "The file is empty.", 2),
    "random.bin": (bytes(range(256)) * 64, "not a PDF, PNG, JPEG or TIFF", 2),
    "truncated.pdf": (_pdf()[:300], "The PDF is damaged", 2),
    "encrypted.pdf": (_pdf(encrypt="secret"), "password-protected; remove the password", 8),  # OCRmyPDF's 8
    "bomb.png": (_png_bomb(), "at most 50 Mpx per page", 2),
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "textlayer", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_one_clear_line(tmp_path, name):
    data, expected, status = BAD_INPUTS[name]
    source = tmp_path / name
    source.write_bytes(data)
    output = tmp_path / "out.txt"
    result = _run("ocr", str(source), "-o", str(output))
    assert result.returncode == status
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("textlayer: error: ") and expected in lines[0]
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_missing_file_and_bad_setting(tmp_path):
    result = _run("ocr", str(tmp_path / "nope.png"))
    assert result.returncode == 2 and "cannot read" in result.stderr  # OCRmyPDF: an input file error is 2
    env_result = subprocess.run(
        [sys.executable, "-m", "textlayer", "ocr", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        env={"TEXTLAYER_MAX_PIXELS": "lots", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert env_result.returncode == 1 and "TEXTLAYER_MAX_PIXELS='lots' is not a whole number" in env_result.stderr


def test_help_explains_the_commands():
    result = _run("ocr", "--help")
    assert result.returncode == 0
    for phrase in ("--format", "hocr", "--force-ocr", "--model", "exit status"):
        assert phrase in result.stdout


def test_models_command_verifies_every_file():
    result = _run("models")
    assert result.returncode == 0, result.stderr
    assert "all models verified" in result.stdout and "MISMATCH" not in result.stdout
