"""Render OCR results as plain text, JSON or hOCR (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape

from textlayer.elements import PageText, Quad, quad_bbox

FORM_FEED = "\f"


def to_text(pages: Sequence[PageText | None]) -> str:
    """Reading-order text, a form feed between pages (None = page that was not OCRed)."""
    return FORM_FEED.join((p.text if p else "") for p in pages) + "\n"


def to_json(pages: Sequence[PageText | None]) -> str:
    """The wire format: one object per page, null for pages that were not OCRed."""
    return json.dumps({"pages": [p.to_dict() if p else None for p in pages]}, ensure_ascii=False, indent=1) + "\n"


def _bbox(quad: Quad) -> str:
    x0, y0, x1, y1 = quad_bbox(quad)
    return f"bbox {int(x0)} {int(y0)} {int(round(x1))} {int(round(y1))}"


def to_hocr(pages: Sequence[PageText | None], title: str = "textlayer output") -> str:
    """HOCR 1.2: ocr_page > ocr_carea > ocr_par > ocr_line > ocrx_word (bbox, x_wconf)."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"',
        '    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">',
        "<head>",
        f"<title>{escape(title)}</title>",
        '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>',
        '<meta name="ocr-system" content="textlayer"/>',
        '<meta name="ocr-capabilities" content="ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"/>',
        "</head>",
        "<body>",
    ]
    for number, page in enumerate(pages, start=1):
        if page is None:
            out.append(f"<div class='ocr_page' id='page_{number}' title='ppageno {number - 1}'></div>")
            continue
        title_props = f"bbox 0 0 {page.width} {page.height}; ppageno {number - 1}"
        if page.dpi:
            title_props += f"; scan_res {round(page.dpi)} {round(page.dpi)}"
        out.append(f"<div class='ocr_page' id='page_{number}' title='{title_props}'>")
        blocks: dict[int, list[int]] = {}
        for i, line in enumerate(page.lines):
            blocks.setdefault(line.block, []).append(i)
        word_id = 0
        for block_no, indices in enumerate(blocks.values(), start=1):
            box = _union([page.lines[i].quad for i in indices])
            out.append(f"<div class='ocr_carea' id='block_{number}_{block_no}' title='{box}'>")
            out.append(f"<p class='ocr_par' id='par_{number}_{block_no}' title='{box}'>")
            for i in indices:
                line = page.lines[i]
                out.append(f"<span class='ocr_line' id='line_{number}_{i + 1}' title='{_bbox(line.quad)}'>")
                for word in line.words:
                    word_id += 1
                    conf = round(word.confidence * 100)
                    out.append(
                        f"<span class='ocrx_word' id='word_{number}_{word_id}' "
                        f"title='{_bbox(word.quad)}; x_wconf {conf}'>{escape(word.text)}</span>"
                    )
                out.append("</span>")
            out.append("</p>")
            out.append("</div>")
        out.append("</div>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def _union(quads: list[Quad]) -> str:
    boxes = [quad_bbox(q) for q in quads]
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[2] for b in boxes)
    y1 = max(b[3] for b in boxes)
    return f"bbox {int(x0)} {int(y0)} {int(round(x1))} {int(round(y1))}"
