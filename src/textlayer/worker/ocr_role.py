"""Reading one encoded page image with the models: the OCR role of a jailed worker, or in-process.

Runs inside the jail, named by ``SandboxPolicy.role`` (see :mod:`textlayer.worker.jailed`),
except :class:`InProcessReader` (``--no-sandbox``). The jail imports it before
lockdown, loads the model sessions and drives every path an input can reach (warm-up), so nothing
needs to be opened once the seccomp filter is on.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from PIL import Image

from textlayer.elements import PageText
from textlayer.media.images import decode_image
from textlayer.sandbox.handlers import Handlers, Reply
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.protocol import ProtocolViolation, encode
from textlayer.worker.predictor import OcrPredictor


class OcrHandlers(Handlers):
    """Adds ``ocr``: one encoded page image in, its PageText (JSON) out."""

    memory_reason = "page_too_large"
    memory_message = "The page needs more memory than an OCR worker may use."

    def __init__(self, policy: SandboxPolicy, predictor: OcrPredictor, write: Callable[[bytes], None]) -> None:
        """Bind the loaded predictor; the page pixel limit comes from ``policy.role_options``."""
        super().__init__(policy, write)
        self._predictor = predictor
        self._max_pixels = int(policy.role_options.get("max_pixels", 50_000_000))
        self._ops["ocr"] = self._ocr

    def _ocr(self, header: dict[str, Any], payload: bytes) -> Reply:
        dpi = header.get("dpi")
        result = read_image(
            self._predictor,
            payload,
            dpi=float(dpi) if dpi else None,
            frame=int(header.get("frame", 0)),
            max_pixels=self._max_pixels,
        )
        return {"ok": True}, json.dumps(result.to_dict(), separators=(",", ":")).encode()


def read_image(
    predictor: OcrPredictor, data: bytes, *, dpi: float | None, frame: int = 0, max_pixels: int = 50_000_000
) -> PageText:
    """Decode one encoded page image and read it; the decode time joins the result's timings."""
    started = time.perf_counter()
    page = decode_image(data, max_pixels=max_pixels, frame=frame)[0]
    decode_s = time.perf_counter() - started
    result = predictor.recognize(page.image, dpi=dpi or page.dpi)
    result.timings_s["decode"] = decode_s
    return result


class InProcessReader:
    """Reads pages in this process, outside any jail: only for ``textlayer ocr --no-sandbox`` on trusted files."""

    def __init__(self, predictor: OcrPredictor, *, max_pixels: int) -> None:
        """Use the loaded ``predictor``; larger pages than ``max_pixels`` are refused before decoding."""
        self._predictor = predictor
        self._max_pixels = max_pixels

    def recognize(self, image: bytes, *, dpi: float | None = None, frame: int = 0) -> PageText:
        """See :class:`textlayer.ocr.PageReader`."""
        return read_image(self._predictor, image, dpi=dpi, frame=frame, max_pixels=self._max_pixels)


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


def warm_up(handlers: OcrHandlers) -> int:
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


def start(policy: SandboxPolicy, write: Callable[[bytes], None], timings: dict[str, float]) -> OcrHandlers:
    """Load the models named by ``policy.role_options["model"]`` and warm every path up (before lockdown)."""
    cv2.setNumThreads(policy.threads)
    mark = time.monotonic()
    predictor = OcrPredictor.load(str(policy.role_options.get("model", "small")), threads=policy.threads)
    timings["models"] = time.monotonic() - mark
    mark = time.monotonic()
    handlers = OcrHandlers(policy, predictor, write)
    warm_up(handlers)
    timings["warm_up"] = time.monotonic() - mark
    return handlers
