"""Render OCR results as plain text, the result JSON, hOCR or ALTO XML (pure).

The result JSON is one shape everywhere (``textlayer ocr --format json``, ``textlayer get --json``, the API):
:func:`result_document`, described by ``schemas/result.schema.json`` with its :data:`RESULT_VERSION`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any
from xml.sax.saxutils import quoteattr

from textlayer import __version__
from textlayer.elements import PageRecord, PageText, Quad, quad_bbox

FORM_FEED = "\f"

RESULT_VERSION = "1.0"
"""Version of the result JSON (``schemas/result.schema.json``): the major part changes when a field is removed or
changes meaning, the minor part when a field is added."""

FORMATS = ("text", "json", "hocr", "alto")
"""What :func:`render` writes."""


def to_text(pages: Sequence[PageText | None]) -> str:
    """Reading-order text, a form feed between pages (None = page that was not OCRed)."""
    return FORM_FEED.join((p.text if p else "") for p in pages) + "\n"


def result_document(
    records: Sequence[PageRecord], *, filename: str | None = None, job: str | None = None
) -> dict[str, Any]:
    """The result JSON of a document: its version, where it comes from, and each page's record in page order."""
    return {
        "version": RESULT_VERSION,
        "producer": f"textlayer {__version__}",
        "document": {"filename": filename, "job": job, "pages": len(records)},
        "pages": [record.to_dict() for record in records],
    }


def to_json(records: Sequence[PageRecord], *, filename: str | None = None, job: str | None = None) -> str:
    """:func:`result_document` as indented JSON."""
    return json.dumps(result_document(records, filename=filename, job=job), ensure_ascii=False, indent=1) + "\n"


def render(kind: str, records: Sequence[PageRecord], *, filename: str | None = None, job: str | None = None) -> str:
    """A document's records in one of :data:`FORMATS`.

    Raises:
        ValueError: an unknown format.
    """
    pages = [record.page for record in records]
    if kind == "text":
        return to_text(pages)
    if kind == "json":
        return to_json(records, filename=filename, job=job)
    if kind == "hocr":
        return to_hocr(pages, title=filename or "textlayer output")
    if kind == "alto":
        return to_alto(pages, filename=filename)
    raise ValueError(f"unknown format {kind!r}; one of {', '.join(FORMATS)}")


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
        word_id = 0
        for block_no, indices in enumerate(_blocks(page), start=1):
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
    return _bbox(_union_quad(quads))


def _blocks(page: PageText) -> list[list[int]]:
    """Indexes of the page's lines, grouped by text block, blocks in reading order."""
    blocks: dict[int, list[int]] = {}
    for i, line in enumerate(page.lines):
        blocks.setdefault(line.block, []).append(i)
    return list(blocks.values())


ALTO_NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"


def _box(quad: Quad) -> str:
    x0, y0, x1, y1 = quad_bbox(quad)
    left, top = max(0, round(x0)), max(0, round(y0))
    return f'HPOS="{left}" VPOS="{top}" WIDTH="{max(0, round(x1) - left)}" HEIGHT="{max(0, round(y1) - top)}"'


def _union_quad(quads: Sequence[Quad]) -> Quad:
    boxes = [quad_bbox(q) for q in quads]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def to_alto(pages: Sequence[PageText | None], *, filename: str | None = None) -> str:
    """ALTO 4.4 XML, in pixels: Page > PrintSpace > TextBlock (reading order) > TextLine > String (WC) and SP.

    A page that was not OCRed (text already there, blank, failed) is an empty Page.
    """
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<alto xmlns="{ALTO_NAMESPACE}" xmlns:xlink="http://www.w3.org/1999/xlink"',
        '      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
        f'      xsi:schemaLocation="{ALTO_NAMESPACE} {ALTO_SCHEMA}">',
        "<Description>",
        "<MeasurementUnit>pixel</MeasurementUnit>",
    ]
    if filename:
        out.append(f"<sourceImageInformation><fileName>{escape(filename)}</fileName></sourceImageInformation>")
    out += [
        '<Processing ID="ocr">',
        "<processingSoftware><softwareName>textlayer</softwareName>"
        f"<softwareVersion>{escape(__version__)}</softwareVersion></processingSoftware>",
        "</Processing>",
        "</Description>",
        "<Layout>",
    ]
    for number, page in enumerate(pages, start=1):
        if page is None:
            out.append(f'<Page ID="page_{number}" PHYSICAL_IMG_NR="{number}"/>')
            continue
        out.append(f'<Page ID="page_{number}" PHYSICAL_IMG_NR="{number}" WIDTH="{page.width}" HEIGHT="{page.height}">')
        out.append(f'<PrintSpace HPOS="0" VPOS="0" WIDTH="{page.width}" HEIGHT="{page.height}">')
        word_id = 0
        for block_no, indices in enumerate(_blocks(page), start=1):
            box = _box(_union_quad([page.lines[i].quad for i in indices]))
            out.append(f'<TextBlock ID="block_{number}_{block_no}" {box}>')
            for i in indices:
                line = page.lines[i]
                out.append(f'<TextLine ID="line_{number}_{i + 1}" {_box(line.quad)}>')
                words = [w for w in line.words if w.text]
                for position, word in enumerate(words):
                    word_id += 1
                    out.append(
                        f'<String ID="string_{number}_{word_id}" {_box(word.quad)} '
                        f'CONTENT={quoteattr(word.text)} WC="{min(max(word.confidence, 0.0), 1.0):.3f}"/>'
                    )
                    if position + 1 < len(words):
                        x0, y0, x1, y1 = quad_bbox(word.quad)
                        next_x0 = quad_bbox(words[position + 1].quad)[0]
                        out.append(f'<SP HPOS="{round(x1)}" VPOS="{round(y0)}" WIDTH="{max(0, round(next_x0 - x1))}"/>')
                out.append("</TextLine>")
            out.append("</TextBlock>")
        out.append("</PrintSpace>")
        out.append("</Page>")
    out += ["</Layout>", "</alto>", ""]
    return "\n".join(out)
