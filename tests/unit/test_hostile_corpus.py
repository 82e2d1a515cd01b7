"""Sanity checks of the hostile-document corpus generator: each file is what its row says it is.

The bombs are only ever looked at through their headers or the first megabytes of their
streams, and never opened with Pillow (its DecompressionBombWarning would fail the run).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2 as pdfium
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from PIL import Image, ImageOps
from pypdf import PasswordType, PdfReader

from tests.hostile_corpus import (
    FAILED,
    HOSTILE_NAMES,
    JPEG_MAGIC,
    KNOWN_MAGICS,
    PDF_MAGIC,
    PNG_SIGNATURE,
    SUCCEEDED,
    SUCCEEDED_WITH_ERRORS,
    TOO_BIG_SIZE,
    CorpusFile,
    build_corpus,
    text_image,
)

ALL_REASONS = {
    None,
    "empty_file",
    "unsupported_type",
    "corrupt_pdf",
    "encrypted_pdf",
    "too_many_pages",
    "decompression_limit",
    "parse_crashed",
    "image_too_large",
    "no_pages",
    "signed_pdf",
    "file_too_large",
}


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def corpus(directory: Path) -> list[CorpusFile]:
    return build_corpus(directory)


@pytest.fixture(scope="module")
def by_name(corpus: list[CorpusFile]) -> dict[str, CorpusFile]:
    return {file.name: file for file in corpus}


def _read(by_name: dict[str, CorpusFile], name: str) -> bytes:
    return by_name[name].path.read_bytes()


def _head(by_name: dict[str, CorpusFile], name: str, size: int = 64) -> bytes:
    with by_name[name].path.open("rb") as handle:
        return handle.read(size)


def _png_header(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the IHDR, without decoding anything."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    ihdr = data[16:29]
    assert zlib.crc32(data[12:29]) == int.from_bytes(data[29:33], "big")
    return int.from_bytes(ihdr[0:4], "big"), int.from_bytes(ihdr[4:8], "big"), ihdr[8], ihdr[9]


def _flate_stream(data: bytes) -> bytes:
    match = re.search(rb"/Length (\d+) /Filter /FlateDecode >>\nstream\n", data)
    assert match is not None
    length = int(match.group(1))
    assert data[match.end() + length : match.end() + length + 10] == b"\nendstream"
    return data[match.end() : match.end() + length]


# ---------------------------------------------------------------------------------------------
# The list itself
# ---------------------------------------------------------------------------------------------


def test_every_row_but_slow_upload_is_covered(corpus: list[CorpusFile]) -> None:
    assert {file.row for file in corpus} == set(range(1, 31)) - {29}


def test_names_are_unique_and_only_the_duplicates_share_bytes(corpus: list[CorpusFile]) -> None:
    names = [file.name for file in corpus]
    assert len(names) == len(set(names))
    by_bytes: dict[bytes, set[str]] = {}
    for file in corpus:
        # The hostile names all point at one file on purpose; too_big.pdf is the only file of its size.
        if file.row != 28 and file.path.stat().st_size < 10_000_000:
            by_bytes.setdefault(file.path.read_bytes(), set()).add(file.name)
    shared = [group for group in by_bytes.values() if len(group) > 1]
    assert shared == [{"dup-1.png", "dup-2.png"}]


def test_hostile_names_share_one_text_png(corpus: list[CorpusFile]) -> None:
    hostile = [file for file in corpus if file.row == 28]
    assert tuple(file.name for file in hostile) == HOSTILE_NAMES
    assert len(HOSTILE_NAMES[4]) == 1000
    assert {"../../etc/passwd", "..\\..\\x.pdf", "/etc/x", "a\x00b.pdf", "CON", "\u202efdp.exe"} <= set(HOSTILE_NAMES)
    assert len({file.path for file in hostile}) == 1
    assert hostile[0].path.read_bytes().startswith(PNG_SIGNATURE)


def test_paths_are_inside_the_directory_under_safe_names(corpus: list[CorpusFile], directory: Path) -> None:
    root = directory.resolve()
    for file in corpus:
        assert file.path.is_file(), file.name
        assert file.path.resolve().parent == root, file.name
        assert re.fullmatch(r"\d\d-[A-Za-z0-9_.-]+", file.path.name), file.path.name
    assert sorted(p.name for p in root.iterdir()) == sorted({file.path.name for file in corpus})


def test_outcomes_are_well_formed(corpus: list[CorpusFile]) -> None:
    for file in corpus:
        assert file.states and file.states <= {SUCCEEDED, SUCCEEDED_WITH_ERRORS, FAILED}, file.name
        assert file.reasons and file.reasons <= ALL_REASONS, file.name
        assert (None in file.reasons) == (SUCCEEDED in file.states), file.name
        if file.states == {FAILED}:
            assert file.pages is None and file.text is None, file.name
        assert file.note, file.name


def test_every_text_page_names_its_word(corpus: list[CorpusFile]) -> None:
    words = {file.text for file in corpus if file.text}
    assert len(words) >= 10
    assert all(word.isalpha() for word in words)


# ---------------------------------------------------------------------------------------------
# Magic bytes and structure, row by row
# ---------------------------------------------------------------------------------------------


def test_empty_and_garbage(by_name: dict[str, CorpusFile]) -> None:
    assert by_name["zero.pdf"].path.stat().st_size == 0
    garbage = _read(by_name, "garbage.pdf")
    assert len(garbage) == 4096
    assert not any(garbage.startswith(magic) for magic in KNOWN_MAGICS)


def test_truncated_pdf_cannot_be_opened(by_name: dict[str, CorpusFile]) -> None:
    data = _read(by_name, "truncated.pdf")
    assert data.startswith(PDF_MAGIC) and b"%%EOF" not in data and b"xref" not in data
    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(data)


def test_user_password_pdf_needs_the_password(by_name: dict[str, CorpusFile]) -> None:
    reader = PdfReader(by_name["encrypted_user.pdf"].path)
    assert reader.is_encrypted
    encrypt: Any = reader.trailer["/Encrypt"]
    assert encrypt["/V"] == 5  # AES-256
    assert reader.decrypt("") == PasswordType.NOT_DECRYPTED
    assert reader.decrypt("hostile-user") != PasswordType.NOT_DECRYPTED


def test_owner_only_pdf_opens_with_an_empty_password(by_name: dict[str, CorpusFile]) -> None:
    reader = PdfReader(by_name["encrypted_owner_only.pdf"].path)
    assert reader.is_encrypted
    encrypt: Any = reader.trailer["/Encrypt"]
    assert encrypt["/V"] == 4 and encrypt["/CF"]["/StdCF"]["/CFM"] == "/AESV2"  # AES-128
    assert reader.decrypt("") != PasswordType.NOT_DECRYPTED
    assert len(reader.pages) == 1
    pdf = pdfium.PdfDocument(by_name["encrypted_owner_only.pdf"].path)
    try:
        assert len(pdf) == 1
    finally:
        pdf.close()


@pytest.mark.parametrize(("name", "pages", "size"), [("pages5000.pdf", 5000, 100), ("pages2000.pdf", 2000, 100)])
def test_page_counts(by_name: dict[str, CorpusFile], name: str, pages: int, size: int) -> None:
    pdf = pdfium.PdfDocument(by_name[name].path)
    try:
        assert len(pdf) == pages
        assert pdf[pages - 1].get_size() == (size, size)
    finally:
        pdf.close()


def test_huge_mediabox(by_name: dict[str, CorpusFile]) -> None:
    pdf = pdfium.PdfDocument(by_name["huge_mediabox.pdf"].path)
    try:
        assert len(pdf) == 1 and pdf[0].get_size() == (14_400, 14_400)
    finally:
        pdf.close()


def test_flate_bombs_are_small_on_disk_and_inflate_to_spaces(by_name: dict[str, CorpusFile]) -> None:
    small, large = by_name["flate_bomb_200mb.pdf"].path, by_name["flate_bomb_1500mb.pdf"].path
    assert small.stat().st_size < 1_000_000
    assert large.stat().st_size < 3_000_000
    for path in (small, large):
        stream = _flate_stream(path.read_bytes())
        # Never inflate a bomb fully: only the first 4 MB, through max_length.
        inflater = zlib.decompressobj()
        head = inflater.decompress(stream, 4_000_000)
        assert len(head) == 4_000_000 and head == b" " * len(head)
        assert inflater.unconsumed_tail
    pdf = pdfium.PdfDocument(small)  # opening parses no content stream
    try:
        assert len(pdf) == 1
    finally:
        pdf.close()


def test_png_headers(by_name: dict[str, CorpusFile]) -> None:
    assert _png_header(_head(by_name, "png_bomb_400mpx.png")) == (20_000, 20_000, 1, 0)
    assert _png_header(_head(by_name, "png_108mpx.png")) == (12_000, 9_000, 8, 0)
    assert _png_header(_head(by_name, "png_fake_header_10gpx.png")) == (100_000, 100_000, 8, 0)
    for name in ("png_bomb_400mpx.png", "png_108mpx.png", "png_fake_header_10gpx.png"):
        data = _read(by_name, name)
        assert len(data) < 200_000 and data.endswith(b"IEND\xaeB`\x82"), name


def test_png_named_pdf_is_a_png(by_name: dict[str, CorpusFile]) -> None:
    data = _read(by_name, "png_named.pdf")
    assert data.startswith(PNG_SIGNATURE) and PDF_MAGIC not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"


def test_jpeg_pdf_polyglot(by_name: dict[str, CorpusFile]) -> None:
    data = _read(by_name, "jpeg_pdf_polyglot.jpg")
    assert data.startswith(JPEG_MAGIC)
    pdf_at = data.index(PDF_MAGIC)
    assert data[:pdf_at].endswith(b"\xff\xd9")  # the PDF starts right after the JPEG's EOI
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (900, 420)
    pdf = pdfium.PdfDocument(data[pdf_at:])
    try:
        assert len(pdf) == 3
    finally:
        pdf.close()


def test_html_pdf_polyglot(by_name: dict[str, CorpusFile]) -> None:
    data = _read(by_name, "html_pdf_polyglot.pdf")
    assert data.startswith(b"<html><script>alert(1)</script></html>\n")
    assert not data.startswith(PDF_MAGIC) and data.index(PDF_MAGIC) > 0


def test_tiff_has_1000_frames(by_name: dict[str, CorpusFile]) -> None:
    with Image.open(by_name["tiff_1000_frames.tif"].path) as image:
        assert image.format == "TIFF" and image.size == (200, 200)
        assert getattr(image, "n_frames", 1) == 1000


def test_active_content_is_there_to_be_stripped(by_name: dict[str, CorpusFile]) -> None:
    reader = PdfReader(by_name["active_content.pdf"].path)
    root: Any = reader.trailer["/Root"]
    assert root["/OpenAction"]["/S"] == "/JavaScript"
    assert "/JavaScript" in root["/Names"] and "/EmbeddedFiles" in root["/Names"]
    assert "payload.exe" in reader.attachments
    page: Any = reader.pages[0]
    assert page["/AA"]["/O"]["/S"] == "/JavaScript"
    assert [annot.get_object()["/A"]["/S"] for annot in page["/Annots"]] == ["/Launch"]


def test_xref_loop(by_name: dict[str, CorpusFile]) -> None:
    data = _read(by_name, "xref_loop.pdf")
    startxref = int(re.search(rb"startxref\n(\d+)", data).group(1))  # type: ignore[union-attr]
    assert f"/Prev {startxref} ".encode() in data
    assert b"/Kids [3 0 R]" in data and b"/Kids [2 0 R]" in data
    pdf = pdfium.PdfDocument(data)
    try:
        with pytest.raises(pdfium.PdfiumError):
            pdf[0]  # the lying /Count says 1, but there is no page to load
    finally:
        pdf.close()


def test_deep_nesting(by_name: dict[str, CorpusFile]) -> None:
    data = _read(by_name, "deep_nesting.pdf")
    assert b"/Deep " + b"[" * 10_000 + b"]" * 10_000 in data
    assert b"[" * 10_001 not in data


def test_count0(by_name: dict[str, CorpusFile]) -> None:
    reader = PdfReader(by_name["count0.pdf"].path)
    root: Any = reader.trailer["/Root"]
    pages = root["/Pages"]
    assert pages["/Count"] == 0 and list(pages["/Kids"]) == []


def test_searchable_pdf_has_a_text_layer(by_name: dict[str, CorpusFile]) -> None:
    file = by_name["searchable.pdf"]
    assert file.text is not None
    assert file.text in PdfReader(file.path).pages[0].extract_text()


def test_signed_pdf_has_a_valid_detached_signature(by_name: dict[str, CorpusFile]) -> None:
    data = _read(by_name, "signed.pdf")
    pdf = pdfium.PdfDocument(data)
    try:
        assert pdfium.raw.FPDF_GetSignatureCount(pdf.raw) >= 1
    finally:
        pdf.close()
    assert b"/SigFlags 3" in data and b"/FT /Sig" in data and b"/SubFilter /adbe.pkcs7.detached" in data
    match = re.search(rb"/ByteRange \[(\d+) (\d+) (\d+) (\d+) *\]", data)
    assert match is not None
    a, b, c, d = (int(group) for group in match.groups())
    assert a == 0 and c + d == len(data) and data[b : b + 1] == b"<" and data[c - 1 : c] == b">"
    der = bytes.fromhex(data[b + 1 : c - 1].decode("ascii"))
    assert der[:2] == b"\x30\x82"
    der = der[: 4 + int.from_bytes(der[2:4], "big")]  # drop the zero padding after the DER
    (certificate,) = pkcs7.load_der_pkcs7_certificates(der)
    # No signed attributes: the RSA signature (the last field of the DER) covers the ByteRange bytes directly.
    assert der[-260:-256] == b"\x04\x82\x01\x00"
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(der[-256:], data[a:b] + data[c : c + d], padding.PKCS1v15(), hashes.SHA256())


def _upright(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("L"), dtype=np.int16)


def test_images_that_must_decode(by_name: dict[str, CorpusFile]) -> None:
    with Image.open(by_name["cmyk.jpg"].path) as image:
        assert image.format == "JPEG" and image.mode == "CMYK"
    assert _png_header(_read(by_name, "gray16.png")) == (900, 420, 16, 0)
    with Image.open(by_name["palette_alpha.png"].path) as image:
        assert image.mode == "P" and "transparency" in image.info
        assert image.convert("RGB").getpixel((5, 5)) == (0, 0, 0)  # the paper is black without its alpha
        assert image.convert("RGBA").getpixel((5, 5)) == (0, 0, 0, 0)
    with Image.open(by_name["exif_rotated.jpg"].path) as image:
        assert image.size == (420, 900) and image.getexif()[0x0112] == 6
    assert np.abs(_upright(_read(by_name, "exif_rotated.jpg")) - text_image("Rotated")).mean() < 4


def test_jpeg_claiming_65000(by_name: dict[str, CorpusFile]) -> None:
    data = _read(by_name, "jpeg_claims_65000.jpg")
    assert data.startswith(JPEG_MAGIC) and len(data) < 2000 and b"\xff\xd9" not in data
    sof = data.index(b"\xff\xc0")
    assert data[sof + 5 : sof + 9] == (65_000).to_bytes(2, "big") * 2


def test_unsupported_types(by_name: dict[str, CorpusFile]) -> None:
    assert _head(by_name, "page.gif").startswith(b"GIF8")
    webp = _head(by_name, "page.webp")
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    with zipfile.ZipFile(by_name["letter.docx"].path) as archive:
        assert "word/document.xml" in archive.namelist()
    assert _head(by_name, "photo.heic")[4:12] == b"ftypheic"


def test_zip_bomb_is_a_small_zip_of_large_zips(by_name: dict[str, CorpusFile]) -> None:
    path = by_name["zip_bomb.pdf"].path
    assert _head(by_name, "zip_bomb.pdf").startswith(b"PK\x03\x04") and path.stat().st_size < 1_000_000
    with zipfile.ZipFile(path) as outer:
        assert len(outer.namelist()) == 4
        inner = outer.read(outer.namelist()[0])  # a zip of ~100 KB; its own member is never inflated
    with zipfile.ZipFile(io.BytesIO(inner)) as archive:
        (member,) = archive.infolist()
        assert member.file_size == 100 * 1024 * 1024 and member.compress_size < 1_000_000


def test_too_big(by_name: dict[str, CorpusFile]) -> None:
    path = by_name["too_big.pdf"].path
    assert path.stat().st_size == TOO_BIG_SIZE == 101 * 1024 * 1024
    assert _head(by_name, "too_big.pdf", 9) == b"%PDF-1.7\n"
