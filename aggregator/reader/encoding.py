"""A feed whose bytes fit no encoding it declares: its encoding guessed, not taken for windows-1252.

feedparser tries the encodings the server and the document imply (the HTTP
charset, the XML declaration, a byte-order mark, UTF-8) and, when none fits the
bytes, decodes them as windows-1252, which turns an undeclared windows-1251
`Новости` into `Íîâîñòè` without a word. Here, before feedparser, the same
implied encodings are tried; the first that decodes the bytes leaves the
document untouched (correctly declared feeds, and every UTF-8 feed, cost a
strict decode or two and no detector). When none does, the document is read in
the encoding guessed (a body that is UTF-8 but for a few stray bytes keeps
UTF-8, its bad bytes replaced; anything else goes to charset-normalizer, among
the encodings web browsers know), handed on as UTF-8, and a warning says so.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

#: The encodings of the WHATWG Encoding Standard (what browsers, hence web feeds, use), as Python names:
#: the detector is told to choose among them, not among every code page it knows (johab, cp775 …).
WEB_ENCODINGS = (
    "utf_8", "cp866", "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_5", "iso8859_6", "iso8859_7", "iso8859_8",
    "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "koi8_r", "koi8_u", "mac_roman",
    "mac_cyrillic", "cp874", "tis_620", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256",
    "cp1257", "cp1258", "gb2312", "gb18030", "big5", "euc_jp", "iso2022_jp", "shift_jis", "cp932", "euc_kr",
    "cp949", "utf_16_be", "utf_16_le",
)
#: A guess this close to the best (charset-normalizer's "chaos", 0 = clean) that windows-1252 also explains
#: is read as windows-1252, as it always was: Western text fits several single-byte code pages equally.
CHAOS_TIE = 0.001
#: UTF-8 it is, when its multi-byte sequences outnumber the invalid bytes this many times.
UTF8_MAJORITY = 10
BOMS = ((codecs.BOM_UTF32_BE, "utf_32_be"), (codecs.BOM_UTF32_LE, "utf_32_le"), (codecs.BOM_UTF8, "utf_8"),
        (codecs.BOM_UTF16_BE, "utf_16_be"), (codecs.BOM_UTF16_LE, "utf_16_le"))
XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*?\?>")
TEXT_XML = ("text/xml", "text/xml-external-parsed-entity")


@dataclass(frozen=True)
class Guessed:
    """A document re-encoded as UTF-8 after its encoding was guessed."""

    body: bytes
    headers: dict[str, str]
    warning: str  # for the source's status: what was implied, what was used


def decode_or_guess(body: bytes, headers: dict[str, str]) -> Guessed | None:
    """None when an encoding the headers or the document imply decodes the bytes; else the guessed reading."""
    implied = _implied(body, headers)
    if any(_decodes(body, name) for name in implied):
        return None
    guess, replaced = _guess(body)
    if guess is None:
        return None  # not text in any encoding we know: feedparser says what it makes of it
    text = body.decode(guess, errors="replace")
    text = text[1:] if text.startswith("\ufeff") else text
    text = XML_DECLARATION.sub('<?xml version="1.0" encoding="utf-8"?>', text, count=1)
    mime = (headers.get("content-type") or "").split(";")[0].strip()
    fixed = {k: v for k, v in headers.items() if k != "content-type"}
    if mime:
        fixed["content-type"] = f"{mime}; charset=utf-8"
    said = " or ".join(dict.fromkeys(_label(n) for n in implied))
    how = f"UTF-8 with {replaced} invalid byte{'s' if replaced > 1 else ''} replaced" if replaced else _label(guess)
    return Guessed(text.encode("utf-8"), fixed,
                   f"encoding guessed: read as {how}, since the bytes are not valid {said}")


def _implied(body: bytes, headers: dict[str, str]) -> list[str]:
    """The encodings the byte-order mark, the HTTP charset and the XML declaration name, and UTF-8, XML's default
    (text/xml without a charset is US-ASCII by RFC 3023, which UTF-8 covers)."""
    names = [name for bom, name in BOMS if body.startswith(bom)][:1]
    mime, _, parameters = (headers.get("content-type") or "").lower().partition(";")
    charset = re.search(r"charset\s*=\s*[\"']?([^\"';\s]+)", parameters)
    if charset:
        names.append(charset.group(1))
    elif mime.strip() in TEXT_XML:
        names.append("us-ascii")
    declared = XML_ENCODING.match(body[:500])
    if declared:
        names.append(declared.group(1).decode("ascii"))
    names.append("utf_8")
    return [_widened(n) for n in names]


def _widened(name: str) -> str:
    """gb2312 is read as its superset gb18030, as feedparser does."""
    return "gb18030" if name.lower().replace("-", "").replace("_", "") == "gb2312" else name


def _decodes(body: bytes, name: str) -> bool:
    try:
        codecs.decode(body, name)
    except (UnicodeError, LookupError):
        return False
    return True


def _guess(body: bytes) -> tuple[str | None, int]:
    """(the encoding to read the body in, how many bytes of it are replaced): UTF-8 when it nearly is."""
    replaced = _invalid_utf8(body)
    if replaced is not None:
        return "utf_8", replaced
    from charset_normalizer import from_bytes  # only for the rare broken feed: a tenth of a second to import

    matches = list(from_bytes(body, cp_isolation=list(WEB_ENCODINGS)))
    if not matches:
        return None, 0
    best = matches[0]
    for match in matches:
        if match.chaos <= best.chaos + CHAOS_TIE and "cp1252" in match.could_be_from_charset:
            return "cp1252", 0
    return best.encoding, 0


def _invalid_utf8(body: bytes) -> int | None:
    """The number of invalid bytes when the body is UTF-8 but for a few of them, else None."""
    text = body.decode("utf-8", errors="replace")
    marks = text.count("\ufffd")
    invalid = marks - body.count("\ufffd".encode("utf-8"))
    multibyte = len(text) - len(text.encode("ascii", errors="ignore")) - marks  # the characters read right
    return invalid if invalid > 0 and multibyte >= UTF8_MAJORITY * invalid else None


def _label(name: str) -> str:
    """An encoding as people write it: windows-1251, not cp1251."""
    try:
        name = codecs.lookup(name).name
    except LookupError:
        return name
    if re.fullmatch(r"cp125\d", name):
        return "windows-" + name[2:]
    return {"utf-8": "UTF-8", "ascii": "US-ASCII"}.get(name, name)
