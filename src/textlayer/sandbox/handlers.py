"""What a jailed worker does with each request; this module runs inside the jail.

Imported by the worker after its namespaces are built and before lockdown, so everything it
needs later (numpy, OpenCV, onnxruntime, Pillow and their lazy parts) is loaded while files can
still be opened. The warm-up drives every path untrusted input can reach once, for the same
reason (design/SANDBOX.md R4).
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from PIL import Image

from textlayer.elements import PageText
from textlayer.errors import InputDocumentError
from textlayer.sandbox import probes
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.protocol import PREFIX, ProtocolViolation, encode
from textlayer.worker.decode import decode_image
from textlayer.worker.predictor import OcrPredictor

Reply = tuple[dict[str, Any], bytes]


class Handlers:
    """Request dispatch of one worker: ``ping`` always, ``ocr`` with a predictor, fault injection with test hooks."""

    def __init__(self, policy: SandboxPolicy, predictor: OcrPredictor | None, write: Callable[[bytes], None]) -> None:
        """Bind the loaded predictor (None: a converter); ``write`` sends raw bytes (fault injection only)."""
        self._policy = policy
        self._predictor = predictor
        self._write = write
        self._ops: dict[str, Callable[[dict[str, Any], bytes], Reply]] = {"ping": self._ping}
        if predictor is not None:
            self._ops["ocr"] = self._ocr
        if policy.test_hooks:
            self._ops.update(
                probe=self._probe, hang=self._hang, crash=self._crash, allocate=self._allocate, reply=self._bad_reply
            )

    memory_reason = "page_too_large"
    memory_message = "The page needs more memory than an OCR worker may use."

    def handle(self, header: dict[str, Any], payload: bytes) -> Reply:
        """Answer one request; failures become error replies, never exceptions."""
        op = self._ops.get(str(header.get("op")))
        if op is None:
            return {"ok": False, "error": "protocol", "message": f"unknown op {header.get('op')!r}"}, b""
        try:
            return op(header, payload)
        except InputDocumentError as exc:
            return {"ok": False, "error": "input", "reason": exc.reason, "message": exc.message}, b""
        except MemoryError:
            return {
                "ok": False,
                "error": "memory",
                "reason": self.memory_reason,
                "message": self.memory_message,
            }, b""
        except Exception as exc:  # a bug or a model failure: report it, the worker stays usable
            return {"ok": False, "error": "internal", "message": f"{type(exc).__name__}: {exc}"[:2000]}, b""

    def _ping(self, header: dict[str, Any], payload: bytes) -> Reply:
        return {"ok": True}, b""

    def _ocr(self, header: dict[str, Any], payload: bytes) -> Reply:
        assert self._predictor is not None
        frame = int(header.get("frame", 0))
        dpi = header.get("dpi")
        started = time.perf_counter()
        page = decode_image(payload, max_pixels=self._policy.max_pixels, frame=frame)[0]
        decode_s = time.perf_counter() - started
        result = self._predictor.recognize(page.image, dpi=float(dpi) if dpi else page.dpi)
        result.timings_s["decode"] = decode_s
        return {"ok": True}, json.dumps(result.to_dict(), separators=(",", ":")).encode()

    # -- fault injection (policy.test_hooks only) ---------------------------------------

    def _probe(self, header: dict[str, Any], payload: bytes) -> Reply:
        probe = probes.PROBES[str(header["name"])]
        return {"ok": True, "outcome": probe(str(header.get("scratch", "/nonexistent")), int(header["pid"]))}, b""

    def _hang(self, header: dict[str, Any], payload: bytes) -> Reply:
        deadline = time.monotonic() + float(header.get("seconds", 3600))
        while time.monotonic() < deadline:
            if header.get("spin"):
                continue
            time.sleep(0.05)
        return {"ok": True}, b""

    def _crash(self, header: dict[str, Any], payload: bytes) -> Reply:
        how = header.get("how", "abort")
        if how == "abort":
            os.abort()
        if how == "segv":
            ctypes.string_at(0)
        if how == "signal":
            os.kill(os.getpid(), int(header.get("signal", signal.SIGBUS)))
        os._exit(int(header.get("code", 3)))

    def _allocate(self, header: dict[str, Any], payload: bytes) -> Reply:
        block = np.ones(int(header["mib"]) * 1024 * 1024, dtype=np.uint8)
        return {"ok": True, "bytes": int(block.sum())}, b""

    def _bad_reply(self, header: dict[str, Any], payload: bytes) -> Reply:
        kind = header.get("kind")
        if kind == "oversized":
            self._write(PREFIX.pack(0x7FFFFFFF, 2) + b"{}")
        elif kind == "garbage":
            self._write(PREFIX.pack(6, 6) + b"\xff\xfe[1,2")
        elif kind == "bad_page":
            return {"ok": True}, b'{"width": "wide", "lines": 7}'
        return {"ok": True}, b""


def _sample_page(text_lines: tuple[str, ...], turn: int) -> np.ndarray:
    page = np.full((420, 900, 3), 255, np.uint8)
    for row, text in enumerate(text_lines):
        cv2.putText(page, text, (30, 90 + row * 110), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (20, 20, 20), 3, cv2.LINE_AA)
    return np.ascontiguousarray(np.rot90(page, k=-turn // 90)) if turn else page


def _encoded(image: np.ndarray | Image.Image, fmt: str, **options: Any) -> bytes:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def warm_up(handlers: Handlers) -> int:
    """Run every code path untrusted input reaches before the filter goes on; returns requests made.

    Raises:
        RuntimeError: a warm-up page did not read back (the models or the pipeline are broken).
    """
    lines = ("Invoice 2024 total", "Sandboxed OCR works")
    upright = _sample_page(lines, 0)
    rgb = upright[:, :, ::-1]
    gray = cv2.cvtColor(upright, cv2.COLOR_BGR2GRAY)
    ocr_inputs = [
        _encoded(rgb, "PNG"),
        _encoded(cv2.cvtColor(_sample_page(lines, 180), cv2.COLOR_BGR2GRAY), "JPEG", quality=90),
        _encoded(_sample_page(lines, 90)[:, :, ::-1], "TIFF", compression="tiff_lzw"),
    ]
    exif = Image.Exif()
    exif[0x0112] = 6
    bilevel = Image.fromarray(gray).convert("1")
    fax = io.BytesIO()
    bilevel.save(fax, format="TIFF", save_all=True, append_images=[bilevel], compression="group4")
    multipage = io.BytesIO()
    Image.fromarray(gray).save(multipage, format="TIFF", save_all=True, append_images=[Image.fromarray(rgb)])
    decode_inputs = [
        _encoded(gray, "PNG"),
        _encoded(Image.fromarray(rgb).convert("P"), "PNG"),
        _encoded(Image.fromarray(rgb).convert("RGBA"), "PNG"),
        _encoded(Image.fromarray(gray.astype(np.uint16) * 257), "PNG"),
        _encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        _encoded(rgb, "JPEG", exif=exif.tobytes()),
        _encoded(gray, "TIFF", compression="tiff_deflate"),
        _encoded(rgb, "TIFF", compression="jpeg"),
        fax.getvalue(),
        multipage.getvalue(),
    ]
    bad_inputs = [b"", b"\x89PNG\r\n\x1a\n" + os.urandom(64), ocr_inputs[0][: len(ocr_inputs[0]) // 2], b"\xff\xd8\xff"]
    requests = 0
    for data in ocr_inputs:
        header, payload = handlers.handle({"op": "ocr", "dpi": 150}, data)
        requests += 1
        text = PageText.from_dict(json.loads(payload)).text if header.get("ok") else ""
        if "Sandboxed" not in text and "OCR" not in text:
            raise RuntimeError(f"warm-up page did not read back: {header} {text!r}")
    for data in decode_inputs:
        for frame in (0, 1) if data in decode_inputs[-2:] else (0,):
            decode_image(data, frame=frame)
            requests += 1
    for data in bad_inputs:
        header, _ = handlers.handle({"op": "ocr"}, data)
        requests += 1
        if header.get("error") != "input":
            raise RuntimeError(f"warm-up: a corrupt image was not refused cleanly: {header}")
    handlers.handle({"op": "ocr", "frame": 5}, ocr_inputs[0])
    handlers.handle({"op": "nonexistent"}, b"")
    try:
        raise ProtocolViolation("warm-up")
    except ProtocolViolation as exc:
        encode({"error": str(exc)})
    return requests + 2
