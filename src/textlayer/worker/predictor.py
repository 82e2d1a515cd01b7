"""OcrPredictor: page image in, PageText out (orientation, detection, recognition, layout), in the CLI or a worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textlayer.config import DEFAULT_MODEL_SET
from textlayer.elements import Line, PageText, Quad, Word
from textlayer.worker import detection, layout, orientation, recognition
from textlayer.worker.engine import EngineConfig, OnnxEngine
from textlayer.worker.manifest import ModelSpec, load_manifest, read_verified
from textlayer.worker.words import ink_mask, place_words

log = logging.getLogger(__name__)

MIN_LINE_CONFIDENCE = 0.5
"""Lines the recognizer is less sure of than this are noise (specks, lines of a table)."""

LINE_FLIP_PROBABILITY = 0.9
"""Lines the classifier calls upside down this surely are also read turned around."""

FLIP_CONFIDENCE_MARGIN = 0.05
"""An upside-down reading must beat the upright one by this much mean confidence."""

ORIENTATION_SAMPLE_LINES = 24
"""How many of the largest lines vote on whether the page is upside down."""


@dataclass(frozen=True)
class _Models:
    detector: OnnxEngine
    recognizer: OnnxEngine
    line_classifier: OnnxEngine
    charset: list[str]
    detector_params: detection.DetectorParams


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class OcrPredictor:
    """Reads page images with the models of one model set."""

    def __init__(self, models: _Models, model_set: str) -> None:
        """Use :meth:`load`; this takes already-built sessions."""
        self._m = models
        self.model_set = model_set

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL_SET,
        *,
        manifest_path: Path | None = None,
        threads: int = 1,
    ) -> OcrPredictor:
        """Verify and load the models of a set from the manifest.

        ``model`` names the set (``small`` = PP-OCRv6 small, ``tiny``); ``manifest_path`` replaces the packaged
        manifest; ``threads`` are onnxruntime intra-op threads per model.

        Raises:
            ModelError: unknown set, missing package, hash mismatch, unloadable model.
        """
        chosen = load_manifest(manifest_path).model_set(model)
        config = EngineConfig(threads=threads)

        def engine(spec: ModelSpec) -> OnnxEngine:
            return OnnxEngine(read_verified(spec), spec.name, config)

        det = chosen.detector.options
        params = detection.DetectorParams(
            mean=tuple(det["mean"]),
            std=tuple(det["std"]),
            scale=float(det.get("scale", 1 / 255)),
            binarize_threshold=float(det["binarize_threshold"]),
            box_threshold=float(det["box_threshold"]),
            unclip_ratio=float(det["unclip_ratio"]),
        )
        models = _Models(
            detector=engine(chosen.detector),
            recognizer=engine(chosen.recognizer),
            line_classifier=engine(chosen.line_orientation),
            charset=recognition.load_charset(read_verified(chosen.dictionary)),
            detector_params=params,
        )
        log.info("loaded model set %s (%s, %s)", model, chosen.detector.name, chosen.recognizer.name)
        return cls(models, model)

    def _detect(self, image: np.ndarray, scale: float) -> list[detection.TextBox]:
        batch, fx, fy = detection.preprocess(image, scale, self._m.detector_params)
        prob = self._m.detector.run(batch)[0, 0]
        return detection.boxes_from_probability(prob, self._m.detector_params, fx, fy)

    def _flip_probabilities(self, crops: list[np.ndarray]) -> list[float]:
        if not crops:
            return []
        probs = self._m.line_classifier.run(recognition.classifier_batch(crops))
        return [float(p[1]) for p in probs]

    def _orient(self, image: np.ndarray) -> tuple[int, np.ndarray, list[detection.TextBox], float]:
        """Find the page rotation; returns it with the upright page, its probe boxes and the probe scale."""
        rotation = 0
        scale = detection.probe_scale(image.shape)
        boxes = self._detect(image, scale)
        if detection.vertical_share(boxes) > orientation.SIDEWAYS_SHARE:
            rotation = 90
            image = orientation.rotate_image(image, 90)
            boxes = self._detect(image, scale)
        sample = sorted(boxes, key=lambda b: b.width * b.height, reverse=True)[:ORIENTATION_SAMPLE_LINES]
        sample = [b for b in sample if b.width > 1.5 * b.height]
        crops = [recognition.crop_line(image, b.quad) for b in sample]
        if orientation.is_upside_down(self._flip_probabilities(crops), [b.width for b in sample]):
            rotation += 180
            height, width = image.shape[:2]
            image = orientation.rotate_image(image, 180)
            # Turning the boxes is exact; no need to detect the page again.
            turn = np.array([width, height], dtype=np.float32)
            boxes = [detection.TextBox((turn - b.quad)[[2, 3, 0, 1]], b.score) for b in boxes]
        return rotation % 360, image, boxes, scale

    def recognize(self, image: np.ndarray, dpi: float | None = None) -> PageText:
        """OCR a uint8 HxW gray or HxWx3 BGR page: lines, words in reading order, quads in its pixels; keeps ``dpi``."""
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
            raise ValueError(f"expected a uint8 HxW or HxWx3 image, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        timer = _Timer()
        with timer.stage("orientation"):
            rotation, upright, probe_boxes, probe = self._orient(image)
        with timer.stage("detection"):
            heights = detection.line_heights(probe_boxes)
            if detection.probe_is_enough(heights, probe):
                boxes = probe_boxes
            else:
                boxes = self._detect(upright, detection.choose_scale(heights, upright.shape))
        with timer.stage("recognition"):
            quads = [b.quad for b in boxes]
            crops = [recognition.crop_line(upright, q) for q in quads]
            decoded = recognition.recognise(crops, self._m.recognizer.run, self._m.charset)
            self._fix_upside_down_lines(crops, quads, decoded)
        with timer.stage("layout"):
            lines = self._assemble(decoded, crops, quads, rotation, width, height)
        return PageText(
            width=width, height=height, rotation=rotation, lines=tuple(lines), dpi=dpi, timings_s=timer.seconds
        )

    def _fix_upside_down_lines(
        self, crops: list[np.ndarray], quads: list[np.ndarray], decoded: list[recognition.DecodedLine]
    ) -> None:
        """Re-read lines the classifier thinks are upside down; keep the reading the recognizer trusts more.

        The classifier alone misfires on a few upright lines per page, so it only nominates.
        """
        flips = self._flip_probabilities(crops)
        nominated = [i for i, p in enumerate(flips) if p > LINE_FLIP_PROBABILITY]
        if not nominated:
            return
        turned = [np.ascontiguousarray(crops[i][::-1, ::-1]) for i in nominated]
        rereads = recognition.recognise(turned, self._m.recognizer.run, self._m.charset)
        for k, (i, reread) in enumerate(zip(nominated, rereads, strict=True)):
            if reread.confidence > decoded[i].confidence + FLIP_CONFIDENCE_MARGIN:
                decoded[i] = reread
                crops[i] = turned[k]
                quads[i] = quads[i][[2, 3, 0, 1]]

    def _assemble(
        self,
        decoded: list[recognition.DecodedLine],
        crops: list[np.ndarray],
        quads: list[np.ndarray],
        rotation: int,
        width: int,
        height: int,
    ) -> list[Line]:
        """Words per line, reading order, then coordinates back on the page as given."""
        kept = [
            (line, crop, quad)
            for line, crop, quad in zip(decoded, crops, quads, strict=True)
            if line.text.strip() and line.confidence >= MIN_LINE_CONFIDENCE
        ]
        angle = layout.deskew_angle([q for _, _, q in kept])
        items = [
            layout.LayoutLine(i, layout.upright_box(q, angle), len(line.text.strip()))
            for i, (line, _, q) in enumerate(kept)
        ]
        result: list[Line] = []
        previous: layout.LayoutLine | None = None
        for index, block in layout.reading_order(items):
            line, crop, quad = kept[index]
            page_quad = orientation.unrotate_points(quad, rotation, width, height)
            words = place_words(line, page_quad, ink_mask(crop))
            if not words:
                continue
            if previous is not None and result and result[-1].block == block and _same_row(previous, items[index]):
                # Cells of one table or form row become one line: copy-paste keeps the row.
                result[-1] = _join(result[-1], words, page_quad)
            else:
                result.append(Line(tuple(words), _as_quad(page_quad), line.confidence, block))
            previous = items[index]
        return result


def _same_row(left: layout.LayoutLine, right: layout.LayoutLine) -> bool:
    centre = (right.box[1] + right.box[3]) / 2
    return left.box[1] < centre < left.box[3] and right.box[0] > left.box[2] - 0.5 * left.height


def _join(line: Line, words: list[Word], quad: np.ndarray) -> Line:
    """Append a row neighbour's words; the line's quad stretches to the neighbour's right edge."""
    merged = (
        line.quad[0],
        (float(quad[1][0]), float(quad[1][1])),
        (float(quad[2][0]), float(quad[2][1])),
        line.quad[3],
    )
    count = len(line.words)
    confidence = (line.confidence * count + sum(w.confidence for w in words)) / (count + len(words))
    return Line(line.words + tuple(words), merged, confidence, line.block)


def _as_quad(points: np.ndarray) -> Quad:
    p = [(float(x), float(y)) for x, y in points]
    return (p[0], p[1], p[2], p[3])
