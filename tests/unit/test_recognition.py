from __future__ import annotations

import numpy as np
import pytest

from textlayer.worker import recognition
from textlayer.worker.words import place_words

CHARSET = ["", "a", "b", "c", " "]


def _probs(labels):
    probs = np.full((len(labels), len(CHARSET)), 0.01, dtype=np.float32)
    for t, cls in enumerate(labels):
        probs[t, cls] = 0.96
    return probs


def test_ctc_decode_collapses_repeats_and_keeps_positions():
    # frames:  0 1 2 3 4 5 6 7 8 9
    labels = [0, 1, 1, 0, 2, 0, 4, 0, 3, 3]
    line = recognition.ctc_decode(_probs(labels), CHARSET, frame_px=8.0, factor=0.5, crop_width=40.0)
    assert line.text == "ab c"
    # 'a' spans frames 1-2: centre at frame 2.0 -> 16 px resized -> 8 px in the crop.
    assert [c.x for c in line.chars] == pytest.approx([8.0, 18.0, 26.0, 36.0])
    assert line.confidence == pytest.approx(0.96)


def test_ctc_decode_keeps_repeated_letters_separated_by_blank():
    line = recognition.ctc_decode(_probs([1, 0, 1]), CHARSET, 8.0, 1.0, 24.0)
    assert line.text == "aa"


def test_charset_has_blank_first_and_space_last():
    charset = recognition.load_charset("x\ny\n\u2028\n".encode())
    assert charset == ["", "x", "y", "\u2028", " "]


def test_batches_are_width_sorted_and_bounded():
    crops = [np.zeros((48, w), dtype=np.uint8) for w in (900, 100, 3000, 200, 150)]
    batches = recognition.plan_batches(crops)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(5))
    widths = [crops[i].shape[1] for i in flat]
    assert widths == sorted(widths)
    batch, factors = recognition.recognition_batch([crops[i] for i in batches[0]])
    assert batch.shape[1:3] == (3, 48)


def test_word_quads_follow_a_rotated_line():
    chars = [recognition.DecodedChar(c, 0.9, x) for c, x in zip("ab ab", [5, 15, 25, 35, 45], strict=True)]
    line = recognition.DecodedLine(tuple(chars), 50.0)
    angle = np.radians(30)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-np.sin(angle), np.cos(angle)])
    origin = np.array([100.0, 100.0])
    quad = np.array([origin, origin + 100 * direction, origin + 100 * direction + 20 * normal, origin + 20 * normal])
    words = place_words(line, quad)
    assert [w.text for w in words] == ["ab", "ab"]
    for word in words:
        (x0, y0), (x1, y1) = word.quad[0], word.quad[1]
        assert np.degrees(np.arctan2(y1 - y0, x1 - x0)) == pytest.approx(30.0)
    # The second word starts past the middle of the line.
    start = np.array(words[1].quad[0]) - origin
    assert 55 < start @ direction < 65
