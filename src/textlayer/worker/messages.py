"""Mapping between PageText and its protobuf messages (the gRPC wire format of the OCR service)."""

from __future__ import annotations

from textlayer.elements import Line, PageText, Quad, Word
from textlayer.rpc.v1 import ocr_pb2


def _points(quad: Quad) -> list[ocr_pb2.Point]:
    return [ocr_pb2.Point(x=x, y=y) for x, y in quad]


def _quad(points: list[ocr_pb2.Point]) -> Quad:
    if len(points) != 4:
        raise ValueError(f"a quad needs 4 points, got {len(points)}")
    a, b, c, d = ((p.x, p.y) for p in points)
    return (a, b, c, d)


def page_to_proto(page: PageText, *, request_id: str = "", server: str = "") -> ocr_pb2.PageResult:
    """The wire form of one page's OCR result."""
    return ocr_pb2.PageResult(
        request_id=request_id,
        width=page.width,
        height=page.height,
        rotation=page.rotation,
        dpi=page.dpi or 0.0,
        lines=[
            ocr_pb2.Line(
                words=[ocr_pb2.Word(text=w.text, quad=_points(w.quad), confidence=w.confidence) for w in line.words],
                quad=_points(line.quad),
                confidence=line.confidence,
                block=line.block,
            )
            for line in page.lines
        ],
        timings_s=dict(page.timings_s),
        server=server,
    )


def page_from_proto(result: ocr_pb2.PageResult) -> PageText:
    """Inverse of :func:`page_to_proto`.

    Raises:
        ValueError: a quad without four points or an impossible rotation (a broken server).
    """
    if result.rotation not in (0, 90, 180, 270):
        raise ValueError(f"impossible rotation {result.rotation}")
    return PageText(
        width=result.width,
        height=result.height,
        rotation=result.rotation,
        lines=tuple(
            Line(
                words=tuple(Word(w.text, _quad(list(w.quad)), w.confidence) for w in line.words),
                quad=_quad(list(line.quad)),
                confidence=line.confidence,
                block=line.block,
            )
            for line in result.lines
        ),
        dpi=result.dpi or None,
        timings_s=dict(result.timings_s),
    )
