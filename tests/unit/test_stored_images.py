from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from textlayer.errors import InputDocumentError
from textlayer.media.images import stored_images


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def test_jpeg_is_kept_as_bytes_with_its_exif_turn():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.new("L", (40, 10), 200), "JPEG", exif=exif.tobytes(), dpi=(200, 200))
    (stored,) = stored_images(data)
    assert stored.jpeg == data and stored.pixels is None
    assert (stored.width, stored.height, stored.exif_rotation) == (10, 40, 90)
    assert stored.dpi == pytest.approx(200, abs=1)


def test_sixteen_bit_png_and_multipage_tiff_are_stored_as_pixels():
    deep = Image.fromarray(np.full((8, 12), 40000, dtype=np.uint16))
    (png,) = stored_images(_encode(deep, "PNG"))
    assert png.jpeg is None and png.pixels is not None and png.pixels.mode == "L"
    frames = [Image.new("L", (30, 20), v) for v in (0, 128, 255)]
    tiff = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    assert [s.pixels.getpixel((0, 0)) for s in stored_images(tiff)] == [0, 128, 255]


def test_oversized_frame_is_refused_with_the_decoder_reason():
    data = _encode(Image.new("L", (300, 300)), "PNG")
    with pytest.raises(InputDocumentError, match="Mpx") as info:
        stored_images(data, max_pixels=10_000)
    assert info.value.reason == "image_too_large"
