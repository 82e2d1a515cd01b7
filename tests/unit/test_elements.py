from __future__ import annotations

import json

from textlayer.elements import Line, PageText, Word


def _word(text, x):
    return Word(text, ((x, 0.0), (x + 10, 0.0), (x + 10, 5.0), (x, 5.0)), 0.9)


def test_page_round_trips_through_json():
    line = Line((_word("é", 0), _word("ﬁx", 20)), ((0, 0), (30, 0), (30, 5), (0, 5)), 0.9, block=1)
    page = PageText(100, 50, 90, (line,), dpi=300.0, timings_s={"detection": 0.1})
    again = PageText.from_dict(json.loads(json.dumps(page.to_dict())))
    assert again == page and again.timings_s == {"detection": 0.1}


def test_text_joins_words_lines_and_blocks():
    a = Line((_word("a", 0), _word("b", 20)), ((0, 0), (30, 0), (30, 5), (0, 5)), 0.9, block=0)
    b = Line((_word("c", 0),), ((0, 10), (10, 10), (10, 15), (0, 15)), 0.9, block=0)
    c = Line((_word("d", 0),), ((0, 30), (10, 30), (10, 35), (0, 35)), 0.9, block=1)
    assert PageText(50, 50, 0, (a, b, c)).text == "a b\nc\n\nd"
