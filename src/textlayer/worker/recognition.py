"""Text recognition around a CTC model: line crops, batching, greedy decoding with positions (numpy + cv2)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

INPUT_HEIGHT_PX = 48
"""Height of every line image fed to the recognizer and the line classifier."""

MAX_WIDTH_RATIO = 60.0
"""Widest line (width / height) fed in one piece; longer lines are squeezed (rare)."""

BATCH_PIXELS = 48 * 320 * 4
"""Padded pixels per recognizer batch: activations that stay in cache (a long line goes alone).

Measured at one thread (PP-OCRv6 small, best of 3, interleaved): batches of 2-6 x 48x320
took 2.6-2.9 s for a receipt's lines, 2.1-2.2 s for a table, 7.2-7.5 s for a dense A4 page,
against 3.7, 3.1 and 8.3 s in batches of 24 x 48x320.
"""

CLASSIFIER_WIDTH_PX = 192
"""Input width of the text-line orientation classifier."""


@dataclass(frozen=True)
class DecodedChar:
    """One recognised character with its confidence and its x centre in crop pixels."""

    char: str
    confidence: float
    x: float


@dataclass(frozen=True)
class DecodedLine:
    """A line's characters in order (spaces included) and the crop width they refer to."""

    chars: tuple[DecodedChar, ...]
    crop_width: float

    @property
    def text(self) -> str:
        """The raw decoded string."""
        return "".join(c.char for c in self.chars)

    @property
    def confidence(self) -> float:
        """Mean confidence of the non-space characters (0 for an empty line)."""
        scores = [c.confidence for c in self.chars if not c.char.isspace()]
        return float(np.mean(scores)) if scores else 0.0


def crop_line(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Cut a text line out of the page along its quad, straightened (perspective warp)."""
    width = int(round(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3]))))
    height = int(round(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    return cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _normalise(resized: np.ndarray) -> np.ndarray:
    """uint8 HxW or HxWx3 -> float32 3xHxW in [-1, 1] (the PP-OCR recognizer convention)."""
    scaled = resized.astype(np.float32) * (2.0 / 255.0) - 1.0
    if scaled.ndim == 2:
        return np.broadcast_to(scaled, (3, *scaled.shape))
    return scaled.transpose(2, 0, 1)


def _resized_width(crop: np.ndarray) -> int:
    height, width = crop.shape[:2]
    ratio = min(width / max(height, 1), MAX_WIDTH_RATIO)
    return max(1, int(math.ceil(INPUT_HEIGHT_PX * ratio)))


def classifier_batch(crops: Sequence[np.ndarray]) -> np.ndarray:
    """Batch for the 0/180 line classifier: each crop fitted into 48x192, zero-padded."""
    batch = np.zeros((len(crops), 3, INPUT_HEIGHT_PX, CLASSIFIER_WIDTH_PX), dtype=np.float32)
    for i, crop in enumerate(crops):
        width = min(CLASSIFIER_WIDTH_PX, _resized_width(crop))
        resized = cv2.resize(crop, (width, INPUT_HEIGHT_PX), interpolation=cv2.INTER_LINEAR)
        batch[i, :, :, :width] = _normalise(resized)
    return batch


def plan_batches(crops: Sequence[np.ndarray]) -> list[list[int]]:
    """Group line indices into batches of similar width (sorted by width, bounded padded size)."""
    order = sorted(range(len(crops)), key=lambda i: _resized_width(crops[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        widest = _resized_width(crops[index])  # sorted: the newest is the widest
        if current and (len(current) + 1) * widest * INPUT_HEIGHT_PX > BATCH_PIXELS:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def recognition_batch(crops: Sequence[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    """Recognizer batch (height 48, common padded width, zeros on the right) and per crop the factor to crop pixels."""
    widths = [_resized_width(c) for c in crops]
    padded = max(widths)
    batch = np.zeros((len(crops), 3, INPUT_HEIGHT_PX, padded), dtype=np.float32)
    factors = []
    for i, (crop, width) in enumerate(zip(crops, widths, strict=True)):
        resized = cv2.resize(crop, (width, INPUT_HEIGHT_PX), interpolation=cv2.INTER_LINEAR)
        batch[i, :, :, :width] = _normalise(resized)
        factors.append(crop.shape[1] / width)
    return batch, factors


def ctc_decode(
    probs: np.ndarray, charset: Sequence[str], frame_px: float, factor: float, crop_width: float
) -> DecodedLine:
    """Greedy CTC decoding that keeps each character's confidence and position.

    ``probs`` are one line's TxC class probabilities (class 0 = blank, so ``charset[0]`` is unused); ``frame_px`` is the
    width of one output frame in resized-input pixels, and ``factor`` turns those into crop pixels; ``crop_width`` is
    kept for word geometry later.
    """
    best = probs.argmax(axis=1)
    best_p = probs[np.arange(len(best)), best]
    chars: list[DecodedChar] = []
    t = 0
    frames = len(best)
    while t < frames:
        cls = int(best[t])
        start = t
        while t < frames and best[t] == cls:
            t += 1
        if cls == 0 or cls >= len(charset):
            continue
        # A run of frames is one character: centre = middle of the run.
        centre = (start + t) / 2.0 * frame_px * factor
        chars.append(DecodedChar(charset[cls], float(best_p[start:t].max()), centre))
    return DecodedLine(tuple(chars), crop_width)


def recognise(
    crops: Sequence[np.ndarray],
    run_model: Callable[[np.ndarray], np.ndarray],
    charset: Sequence[str],
) -> list[DecodedLine]:
    """Recognise upright line crops in width-sorted batches, one ``run_model`` (NCHW float32 -> NxTxC) call each."""
    results: list[DecodedLine | None] = [None] * len(crops)
    for indices in plan_batches(crops):
        batch, factors = recognition_batch([crops[i] for i in indices])
        probs = run_model(batch)
        frame_px = batch.shape[3] / probs.shape[1]
        for row, index in enumerate(indices):
            results[index] = ctc_decode(probs[row], charset, frame_px, factors[row], crops[index].shape[1])
    return [r if r is not None else DecodedLine((), 0.0) for r in results]


def load_charset(dictionary: bytes) -> list[str]:
    """Class index -> character: blank, the dictionary's lines, then a space."""
    # split("\n"), not splitlines(): a dictionary entry may itself be a Unicode line separator.
    lines = [line.rstrip("\r") for line in dictionary.decode("utf-8").split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return ["", *lines, " "]
