"""Deterministic generator of the hostile-document corpus (design/RELIABILITY.md, section 4 (c)).

Every file is generated here, never committed and never taken from a third party. The bombs are
written by hand with the deflate stream built from one repeated, fully flushed block, so the
1.5 GB flate bomb costs two compressions of 10 MB and the whole corpus builds in a few seconds.

Bytes are identical from run to run except in the two pypdf-encrypted PDFs, whose salts and
AES IVs pypdf draws from ``secrets`` on purpose.
"""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.actions import JavaScript, PageTrigger
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

SUCCEEDED = "SUCCEEDED"
SUCCEEDED_WITH_ERRORS = "SUCCEEDED_WITH_ERRORS"
FAILED = "FAILED"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
PDF_MAGIC = b"%PDF-"

# Magic numbers of every format a sniffer might recognise; random garbage must start with none of them.
KNOWN_MAGICS: tuple[bytes, ...] = (
    PDF_MAGIC,
    PNG_SIGNATURE,
    JPEG_MAGIC,
    b"II*\x00",
    b"MM\x00*",
    b"GIF8",
    b"RIFF",
    b"PK\x03\x04",
    b"BM",
    b"\x1f\x8b",
    b"<",
)

HOSTILE_NAMES: tuple[str, ...] = (
    "../../etc/passwd",
    "..\\..\\x.pdf",
    "/etc/x",
    "a\x00b.pdf",
    ("long-" * 200)[:996] + ".png",
    "\u202efdp.exe",
    "CON",
    "\N{GRINNING FACE} scan.png",
)
"""Row 28: names a client may submit; each entry points at the same small text PNG."""

BOMB_CHUNK = 10_000_000
"""Uncompressed size of the one deflate block every flate bomb repeats."""

TEXT_DPI = 300
"""Text images are embedded in PDFs at this resolution, the service's rendering dpi: 1 image px = 1 page px."""

TOO_BIG_SIZE = 101 * 1024 * 1024

_PDF_HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # fixed member timestamps keep the archives byte-stable


@dataclass(frozen=True)
class CorpusFile:
    """One hostile upload and the outcomes the service may end it with."""

    row: int
    """Row number in design/RELIABILITY.md section 4 (c)."""
    name: str
    """The file name the client submits (may be hostile, e.g. ``../../etc/passwd``)."""
    path: Path
    """Where the bytes are, inside the directory given to :func:`build_corpus`."""
    states: frozenset[str]
    """Acceptable final job states: a subset of SUCCEEDED, SUCCEEDED_WITH_ERRORS and FAILED."""
    reasons: frozenset[str | None]
    """Acceptable reason codes; None means no reason (a success)."""
    pages: int | None = None
    """Pages the searchable output must have when the job succeeds (None: not checked)."""
    text: str | None = None
    """A word OCR must find in the output when the job succeeds (None: not checked)."""
    note: str = ""


def _ok(pages: int | None = 1, text: str | None = None) -> dict[str, object]:
    return {"states": frozenset({SUCCEEDED}), "reasons": frozenset({None}), "pages": pages, "text": text}


def _fails(*reasons: str) -> dict[str, object]:
    return {"states": frozenset({FAILED}), "reasons": frozenset(reasons)}


# ---------------------------------------------------------------------------------------------
# Text pages: a few large words, like the service's own warm-up page, so OCR is cheap and sure.
# ---------------------------------------------------------------------------------------------


def text_image(word: str) -> np.ndarray:
    """A 900 x 420 uint8 gray page: ``word`` on the first line, a short second line below it."""
    page = np.full((420, 900), 255, np.uint8)
    for row, line in enumerate((word, "Reference 4471 checked", "Sample page")):
        cv2.putText(page, line, (30, 90 + row * 110), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 20, 3, cv2.LINE_AA)
    return page


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png(image: np.ndarray) -> bytes:
    return _encode(Image.fromarray(image), "PNG")


def _jpeg(image: np.ndarray) -> bytes:
    return _encode(Image.fromarray(image), "JPEG", quality=90)


def _scan_pdf(images: Sequence[np.ndarray]) -> bytes:
    """A PDF of full-page images and no text layer: what a scanner produces."""
    buffer = io.BytesIO()
    # invariant=1 drops timestamps and random ids, so the file is byte-for-byte stable.
    pdf = canvas.Canvas(buffer, invariant=1)
    for image in images:
        height, width = image.shape[:2]
        size = (width * 72 / TEXT_DPI, height * 72 / TEXT_DPI)
        pdf.setPageSize(size)
        pdf.drawImage(ImageReader(Image.fromarray(image)), 0, 0, width=size[0], height=size[1])
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# A tiny PDF writer, for the files no library will write (loops, lies, bombs).
# ---------------------------------------------------------------------------------------------


def _stream_object(data: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(data), entries, data)


def _pdf(objects: Sequence[bytes], *, prev_to_self: bool = False) -> bytes:
    """Objects 1..n (object 1 the catalog), a classic xref table and trailer; offsets are exact."""
    out = bytearray(_PDF_HEADER)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    prev = b" /Prev %d" % xref if prev_to_self else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, prev, xref)
    return bytes(out)


def _blank_pages_pdf(count: int, width: float, height: float) -> bytes:
    """``count`` blank pages in one flat page tree; 5 000 pages take a few milliseconds."""
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(count))
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Resources << >> >>" % (width, height)
    return _pdf(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count)]
        + [page] * count
    )


_HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _one_page_pdf(page_extra: bytes, content: bytes, extra_objects: Sequence[bytes] = ()) -> bytes:
    """Catalog 1, pages 2, page 3, content 4, font 5, then ``extra_objects`` from 6 on."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >>%s >>" % page_extra,
            _stream_object(content),
            _HELVETICA,
            *extra_objects,
        ]
    )


def _text_content(*lines: str) -> bytes:
    body = b"".join(b"(%s) Tj 0 -40 Td " % line.encode("ascii") for line in lines)
    return b"BT /F1 28 Tf 30 140 Td %sET" % body


# ---------------------------------------------------------------------------------------------
# Bombs: a deflate stream that repeats one fully flushed block, written straight to disk.
# ---------------------------------------------------------------------------------------------


def repeated_deflate(unit: bytes, times: int, *, raw: bool = False) -> Iterator[bytes]:
    """A zlib (or raw deflate) stream of ``unit * times`` at level 9, without compressing it ``times`` times.

    Z_FULL_FLUSH resets the compressor, so every block after the first compresses to the same
    bytes: compress the unit twice, then repeat the second block. The Adler-32 is chained over
    the real data, as a decompressor will check it.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15 if raw else 15)
    first = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    header = b"" if raw else first[:2]
    if first[len(header) :] != block:
        raise RuntimeError("zlib did not reset on Z_FULL_FLUSH; cannot build the bomb by repetition")
    ending = compressor.flush(zlib.Z_FINISH)  # the final empty block, then (zlib only) a checksum of 2 units
    yield header
    checksum = 1
    for _ in range(times):
        checksum = zlib.adler32(unit, checksum)
        yield block
    if raw:
        yield ending
    else:
        yield ending[:-4] + checksum.to_bytes(4, "big")


def _write_flate_bomb_pdf(path: Path, size: int) -> None:
    """One page whose content stream inflates to ``size`` bytes of spaces; valid xref, small file."""
    if size % BOMB_CHUNK:
        raise ValueError(f"bomb size must be a multiple of {BOMB_CHUNK}")
    data = b"".join(repeated_deflate(b" " * BOMB_CHUNK, size // BOMB_CHUNK))
    path.write_bytes(
        _pdf(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << >> >>",
                _stream_object(data, b" /Filter /FlateDecode"),
            ]
        )
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _png_header(width: int, height: int, bit_depth: int, color_type: int) -> bytes:
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([bit_depth, color_type, 0, 0, 0])
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr)


def _write_blank_png(path: Path, width: int, height: int, bit_depth: int) -> None:
    """A grayscale PNG of white rows (filter byte 0), its IDAT streamed in chunks."""
    row = b"\x00" + b"\xff" * ((width * bit_depth + 7) // 8)
    rows_per_unit = next(n for n in (1000, 500, 250, 100, 50, 10, 1) if height % n == 0)
    with path.open("wb") as out:
        out.write(_png_header(width, height, bit_depth, 0))
        for piece in repeated_deflate(row * rows_per_unit, height // rows_per_unit):
            if piece:
                out.write(_png_chunk(b"IDAT", piece))
        out.write(_png_chunk(b"IEND", b""))


def _fake_header_png(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` while its IDAT holds a few bytes."""
    return _png_header(width, height, 8, 0) + _png_chunk(b"IDAT", zlib.compress(bytes(64))) + _png_chunk(b"IEND", b"")


def _zip_bomb() -> bytes:
    """42.zip-style: four copies of a zip of 100 MiB of zeros, nested in a zip; ~0.2 MB on disk."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        info = zipfile.ZipInfo("zeros.bin", date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as member:
            zeros = bytes(1024 * 1024)
            for _ in range(100):
                member.write(zeros)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for index in range(4):
            archive.writestr(zipfile.ZipInfo(f"{index}.zip", date_time=_ZIP_TIME), inner.getvalue())
    return outer.getvalue()


# ---------------------------------------------------------------------------------------------
# Hand-made structures: loops, nesting, lying headers.
# ---------------------------------------------------------------------------------------------


def _garbage(seed: int = 2, size: int = 4096) -> bytes:
    data = bytearray(random.Random(seed).randbytes(size))
    while any(data.startswith(magic) for magic in KNOWN_MAGICS):
        data[0] = (data[0] + 1) % 256  # deterministic nudge off any recognised magic
    return bytes(data)


def _xref_loop_pdf() -> bytes:
    """Pages 2 -> pages 3 -> pages 2 (no leaf page), and the trailer's /Prev points at its own xref."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
        ],
        prev_to_self=True,
    )


def _deep_nesting_pdf(depth: int = 10_000) -> bytes:
    """One page whose dictionary holds, inline, arrays nested ``depth`` deep."""
    return _one_page_pdf(b" /Deep " + b"[" * depth + b"]" * depth, _text_content("Nested"))


def _count0_pdf() -> bytes:
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])


def _searchable_pdf(sentence: str) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(500, 150), invariant=1)
    pdf.setFont("Helvetica", 16)
    pdf.drawString(30, 80, sentence)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _clone(pdf: bytes) -> PdfWriter:
    return PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))


def _written(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _encrypted_pdf(pdf: bytes, user_password: str, owner_password: str, algorithm: str) -> bytes:
    writer = _clone(pdf)
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm=algorithm)
    return _written(writer)


def _active_content_pdf(pdf: bytes) -> bytes:
    """Document JavaScript, an /OpenAction script, an attachment, a /Launch link and a page /AA script."""
    writer = _clone(pdf)
    root = writer.root_object
    # What add_js used to write (pypdf 7 removed it): a document-level JavaScript name tree.
    script = writer._add_object(JavaScript("app.alert('document script');"))
    root[NameObject("/Names")] = DictionaryObject(
        {
            NameObject("/JavaScript"): DictionaryObject(
                {NameObject("/Names"): ArrayObject([TextStringObject("js"), script])}
            )
        }
    )
    root[NameObject("/OpenAction")] = writer._add_object(JavaScript("app.alert('open action');"))
    writer.add_attachment("payload.exe", b"MZ this is not really a program\n")
    page = writer.pages[0]
    launch = DictionaryObject(
        {
            NameObject("/S"): NameObject("/Launch"),
            NameObject("/F"): TextStringObject("C:\\Windows\\System32\\calc.exe"),
        }
    )
    link = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([FloatObject(0), FloatObject(0), FloatObject(100), FloatObject(40)]),
            NameObject("/Border"): ArrayObject([NumberObject(0), NumberObject(0), NumberObject(0)]),
            NameObject("/A"): launch,
        }
    )
    page[NameObject("/Annots")] = ArrayObject([writer._add_object(link)])
    page.add_action(PageTrigger.OPEN, JavaScript("app.alert('page open');"))
    return _written(writer)


# ---------------------------------------------------------------------------------------------
# A signed PDF with a real detached CMS signature, from a key derived from a fixed seed.
# ---------------------------------------------------------------------------------------------

_SMALL_PRIMES = tuple(p for p in range(3, 2000, 2) if all(p % d for d in range(3, int(p**0.5) + 1, 2)))


def _probable_prime(n: int, rng: random.Random, rounds: int = 24) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(rng: random.Random, bits: int, e: int) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1  # top two bits set: n has exactly 2*bits bits
        if (candidate - 1) % e and _probable_prime(candidate, rng):
            return candidate


def signing_key(seed: int = 7, bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key derived from ``seed``: the same key, and so the same signature, on every run.

    The default seed is one whose primes turn up early (0.2 s in pure Python rather than ~1 s).
    """
    rng = random.Random(seed)
    e = 65537
    p = _prime(rng, bits // 2, e)
    q = _prime(rng, bits // 2, e)
    while q == p:
        q = _prime(rng, bits // 2, e)
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


def _test_certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "textlayer hostile corpus test signer")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(22)
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2044, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())  # RSA PKCS#1 v1.5: deterministic
    )


_SIGN_OPTIONS = (
    pkcs7.PKCS7Options.DetachedSignature,
    pkcs7.PKCS7Options.Binary,  # sign the bytes as they are, not as S/MIME text with CRLF line ends
    pkcs7.PKCS7Options.NoAttributes,  # no signing time, so the signature is the same on every run
)
_SIGNATURE_HEX = 16384  # room reserved for the DER signature, in hex digits
_BYTE_RANGE_SLOT = b"/ByteRange [0 0000000000 0000000000 0000000000]"


def _signed_pdf() -> bytes:
    """A one-page PDF signed adbe.pkcs7.detached over its /ByteRange, like Acrobat writes it."""
    signature = (
        b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached %s "
        b"/Contents <%s> /Name (Test Signer) /M (D:20240101000000Z) /Reason (Approval) >>"
        % (_BYTE_RANGE_SLOT, b"0" * _SIGNATURE_HEX)
    )
    field = b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) /F 132 /Rect [0 0 0 0] /P 3 0 R /V 7 0 R >>"
    data = bytearray(
        _pdf(
            [
                b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [6 0 R] /SigFlags 3 >> >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R "
                b"/Resources << /Font << /F1 5 0 R >> >> /Annots [6 0 R] >>",
                _stream_object(_text_content("Signed contract")),
                _HELVETICA,
                field,
                signature,
            ]
        )
    )
    start = data.index(b"/Contents <", data.index(b"/Type /Sig")) + len(b"/Contents ")
    end = start + 2 + _SIGNATURE_HEX  # the excluded range is the hex string with its angle brackets
    byte_range = b"/ByteRange [0 %d %d %d]" % (start, end, len(data) - end)
    slot = data.index(_BYTE_RANGE_SLOT)
    data[slot : slot + len(_BYTE_RANGE_SLOT)] = byte_range.ljust(len(_BYTE_RANGE_SLOT))
    key = signing_key()
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(bytes(data[:start] + data[end:]))
        .add_signer(_test_certificate(key), key, hashes.SHA256())
        .sign(serialization.Encoding.DER, _SIGN_OPTIONS)
    )
    if len(der) * 2 > _SIGNATURE_HEX:
        raise RuntimeError(f"signature of {len(der)} bytes does not fit the reserved /Contents")
    data[start + 1 : end - 1] = der.hex().upper().encode("ascii").ljust(_SIGNATURE_HEX, b"0")
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# Images that must decode: CMYK, 16-bit, palette with transparency, EXIF rotation.
# ---------------------------------------------------------------------------------------------


def _cmyk_jpeg(image: np.ndarray) -> bytes:
    return _encode(Image.fromarray(image).convert("CMYK"), "JPEG", quality=90)


def _gray16_png(image: np.ndarray) -> bytes:
    return _encode(Image.fromarray(image.astype(np.uint16) * 257), "PNG")


def _palette_alpha_png(image: np.ndarray) -> bytes:
    """Palette PNG whose paper is a transparent *black* entry: it reads only when alpha is composited on white."""
    picture = Image.fromarray(image).convert("P")
    palette = [level for gray in range(256) for level in (gray, gray, gray)]
    palette[255 * 3 : 256 * 3] = [0, 0, 0]
    picture.putpalette(palette)
    alpha = bytes([255] * 255 + [0])
    return _encode(picture, "PNG", transparency=alpha)


def _exif_rotated_jpeg(image: np.ndarray) -> bytes:
    """Pixels stored turned 90 degrees anticlockwise; Orientation=6 says turn them clockwise to view."""
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = np.ascontiguousarray(np.rot90(image, k=1))
    return _encode(Image.fromarray(stored), "JPEG", quality=90, exif=exif.tobytes())


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each header segment up to and including SOS."""
    offset = 2
    while offset < len(data):
        marker = data[offset + 1]
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        yield marker, offset, offset + 2 + length
        if marker == 0xDA:
            return
        offset += 2 + length


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG with SOF0 edited to claim ``width`` x ``height``, cut just after the scan header."""
    data = bytearray(_jpeg(np.full((64, 64), 255, np.uint8)))
    sof = sos_end = None
    for marker, start, end in _jpeg_segments(bytes(data)):
        if marker == 0xC0:
            sof = start
        if marker == 0xDA:
            sos_end = end
    if sof is None or sos_end is None:
        raise RuntimeError("Pillow wrote no baseline SOF0/SOS")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data[: sos_end + 16])


# ---------------------------------------------------------------------------------------------
# Other formats, refused by type.
# ---------------------------------------------------------------------------------------------


def _docx() -> bytes:
    members = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="xml" ContentType="application/xml"/></Types>',
        "word/document.xml": '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
        'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Letter</w:t></w:r></w:p></w:body></w:document>',
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), text)
    return buffer.getvalue()


def _heic() -> bytes:
    """An ISO-BMFF ``ftyp`` box naming HEIC, a ``meta`` box header, then junk."""
    ftyp = b"heic" + (0).to_bytes(4, "big") + b"mif1heic"
    boxes = (8 + len(ftyp)).to_bytes(4, "big") + b"ftyp" + ftyp
    junk = random.Random(26).randbytes(2048)
    return boxes + (8 + len(junk)).to_bytes(4, "big") + b"meta" + junk


def _write_too_big(path: Path) -> None:
    """TOO_BIG_SIZE bytes: a PDF header, then one long comment (sparse zeros) and %%EOF."""
    tail = b"\n%%EOF\n"
    with path.open("wb") as out:
        out.write(_PDF_HEADER + b"%")
        out.truncate(TOO_BIG_SIZE - len(tail))  # sparse: costs no disk blocks and no time
        out.seek(TOO_BIG_SIZE - len(tail))
        out.write(tail)


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------


def build_corpus(directory: Path) -> list[CorpusFile]:
    """Write every hostile file into ``directory`` (under safe names) and describe the expected outcomes.

    Args:
        directory: an existing, writable directory; nothing is written outside it.

    Returns:
        One entry per upload, in row order of design/RELIABILITY.md section 4 (c); row 29
        (slow upload) needs an HTTP client and has no file.
    """
    directory = Path(directory)
    corpus: list[CorpusFile] = []
    written: dict[str, Path] = {}

    def put(row: int, disk_name: str, data: bytes | None = None) -> Path:
        path = directory / f"{row:02d}-{disk_name}"
        if path.name in written:
            raise ValueError(f"two files named {path.name}")
        if data is not None:
            path.write_bytes(data)
        written[path.name] = path
        return path

    def add(row: int, name: str, path: Path, note: str = "", **outcome: object) -> None:
        corpus.append(CorpusFile(row=row, name=name, path=path, note=note, **outcome))  # type: ignore[arg-type]

    def simple(row: int, name: str, data: bytes, note: str = "", **outcome: object) -> None:
        add(row, name, put(row, name, data), note, **outcome)

    simple(1, "zero.pdf", b"", "0 bytes", **_fails("empty_file"))
    simple(2, "garbage.pdf", _garbage(), "4 KiB of seeded random bytes, no known magic", **_fails("unsupported_type"))
    two_pages = _scan_pdf([text_image("Truncated"), text_image("Truncated")])
    simple(
        3,
        "truncated.pdf",
        two_pages[: len(two_pages) // 2],
        "a valid 2-page scan PDF cut at 50 %: no catalog, page tree or xref left",
        **_fails("corrupt_pdf"),
    )
    simple(
        4,
        "encrypted_user.pdf",
        _encrypted_pdf(_scan_pdf([text_image("Secret")]), "hostile-user", "hostile-owner", "AES-256"),
        "AES-256, user password 'hostile-user' (pypdf salts and IVs are random: bytes differ per build)",
        **_fails("encrypted_pdf"),
    )
    simple(
        5,
        "encrypted_owner_only.pdf",
        _encrypted_pdf(_scan_pdf([text_image("Quarterly")]), "", "hostile-owner", "AES-128"),
        "AES-128, empty user password, owner password 'hostile-owner'; output must be unencrypted",
        **_ok(1, "Quarterly"),
    )
    simple(6, "pages5000.pdf", _blank_pages_pdf(5000, 100, 100), "5 000 blank 100 pt pages", **_fails("too_many_pages"))
    simple(7, "pages2000.pdf", _blank_pages_pdf(2000, 100, 100), "2 000 blank 100 pt pages: at the limit", **_ok(2000))
    simple(
        8,
        "huge_mediabox.pdf",
        _blank_pages_pdf(1, 14_400, 14_400),
        "one blank 14 400 x 14 400 pt page: 3.6 Gpx at 300 dpi, must be rendered at a reduced dpi",
        **_ok(1),
    )
    path = put(9, "flate_bomb_200mb.pdf")
    _write_flate_bomb_pdf(path, 200_000_000)
    add(
        9,
        "flate_bomb_200mb.pdf",
        path,
        "content stream: 200 000 000 bytes of spaces, zlib level 9, valid xref",
        states=frozenset({SUCCEEDED, FAILED}),
        reasons=frozenset({None, "decompression_limit", "parse_crashed"}),
        pages=1,
    )
    path = put(10, "flate_bomb_1500mb.pdf")
    _write_flate_bomb_pdf(path, 1_500_000_000)
    add(
        10,
        "flate_bomb_1500mb.pdf",
        path,
        "content stream: 1 500 000 000 bytes of spaces, zlib level 9, valid xref",
        **_fails("parse_crashed", "decompression_limit"),
    )
    path = put(11, "png_bomb_400mpx.png")
    _write_blank_png(path, 20_000, 20_000, 1)
    add(11, "png_bomb_400mpx.png", path, "1-bit gray 20 000 x 20 000", **_fails("image_too_large"))
    path = put(12, "png_108mpx.png")
    _write_blank_png(path, 12_000, 9_000, 8)
    add(
        12,
        "png_108mpx.png",
        path,
        "8-bit gray 12 000 x 9 000: Pillow only warns at this size",
        **_fails("image_too_large"),
    )
    simple(
        13,
        "png_fake_header_10gpx.png",
        _fake_header_png(100_000, 100_000),
        "IHDR claims 100 000 x 100 000; the IDAT holds 64 bytes",
        **_fails("image_too_large"),
    )
    simple(
        14,
        "png_named.pdf",
        _png(text_image("Invoice")),
        "PNG bytes named .pdf: the type comes from the magic bytes, so it is processed as a PNG",
        **_ok(1, "Invoice"),
    )
    simple(
        15,
        "jpeg_pdf_polyglot.jpg",
        _jpeg(text_image("Receipt")) + _blank_pages_pdf(3, 200, 200),
        "a JPEG with a 3-page PDF after its EOI: must be processed strictly as the JPEG",
        **_ok(1, "Receipt"),
    )
    simple(
        16,
        "html_pdf_polyglot.pdf",
        b"<html><script>alert(1)</script></html>\n" + _scan_pdf([text_image("Polyglot")]),
        "HTML, then a valid PDF: PDF libraries open it, but %PDF- is not at offset 0",
        **_fails("unsupported_type"),
    )
    frames = [Image.new("L", (200, 200), 255)] * 1000
    simple(
        17,
        "tiff_1000_frames.tif",
        _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate"),
        "1 000 white 200 x 200 frames",
        **_ok(1000),
    )
    simple(
        18,
        "active_content.pdf",
        _active_content_pdf(_scan_pdf([text_image("Contract")])),
        "document JavaScript name tree, /OpenAction JavaScript, embedded file, Link with /Launch, page /AA; "
        "the output must carry none of them",
        **_ok(1, "Contract"),
    )
    simple(
        19,
        "xref_loop.pdf",
        _xref_loop_pdf(),
        "page tree 2 -> 3 -> 2 with no leaf page, a lying /Count 1 (pdfium reports 1 page, then cannot load it); "
        "the trailer /Prev points at its own xref",
        **_fails("corrupt_pdf", "no_pages", "parse_crashed"),
    )
    simple(
        19,
        "deep_nesting.pdf",
        _deep_nesting_pdf(),
        "the page dictionary holds arrays nested 10 000 deep, inline",
        states=frozenset({SUCCEEDED, FAILED}),
        reasons=frozenset({None, "corrupt_pdf", "parse_crashed"}),
        pages=1,
    )
    simple(
        20,
        "count0.pdf",
        _count0_pdf(),
        "/Pages with /Count 0 and empty /Kids; pdfium refuses to load a document without pages "
        "(FPDF_LoadDocument fails with error code 0, 'Success'), so no_pages must be told from corrupt_pdf",
        **_fails("no_pages"),
    )
    simple(
        21,
        "searchable.pdf",
        _searchable_pdf("Searchable documents keep their original text layer"),
        "already has a text layer: not OCRed again, and the text layer must not be doubled",
        **_ok(1, "Searchable"),
    )
    simple(
        22,
        "signed.pdf",
        _signed_pdf(),
        "adbe.pkcs7.detached: a real detached CMS signature (RSA-2048, SHA-256, no signed attributes) over "
        "the /ByteRange, by a self-signed certificate from a key derived from a fixed seed",
        **_fails("signed_pdf"),
    )
    simple(23, "cmyk.jpg", _cmyk_jpeg(text_image("Magenta")), "CMYK JPEG (Adobe APP14)", **_ok(1, "Magenta"))
    simple(23, "gray16.png", _gray16_png(text_image("Sixteen")), "16-bit grayscale PNG", **_ok(1, "Sixteen"))
    simple(
        23,
        "palette_alpha.png",
        _palette_alpha_png(text_image("Palette")),
        "palette PNG whose paper is a fully transparent black entry (tRNS): must be composited on white",
        **_ok(1, "Palette"),
    )
    simple(
        23,
        "exif_rotated.jpg",
        _exif_rotated_jpeg(text_image("Rotated")),
        "pixels stored 420 x 900 (turned anticlockwise), EXIF Orientation=6: upright only when honoured",
        **_ok(1, "Rotated"),
    )
    simple(
        24,
        "jpeg_claims_65000.jpg",
        _jpeg_claiming(65_000, 65_000),
        "SOF0 edited to 65 000 x 65 000, data cut after the scan header",
        **_fails("image_too_large"),
    )
    unsupported = {
        "page.gif": _encode(Image.fromarray(text_image("Animated")), "GIF"),
        "page.webp": _encode(Image.fromarray(text_image("Webpage")), "WEBP", lossless=True),
        "letter.docx": _docx(),
        "photo.heic": _heic(),
    }
    for name, data in unsupported.items():
        simple(25, name, data, "a format the service does not accept", **_fails("unsupported_type"))
    simple(
        26,
        "zip_bomb.pdf",
        _zip_bomb(),
        "a zip of four zips, each of 100 MiB of zeros, named .pdf: never decompressed",
        **_fails("unsupported_type"),
    )
    path = put(27, "too_big.pdf")
    _write_too_big(path)
    add(
        27,
        "too_big.pdf",
        path,
        "101 MiB: a PDF header and one long comment (a sparse file); refused by size before it is read",
        **_fails("file_too_large"),
    )
    path = put(28, "filename.png", _png(text_image("Filename")))
    for name in HOSTILE_NAMES:
        add(28, name, path, "hostile file name; stored by job id, displayed sanitised", **_ok(1, "Filename"))
    dup = _png(text_image("Duplicate"))
    for name in ("dup-1.png", "dup-2.png"):
        simple(30, name, dup, "the same bytes uploaded twice", **_ok(1, "Duplicate"))
    return corpus


if __name__ == "__main__":  # python -m tests.hostile_corpus DIR: build and list the corpus
    import sys
    import time

    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    built = build_corpus(target)
    took = time.perf_counter() - began
    for item in built:
        print(f"{item.row:2d} {item.name[:40]!r:44} {item.path.stat().st_size:>11,} {sorted(item.states)}")
    print(f"{len(built)} uploads, rows {sorted({item.row for item in built})}, built in {took:.1f} s")
