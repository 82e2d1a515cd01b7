"""Decode untrusted page images (PNG, JPEG, TIFF) with limits, before any pixel is expanded."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from textlayer.errors import InputDocumentError
from textlayer.media.limits import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS
from textlayer.media.sniff import sniff_image_format

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodedImage:
    """One decoded page: uint8 gray (HxW) or BGR (HxWx3) pixels, its dpi when the file says."""

    image: np.ndarray
    dpi: float | None
    index: int


def _to_array(frame: Image.Image) -> np.ndarray:
    """Pixels as uint8 gray or BGR; alpha is composited on white, 16-bit is scaled down."""
    if frame.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(frame, dtype=np.float64)
        top = pixels.max() if pixels.size else 1.0
        scale = 255.0 / (65535.0 if top > 255 else max(top, 1.0))
        return np.clip(pixels * scale, 0, 255).astype(np.uint8)
    if frame.mode in ("1", "L"):
        return np.asarray(frame.convert("L"))
    if frame.mode in ("LA", "RGBA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        frame = Image.alpha_composite(background, rgba)
    rgb = np.asarray(frame.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _dpi(frame: Image.Image) -> float | None:
    dpi = frame.info.get("dpi")
    try:
        value = float(dpi[0]) if dpi else 0.0
    except (TypeError, ValueError, IndexError):
        return None
    # Files often carry nonsense (0, 1, 72 for a scan); only plausible scan resolutions count.
    return value if 50 <= value <= 2400 else None


def _frames(image: Image.Image, max_frames: int) -> Iterator[Image.Image]:
    count = getattr(image, "n_frames", 1)
    if count > max_frames:
        raise InputDocumentError(
            f"The image has {count} pages; at most {max_frames} are accepted. Split it and upload the parts.",
            reason="too_many_pages",
        )
    for index in range(count):
        image.seek(index)
        yield image


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    frame: int | None = None,
) -> list[DecodedImage]:
    """Decode a PNG, JPEG or (multi-page) TIFF into page arrays, EXIF orientation applied.

    Sizes are checked from the header before any pixel is decoded, so a decompression
    bomb costs nothing. ``frame`` decodes only that page of a multi-page file.

    Raises:
        InputDocumentError: empty, unsupported, corrupt, truncated or too large.
    """
    wanted = range(frame, frame + 1) if frame is not None else None
    pages = list(iter_decoded(data, max_pixels=max_pixels, max_frames=max_frames, frames=wanted))
    if frame is not None and not pages:
        raise InputDocumentError(f"The image has no page {frame + 1}.", reason="no_such_page")
    return pages


def iter_decoded(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int = DEFAULT_MAX_FRAMES, frames: range | None
) -> Iterator[DecodedImage]:
    """Decode the pages of an image one at a time (``frames``: only those; None: all), as :func:`decode_image`.

    Raises:
        InputDocumentError: as :func:`decode_image`.
    """
    if not data:
        raise InputDocumentError("The file is empty.", reason="empty_file")
    with _opened(data, max_pixels) as image:
        for index, current in enumerate(_frames(image, max_frames)):
            if frames is not None and index >= frames.stop:
                break
            if frames is not None and index not in frames:
                continue
            _check_size(index, *current.size, max_pixels)
            upright = ImageOps.exif_transpose(current)
            yield DecodedImage(_to_array(upright), _dpi(current), index)


def count_frames(data: bytes, *, max_frames: int = DEFAULT_MAX_FRAMES, max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """Pages of a PNG, JPEG or TIFF from its headers alone (no pixel is decoded), every page's size checked.

    Raises:
        InputDocumentError: not a readable image, more pages than ``max_frames``, or a page too large.
    """
    with _opened(data, max_pixels) as image:
        count = 0
        for index, frame in enumerate(_frames(image, max_frames)):
            # Every frame's size from its header: a bomb is refused before any work is queued.
            _check_size(index, *frame.size, max_pixels)
            count += 1
        return count


@contextlib.contextmanager
def _opened(data: bytes, max_pixels: int) -> Iterator[Image.Image]:
    """Open an image as the type its magic bytes say, turning every Pillow failure into a reason."""
    kind = sniff_image_format(data)
    if kind is None:
        raise InputDocumentError("The file is not a PNG, JPEG or TIFF image.", reason="unsupported_type")
    try:
        with warnings.catch_warnings():
            # Pillow only warns about bombs up to twice its own limit; we refuse instead.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                yield image
    except InputDocumentError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InputDocumentError(
            f"The image declares an enormous size and was refused before decoding; at most "
            f"{max_pixels / 1e6:.0f} Mpx per page are accepted ({exc}).",
            reason="image_too_large",
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        # Pillow reports truncated and malformed files through all of these.
        raise InputDocumentError(
            f"The {kind} image is corrupt or truncated and cannot be read ({exc}).", reason="corrupt_image"
        ) from exc


def _check_size(index: int, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InputDocumentError(
            f"Page {index + 1} is {width}x{height} pixels ({width * height / 1e6:.0f} Mpx); "
            f"at most {max_pixels / 1e6:.0f} Mpx per page are accepted.",
            reason="image_too_large",
        )
    if width < 1 or height < 1:
        raise InputDocumentError(f"Page {index + 1} has no pixels.", reason="corrupt_image")


def encode_png(image: np.ndarray) -> bytes:
    """Losslessly encode page pixels (gray or BGR) for the trip into a jailed worker; fast, not small."""
    pixels = image if image.ndim == 2 else np.ascontiguousarray(image[:, :, ::-1])
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def to_pil(image: np.ndarray) -> Image.Image:
    """Page pixels (gray or BGR) as a Pillow image (L or RGB), e.g. to embed in a PDF."""
    return Image.fromarray(image if image.ndim == 2 else np.ascontiguousarray(image[:, :, ::-1]))


@functools.cache
def srgb_icc_profile() -> bytes:
    """An sRGB ICC profile made by LittleCMS (no file is read): the output intent of a PDF/A."""
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


_EXIF_ROTATIONS = {1: 0, 3: 180, 6: 90, 8: 270}
"""EXIF orientation -> clockwise turn that shows the stored pixels upright (mirrorings excluded)."""


@dataclass(frozen=True)
class StoredImage:
    """How a page image is stored, for embedding it in a PDF without loss.

    ``jpeg`` holds the file's bytes when they can be embedded as they are (a plain
    single-frame JPEG); otherwise ``pixels`` is the upright frame to store losslessly.
    ``width`` and ``height`` are upright (EXIF orientation applied), like the OCR's pixels.
    """

    width: int
    height: int
    dpi: float | None
    jpeg: bytes | None
    exif_rotation: int
    pixels: Image.Image | None


def _embeddable(frame: Image.Image) -> Image.Image:
    """Modes a PDF stores directly stay; others (16-bit, palette, alpha) become 8-bit like the OCR saw them."""
    if frame.mode in ("1", "L", "RGB", "CMYK"):
        return frame
    pixels = _to_array(frame)
    return Image.fromarray(pixels if pixels.ndim == 2 else np.ascontiguousarray(pixels[:, :, ::-1]))


def stored_images(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int = DEFAULT_MAX_FRAMES
) -> list[StoredImage]:
    """Describe each frame of an image for embedding (sizes checked like :func:`decode_image`).

    Raises:
        InputDocumentError: as :func:`decode_image`.
    """
    kind = sniff_image_format(data)
    result: list[StoredImage] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind] if kind else None) as image:
                if kind == "JPEG":
                    orientation = image.getexif().get(0x0112, 1)
                    if orientation in _EXIF_ROTATIONS and image.size[0] * image.size[1] <= max_pixels:
                        turn = _EXIF_ROTATIONS[orientation]
                        w, h = image.size if turn in (0, 180) else image.size[::-1]
                        return [StoredImage(w, h, _dpi(image), data, turn, None)]
                for frame in _frames(image, max_frames):
                    if frame.size[0] * frame.size[1] > max_pixels:
                        raise InputDocumentError("too large")  # decode_image below words it
                    upright = _embeddable(ImageOps.exif_transpose(frame))
                    result.append(StoredImage(upright.size[0], upright.size[1], _dpi(frame), None, 0, upright))
    except (
        InputDocumentError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        UnidentifiedImageError,
    ):
        result = []
    if not result:
        # Let the decoder say precisely what is wrong (same limits, same messages).
        decode_image(data, max_pixels=max_pixels, max_frames=max_frames)
        raise InputDocumentError("The image cannot be read.", reason="corrupt_image")
    return result
