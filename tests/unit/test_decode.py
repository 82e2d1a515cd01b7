from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from textlayer.errors import InputDocumentError
from textlayer.media.images import decode_image


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size; the pixel data is tiny (a bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_png_jpeg_and_multipage_tiff_decode_to_arrays():
    gray = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (20, 1)))
    (png,) = decode_image(_encode(gray, "PNG", dpi=(300, 300)))
    assert png.image.shape == (20, 256) and png.image.dtype == np.uint8
    assert png.dpi == pytest.approx(300, abs=1)
    (jpeg,) = decode_image(_encode(gray.convert("RGB"), "JPEG"))
    assert jpeg.image.shape == (20, 256, 3)
    frames = [gray, gray.rotate(180), gray]
    tiff = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    assert [p.index for p in decode_image(tiff)] == [0, 1, 2]


def test_exif_orientation_is_applied():
    image = Image.new("L", (40, 10), 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    (page,) = decode_image(_encode(image, "JPEG", exif=exif.tobytes()))
    assert page.image.shape[:2] == (40, 10)


@pytest.mark.parametrize("mode", ["RGBA", "P", "CMYK", "I;16", "1"])
def test_unusual_modes_become_gray_or_bgr(mode):
    image = Image.new("RGB", (30, 20), (200, 100, 50)).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    (page,) = decode_image(_encode(image, fmt))
    assert page.image.dtype == np.uint8 and page.image.shape[:2] == (20, 30)


def test_pixel_bomb_is_refused_before_decoding():
    with pytest.raises(InputDocumentError, match="Mpx") as info:
        decode_image(_png_header_only(100_000, 100_000))
    assert info.value.reason == "image_too_large"
    with pytest.raises(InputDocumentError, match="Mpx"):
        decode_image(_png_header_only(8000, 8000), max_pixels=10_000_000)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_file"),
        (bytes(range(256)) * 20, "unsupported_type"),
        (b"GIF89a" + b"\0" * 100, "unsupported_type"),
    ],
)
def test_bad_bytes_give_a_reason(data, reason):
    with pytest.raises(InputDocumentError) as info:
        decode_image(data)
    assert info.value.reason == reason


def test_truncated_image_is_a_clear_error():
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8))
    data = _encode(noisy, "PNG")
    with pytest.raises(InputDocumentError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2])
