"""Optional: a few real scans from ../shared/eval (skipped where the folder is absent)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rapidfuzz.distance import Levenshtein

from textlayer.media.images import decode_image

pytestmark = [pytest.mark.onnx, pytest.mark.slow]

EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "eval"


def _nospace(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


@pytest.mark.parametrize("dataset", ["sroie", "funsd"])
def test_real_scans_read_close_to_the_truth(predictor, dataset):
    manifest_path = EVAL_DIR / dataset / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip(f"no evaluation scans at {EVAL_DIR}")
    image = json.loads(manifest_path.read_text())["images"][0]
    (page,) = decode_image((EVAL_DIR / dataset / image["file"]).read_bytes())
    result = predictor.recognize(page.image)
    truth = _nospace(image["text"])
    # Order-free enough: spaces removed; real scans, so a loose bound.
    assert Levenshtein.distance(truth, _nospace(result.text)) / len(truth) <= 0.15
