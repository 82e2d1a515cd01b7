from __future__ import annotations

from textlayer.worker.layout import LayoutLine, reading_order


def _line(i, x0, y0, x1, chars=40, h=20.0):
    return LayoutLine(i, (x0, y0, x1, y0 + h), chars)


def _order(lines):
    return [i for i, _ in reading_order(lines)]


def test_two_columns_with_aligned_baselines_read_column_by_column():
    lines = [_line(0, 100, 50, 1500)]  # full-width title
    left = [_line(1 + k, 100, 120 + 30 * k, 760) for k in range(10)]
    right = [_line(11 + k, 840, 120 + 30 * k, 1500) for k in range(10)]
    # Interleave the input the way a y-sort would.
    shuffled = lines + [ln for pair in zip(left, right, strict=True) for ln in pair]
    assert _order(shuffled) == list(range(21))


def test_three_columns_under_title_and_a_footer_paragraph():
    title = [_line(0, 100, 40, 1500, h=30), _line(1, 100, 80, 1200)]
    cols = []
    n = 2
    for _c, (x0, x1) in enumerate([(100, 560), (600, 1060), (1100, 1560)]):
        for k in range(8):
            cols.append(_line(n, x0, 140 + 30 * k, x1))
            n += 1
    footer = [_line(n, 100, 450, 1560), _line(n + 1, 100, 480, 1400)]
    lines = title + sorted(cols, key=lambda ln: (ln.box[1], ln.box[0])) + footer
    assert _order(lines) == list(range(n + 2))


def test_table_cells_are_read_row_by_row():
    cells = []
    n = 0
    for r in range(6):
        for x0, x1, chars in [(100, 500, 14), (700, 760, 2), (900, 980, 5), (1100, 1180, 5)]:
            cells.append(_line(n, x0, 100 + 40 * r, x1, chars=chars))
            n += 1
    assert _order(sorted(cells, key=lambda ln: ln.box[0])) == list(range(n))


def test_receipt_label_and_price_stay_on_their_row():
    rows = []
    n = 0
    for r in range(8):
        rows.append(_line(n, 20, 100 + 30 * r, 300, chars=16))
        rows.append(_line(n + 1, 420, 100 + 30 * r, 500, chars=5))
        n += 2
    assert _order(sorted(rows, key=lambda ln: -ln.box[0])) == list(range(n))


def test_blocks_are_numbered_in_reading_order():
    lines = [_line(0, 100, 50, 1500)] + [_line(1 + k, 100, 120 + 30 * k, 760) for k in range(3)]
    lines += [_line(4 + k, 840, 120 + 30 * k, 1500) for k in range(3)]
    blocks = [b for _, b in reading_order(lines)]
    assert blocks == sorted(blocks)
    assert len(set(blocks)) == 3
