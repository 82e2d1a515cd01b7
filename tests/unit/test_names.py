"""Client file names: display_name, download_name and download_headers (S3 of RELIABILITY.md §3.5)."""

from __future__ import annotations

import random
import re
import unicodedata
from urllib.parse import unquote

import pytest

from textlayer.store.names import MAX_NAME_BYTES, display_name, download_headers, download_name

LONG = "a" * 1000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # S3 path traversal: only the last component survives, for either separator.
        ("../../etc/passwd", "passwd"),
        ("..\\..\\x.pdf", "x.pdf"),
        ("/etc/x", "x"),
        ("C:\\Users\\me\\scan.png", "scan.png"),
        ("a/b\\c/d.pdf", "d.pdf"),
        ("dir/", "document"),
        ("..", "document"),
        (".", "document"),
        ("../..", "document"),
        # Controls: NUL and friends go, whitespace ones separate words.
        ("a\x00b.pdf", "ab.pdf"),
        ("a\x1bb\x7f.pdf", "ab.pdf"),
        ("line1\nline2.pdf", "line1 line2.pdf"),
        ("a\r\nSet-Cookie: x.pdf", "a Set-Cookie: x.pdf"),
        ("tab\there.pdf", "tab here.pdf"),
        ("a\u2028b\u2029c.pdf", "a b c.pdf"),
        # Bidi overrides and isolates, zero-width chars, BOM, tags.
        ("\u202efdp.exe", "fdp.exe"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("a\u2066b\u2069.pdf", "ab.pdf"),
        ("\ufeffscan.pdf", "scan.pdf"),
        ("z\u200bero\u200c\u200d.pdf", "zero.pdf"),
        ("a\U000e0041b.pdf", "ab.pdf"),
        # NFC: decomposed letters compose, also across a removed character.
        ("Cafe\u0301.pdf", "Caf\u00e9.pdf"),
        ("e\u200b\u0301.pdf", "\u00e9.pdf"),
        ("\u1100\u1161.pdf", "\uac00.pdf"),
        # Whitespace.
        ("  a   b  .pdf", "a b .pdf"),
        ("a\u00a0\u3000b.pdf", "a b.pdf"),
        ("   ", "document"),
        # Leading dots.
        (".hidden", "hidden"),
        ("...pdf", "pdf"),
        (". . x.pdf", "x.pdf"),
        ("a.b.c", "a.b.c"),
        ("trailing.", "trailing."),
        # Windows device names.
        ("CON", "_CON"),
        ("con", "_con"),
        ("CON.pdf", "_CON.pdf"),
        ("nul.tar.gz", "_nul.tar.gz"),
        ("PRN", "_PRN"),
        ("aux.txt", "_aux.txt"),
        ("COM1", "_COM1"),
        ("com9.pdf", "_com9.pdf"),
        ("LPT1", "_LPT1"),
        ("Lpt9.png", "_Lpt9.png"),
        ("COM\u00b9.pdf", "_COM\u00b9.pdf"),
        ("CON .txt", "_CON .txt"),
        ("../CON", "_CON"),
        ("CONSOLE.pdf", "CONSOLE.pdf"),
        ("COM10", "COM10"),
        ("LPT", "LPT"),
        ("my CON.pdf", "my CON.pdf"),
        ("_CON", "_CON"),
        ("con\u0131n$", "con\u0131n$"),
        # Normal letters and emoji are kept.
        ("\U0001f600 scan.png", "\U0001f600 scan.png"),
        ("Übersicht 2024.pdf", "Übersicht 2024.pdf"),
        ("報告書.pdf", "報告書.pdf"),
        ("تقرير.pdf", "تقرير.pdf"),
        ("a;b,c\"d'e%20.pdf", "a;b,c\"d'e%20.pdf"),
        # Empty.
        ("", "document"),
        (None, "document"),
        (b"", "document"),
        ("\x00\u202e\u200b", "document"),
    ],
)
def test_display_name(raw: str | bytes | None, expected: str) -> None:
    assert display_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"scan.pdf", "scan.pdf"),
        ("Übersicht.pdf".encode(), "Übersicht.pdf"),
        (b"bad\xff\xfe.pdf", "bad\ufffd\ufffd.pdf"),
        (b"\xc3(.pdf", "\ufffd(.pdf"),
        (b"../../\xe2\x80\xaeevil\x00.pdf", "evil.pdf"),
        (bytearray(b"x.png"), "x.png"),
    ],
)
def test_display_name_of_bytes(raw: bytes, expected: str) -> None:
    assert display_name(raw) == expected


def test_lone_surrogate_is_replaced() -> None:
    name = display_name(b"a\xffb.pdf".decode("utf-8", errors="surrogateescape"))
    assert name == "a\ufffdb.pdf"
    name.encode()


@pytest.mark.parametrize("raw", [5, 1.5, ["a"], object()])
def test_display_name_rejects_other_types(raw: object) -> None:
    with pytest.raises(TypeError):
        display_name(raw)  # type: ignore[arg-type]


def test_long_name_is_cut_to_the_limit() -> None:
    assert display_name(LONG) == "a" * MAX_NAME_BYTES


def test_long_name_keeps_its_extension() -> None:
    name = display_name(LONG + ".pdf")
    assert name == "a" * (MAX_NAME_BYTES - 4) + ".pdf"


def test_long_extension_is_not_kept() -> None:
    name = display_name("x." + "e" * 300)
    assert name == ("x." + "e" * 300)[:MAX_NAME_BYTES]


def test_long_name_with_a_16_char_extension() -> None:
    extension = "." + "e" * 16
    name = display_name(LONG + extension)
    assert name.endswith(extension)
    assert len(name.encode()) == MAX_NAME_BYTES


@pytest.mark.parametrize("char", ["é", "報", "\U0001f600"])
def test_truncation_never_splits_a_character(char: str) -> None:
    for pad in range(4):
        name = display_name("a" * pad + char * 300 + ".pdf")
        assert len(name.encode()) <= MAX_NAME_BYTES
        assert len(name.encode()) > MAX_NAME_BYTES - 4
        assert name.endswith(".pdf")
        assert set(name[pad:-4]) == {char}


def test_truncation_does_not_leave_a_trailing_space() -> None:
    name = display_name("a" * 250 + " bcdefghij.pdf")
    assert name == "a" * 250 + ".pdf"


def test_reserved_long_name_stays_within_the_limit() -> None:
    name = display_name("CON ." + "x" * 400)
    assert name.startswith("_CON")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert display_name(name) == name


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("scan.jpg", "scan.pdf"),
        ("report.pdf", "report.pdf"),
        ("document", "document.pdf"),
        ("archive.tar.gz", "archive.tar.pdf"),
        ("trailing.", "trailing.pdf"),
        ("", "document.pdf"),
        ("../../etc/passwd", "passwd.pdf"),
        ("\u202efdp.exe", "fdp.pdf"),
        ("CON.jpg", "_CON.pdf"),
        ("CON", "_CON.pdf"),
        ("\U0001f600 scan.png", "\U0001f600 scan.pdf"),
    ],
)
def test_download_name(display: str, expected: str) -> None:
    assert download_name(display) == expected


def test_download_name_with_other_suffix() -> None:
    assert download_name("scan.jpg", suffix=".txt") == "scan.txt"


def test_download_name_of_a_long_name_keeps_the_suffix() -> None:
    name = download_name(display_name(LONG + ".jpg"))
    assert name.endswith(".pdf")
    assert len(name.encode()) <= MAX_NAME_BYTES


def test_download_name_cleans_a_hostile_suffix() -> None:
    assert download_name("scan.jpg", suffix="/../\r\nx") == "x"


def _disposition(headers: dict[str, str]) -> tuple[str, str]:
    match = re.fullmatch(
        r"attachment; filename=\"([^\"]*)\"; filename\*=UTF-8''([A-Za-z0-9%._~-]*)", headers["Content-Disposition"]
    )
    assert match, headers["Content-Disposition"]
    return match[1], unquote(match[2], errors="strict")


def test_download_headers() -> None:
    headers = download_headers("scan.jpg")
    assert headers == {
        "Content-Type": "application/pdf",
        "Content-Disposition": "attachment; filename=\"scan.pdf\"; filename*=UTF-8''scan.pdf",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    }


@pytest.mark.parametrize(
    ("display", "fallback", "name"),
    [
        ("a\r\nSet-Cookie: x.pdf", "a Set-Cookie: x.pdf", "a Set-Cookie: x.pdf"),
        ("a\rb\nc\x00d.pdf", "a b cd.pdf", "a b cd.pdf"),
        ('x"; filename="evil.exe', "x__ filename=_evil.pdf", 'x"; filename="evil.pdf'),
        ("a\\b.pdf", "b.pdf", "b.pdf"),
        ("a,b;c.pdf", "a_b_c.pdf", "a,b;c.pdf"),
        ("100%25.pdf", "100_25.pdf", "100%25.pdf"),
        ("Übersicht.pdf", "_bersicht.pdf", "Übersicht.pdf"),
        ("\U0001f600 scan.png", "_ scan.pdf", "\U0001f600 scan.pdf"),
        ("\u202efdp.exe", "fdp.pdf", "fdp.pdf"),
        ("報告.jpg", "__.pdf", "報告.pdf"),
    ],
)
def test_download_headers_disposition(display: str, fallback: str, name: str) -> None:
    headers = download_headers(display)
    assert _disposition(headers) == (fallback, name)
    for value in headers.values():
        assert not set(value) & {"\r", "\n", "\x00"}


def test_download_headers_other_type() -> None:
    headers = download_headers("scan.jpg", suffix=".txt", content_type="text/plain; charset=utf-8")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert _disposition(headers) == ("scan.txt", "scan.txt")


@pytest.mark.parametrize(
    "content_type", ["", "application/pdf\r\nSet-Cookie: x", "text/html\n", "pdf", "application/pdf\x00", "tëxt/plain"]
)
def test_download_headers_rejects_unsafe_content_type(content_type: str) -> None:
    with pytest.raises(ValueError, match="content type"):
        download_headers("scan.pdf", content_type=content_type)


# Property checks over random names built from the characters that cause trouble.
_POOLS = [
    "abcXYZ019 -_()[]",
    "./\\",
    "...//\\\\",
    "\x00\t\n\r\x0b\x0c\x1b\x1f\x7f\x85\x9f",
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u00ad\U000e0041",
    " \u00a0\u2000\u2028\u2029\u3000\u1680",
    "\u0301\u0308\u0328\u0338\u0344\u0345\u1100\u1161\u11a8\uac00",
    "éÅ報告ı\u0131\u037e\u1fef\u212a\u2126",
    "\U0001f600\U0001f468\U0001f3fb\ufe0f\U0001f1e9\U0001f1ea",
    "\"';,%:*?<>|$",
    "\ud800\udc00\udfff",
]
_WORDS = ["CON", "con", "LPT1", "com\u00b9", "NUL", "aux", ".pdf", ".tar.gz", "..", "../", "..\\", ".", "x" * 300]


def _random_name(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(0, 12)):
        roll = rng.random()
        if roll < 0.15:
            parts.append(rng.choice(_WORDS))
        elif roll < 0.25:
            parts.append("".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(1, 8))))
        else:
            pool = rng.choice(_POOLS)
            parts.append("".join(rng.choice(pool) for _ in range(rng.randrange(1, 60))))
    return "".join(parts)


def _random_names() -> list[str | bytes]:
    rng = random.Random(20240917)
    names: list[str | bytes] = [_random_name(rng) for _ in range(400)]
    names += [rng.randbytes(rng.randrange(0, 400)) for _ in range(100)]
    names += [_random_name(rng).encode("utf-8", errors="surrogatepass") for _ in range(100)]
    return names


RANDOM_NAMES = _random_names()


def _assert_safe(name: str) -> None:
    assert name
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert "/" not in name
    assert "\\" not in name
    assert not name.startswith(".")
    assert name == name.strip()
    assert "  " not in name
    assert not {unicodedata.category(char) for char in name} & {"Cc", "Cf", "Cs", "Zl", "Zp"}
    assert unicodedata.normalize("NFC", name) == name


def test_random_names_are_safe_and_stable() -> None:
    for raw in RANDOM_NAMES:
        name = display_name(raw)
        _assert_safe(name)
        assert display_name(name) == name, raw


def test_random_download_names_and_headers_are_safe() -> None:
    for raw in RANDOM_NAMES:
        name = download_name(display_name(raw))
        _assert_safe(name)
        assert name.endswith(".pdf")
        headers = download_headers(display_name(raw))
        for value in headers.values():
            assert not set(value) & {"\r", "\n", "\x00"}, raw
        fallback, decoded = _disposition(headers)
        assert all(" " <= char <= "~" for char in fallback)
        assert not set(fallback) & set('"\\;,%')
        assert decoded == name
        assert len(fallback) == len(name)
