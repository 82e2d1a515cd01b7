"""Build src/textlayer/pdf_overlay/glyphless.ttf: one invisible glyph mapped from every BMP character.

The searchable PDF's text layer is never drawn, so it needs no glyph shapes; what it needs is
a ToUnicode entry for every character the recognizer can produce (Latin, Greek, Cyrillic,
CJK...). A font whose cmap sends every code point to a single empty glyph gives exactly that,
in about a kilobyte. Run: python tools/make_glyphless_font.py (needs fonttools).
"""

from __future__ import annotations

from pathlib import Path

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib.tables._c_m_a_p import CmapSubtable
from fontTools.ttLib.tables._g_l_y_f import Glyph

UNITS_PER_EM = 1000
ADVANCE = 500
ASCENT = 800
DESCENT = -200
OUT = Path(__file__).resolve().parents[1] / "src" / "textlayer" / "pdf_overlay" / "glyphless.ttf"


def _box_glyph() -> Glyph:
    """A filled em box, never painted (the text layer is invisible).

    PDF engines such as PDFium drop one-character words whose glyph has no outline.
    """
    pen = TTGlyphPen(None)
    pen.moveTo((0, DESCENT))
    pen.lineTo((0, ASCENT))
    pen.lineTo((ADVANCE, ASCENT))
    pen.lineTo((ADVANCE, DESCENT))
    pen.closePath()
    return pen.glyph()


def build() -> bytes:
    """The font file's bytes."""
    builder = FontBuilder(UNITS_PER_EM, isTTF=True)
    builder.setupGlyphOrder([".notdef", "g"])
    builder.setupCharacterMap({0x20: "g"})
    builder.setupGlyf({".notdef": Glyph(), "g": _box_glyph()})
    builder.setupHorizontalMetrics({".notdef": (ADVANCE, 0), "g": (ADVANCE, 0)})
    builder.setupHorizontalHeader(ascent=ASCENT, descent=DESCENT)
    builder.setupNameTable({"familyName": "TextlayerGlyphless", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=ASCENT, sTypoDescender=DESCENT, usWinAscent=ASCENT, usWinDescent=-DESCENT)
    builder.setupPost()
    # Format 13 maps whole ranges to one glyph: the BMP without surrogates and controls.
    many_to_one = CmapSubtable.newSubtable(13)
    many_to_one.platformID, many_to_one.platEncID, many_to_one.language = 3, 10, 0
    many_to_one.cmap = {code: "g" for code in [*range(0x20, 0xD800), *range(0xE000, 0xFFFE)]}
    builder.font["cmap"].tables = [many_to_one]
    from io import BytesIO

    out = BytesIO()
    builder.save(out)
    return out.getvalue()


if __name__ == "__main__":
    OUT.write_bytes(build())
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
