"""``-l/--language``: which languages (Tesseract's codes) a model set can read, judged from its character dictionary.

The recognizer reads every script its dictionary holds at once, so a language changes nothing in how a page is
read; asking for one the model set cannot read is refused with the list of those it can (OCRmyPDF's
"missing dependency", exit status 3). Reads the dictionary file only: no model, no parser.
"""

from __future__ import annotations

import functools

from textlayer.errors import ModelError
from textlayer.worker.manifest import load_manifest, read_verified

LANGUAGES: dict[str, tuple[str, str]] = {
    "eng": ("English", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "deu": ("German", "äöüßÄÖÜ"),
    "fra": ("French", "àâæçéèêëîïôœùûüÿÀÂÇÉÈÊËÎÏÔŒÙÛÜ"),
    "spa": ("Spanish", "áéíñóúüÁÉÍÑÓÚ"),
    "ita": ("Italian", "àèéìíîòóùúÀÈÉÌÒÙ"),
    "por": ("Portuguese", "ãõâêôáéíóúàçÃÕÂÊÔÁÉÍÓÚÇ"),
    "nld": ("Dutch", "éëïóöüĳ"),
    "dan": ("Danish", "æøåÆØÅ"),
    "nor": ("Norwegian", "æøåÆØÅ"),
    "swe": ("Swedish", "åäöÅÄÖ"),
    "fin": ("Finnish", "åäöÅÄÖ"),
    "isl": ("Icelandic", "áðéíóúýþæöÁÐÉÍÓÚÝÞÆÖ"),
    "pol": ("Polish", "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ"),
    "ces": ("Czech", "áčďéěíňóřšťúůýžÁČĎÉĚÍŇÓŘŠŤÚŮÝŽ"),
    "slk": ("Slovak", "áäčďéíĺľňóôŕšťúýžÁÄČĎÉÍĹĽŇÓÔŔŠŤÚÝŽ"),
    "slv": ("Slovenian", "čšžČŠŽ"),
    "hrv": ("Croatian", "čćđšžČĆĐŠŽ"),
    "hun": ("Hungarian", "áéíóöőúüűÁÉÍÓÖŐÚÜŰ"),
    "ron": ("Romanian", "ăâîșțĂÂÎȘȚ"),
    "tur": ("Turkish", "çğıİöşüÇĞÖŞÜ"),
    "cat": ("Catalan", "àçèéíïòóúüÀÇÈÉÍÏÒÓÚÜ"),
    "lat": ("Latin", "abcdefghijklmnopqrstuvwxyz"),
    "ell": ("Greek", "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ"),
    "chi_sim": ("Chinese (simplified)", "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"),
    "chi_tra": ("Chinese (traditional)", "的一是不了人我在有他這中大來上國個到說們為子和你地出道也時年"),
    "jpn": ("Japanese", "あいうえおかきくけこアイウエオカキクケコ日本語"),
    "rus": ("Russian", "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"),
    "ukr": ("Ukrainian", "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя"),
    "bul": ("Bulgarian", "абвгдежзийклмнопрстуфхцчшщъьюя"),
    "kor": ("Korean", "가나다라마바사아자차카타파하한국어"),
    "ara": ("Arabic", "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"),
    "heb": ("Hebrew", "אבגדהוזחטיכלמנסעפצקרשת"),
    "hin": ("Hindi", "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह"),
    "tha": ("Thai", "กขคงจฉชซญดตถทธนบปผพฟภมยรลวศษสหอฮ"),
}
"""Tesseract language codes (as OCRmyPDF's ``-l`` takes them) -> name and the letters a reader of it needs."""


@functools.cache
def readable_languages(model_set: str) -> tuple[str, ...]:
    """The codes of :data:`LANGUAGES` whose every letter is in the model set's dictionary.

    Raises:
        ModelError: the model set or its dictionary is missing.
    """
    dictionary = read_verified(load_manifest().model_set(model_set).dictionary)
    characters = {line.rstrip("\r") for line in dictionary.decode("utf-8").split("\n")}
    return tuple(code for code, (_, letters) in LANGUAGES.items() if set(letters) <= characters)


def check_languages(requested: str, model_set: str) -> list[str]:
    """The codes of ``-l eng+deu``; each must be one the model set reads.

    Raises:
        ModelError: a language it cannot read (the message lists those it can).
    """
    codes = [code.strip() for code in requested.split("+") if code.strip()]
    readable = readable_languages(model_set)
    missing = [code for code in codes if code not in readable]
    if missing:
        unknown = [code for code in missing if code not in LANGUAGES]
        named = ", ".join(
            f"{c} ({LANGUAGES[c][0]})" if c in LANGUAGES else f"{c} (not a language code we know)" for c in missing
        )
        raise ModelError(
            f"the model set {model_set!r} cannot read {named}; it reads: {'+'.join(readable)}"
            + (" (codes are Tesseract's: eng, deu, chi_sim, ...)" if unknown else "")
        )
    return codes
