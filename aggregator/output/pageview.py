"""What the HTML pages show of a story, as plain values for the templates: pure, no Jinja2, no files.

Languages and directions come from CLDR (Babel): a language written right to
left (Persian, Arabic, Pashto, Urdu, Hebrew, Sindhi, Sorani Kurdish, Yiddish,
Dhivehi, Uyghur…) is ``rtl``; an unknown language has no direction, and the
templates let the browser find it (``dir="auto"``). Dates are formatted with
the config's strftime pattern, with month and day names (and, where the
language writes them, its own digits) in the page's language.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import unquote, urlsplit

import lxml.html
from babel import Locale, UnknownLocaleError
from lxml import etree

from ..models import Enclosure, RelatedCopy, StoryEntry, to_text as rfc3339
from ..reader.sanitize import SANITIZER, clean_html, plain_text, xml_safe

SUMMARY_WORDS = 60
SUMMARY_SCAN = 1024  # characters of markup a summary's opening words are first looked for in
DEFAULT_LANGUAGE = "en"  # the language of the packaged templates' own words
#: Written right to left, for the tags CLDR does not know (Babel answers for the rest).
RTL_LANGUAGES = {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ji", "ks", "ku-arab", "nqo", "ps", "sd", "syr",
                 "ug", "ur", "yi"}
RTL_SCRIPTS = {"arab", "hebr", "thaa", "syrc", "nkoo", "adlm", "rohg", "mand", "samr"}
DIGITS = {"arab": "٠١٢٣٤٥٦٧٨٩", "arabext": "۰۱۲۳۴۵۶۷۸۹"}
NAMED = {"a": ("days", "abbreviated"), "A": ("days", "wide"), "b": ("months", "abbreviated"),
         "B": ("months", "wide")}
BLOCK_START = re.compile(r"</?(?:p|div|li|ul|ol|br|h[1-6]|tr|td|th|blockquote|pre|figure|figcaption|dd|dt)\b",
                         re.IGNORECASE)
MEDIA = {"img": "image", "video": "video", "audio": "audio", "picture": "image"}
FILE_KINDS = ("audio", "video", "image")  # of an enclosure, by its type's top level; any other is a "file"
SIZE_UNITS = ("KB", "MB", "GB", "TB")  # decimal, as players and file managers show a download's size


@dataclass(frozen=True)
class Language:
    """A page's or an entry's language: its tag (``""`` when unknown) and direction (None when unknown)."""

    tag: str
    dir: str | None


@dataclass(frozen=True)
class When:
    """A date as a page shows it: machine-readable (``<time datetime>``) and for people."""

    iso: str
    text: str


@dataclass(frozen=True)
class FileView:
    """An enclosure as a story page lists it: "Audio: <a href=url>episode.mp3</a> (audio/mpeg, 12.3 MB)"."""

    kind: str  # audio, video, image or file: the template words it
    url: str
    name: str  # the file's name in its URL
    details: str  # its type and size, what is known of them ("audio/mpeg, 12.3 MB"), or ""


@dataclass(frozen=True)
class EntryView:
    """One story as a page shows it."""

    key: str  # its page is stories/<key>.html
    title: str
    link: str | None
    language: Language
    source: str
    source_site: str | None
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    published: When
    republished: When
    updated: When | None  # only when it says more than `published`
    related: tuple[RelatedCopy, ...]
    files: tuple[FileView, ...] = ()  # its enclosures: links only, a page loads nothing from elsewhere
    content: str = ""  # sanitised HTML loading nothing from elsewhere (story pages)
    story: StoryEntry | None = field(default=None, repr=False, compare=False)  # what `summary` is made of

    @functools.cached_property
    def summary(self) -> str:
        """The summary as plain text, made when a template shows it: the river's do, the story page's does not
        (a tenth of a first publish was making summaries of every story's full text for no page)."""
        return summary_text(self.story) if self.story is not None else ""

    def with_content(self, content) -> "EntryView":
        return replace(self, content=content)


def entry_view(entry: StoryEntry, date_format: str, page_tag: str, content: bool = False) -> EntryView:
    """What a page shows of `entry`, its dates in the page's language."""
    updated = when(entry.updated, date_format, page_tag)
    published = when(entry.published, date_format, page_tag)
    return EntryView(
        key=story_key(entry.uid), title=entry.title, link=entry.link, language=language(entry.language),
        source=entry.source.title, source_site=entry.source.site_url, authors=entry.authors,
        categories=entry.categories, published=published,
        republished=when(entry.republished, date_format, page_tag),
        updated=updated if updated.text != published.text else None,
        related=entry.related, story=entry, files=tuple(map(file_view, entry.enclosures)),
        content=page_content(entry.content or entry.summary, entry.sanitizer == SANITIZER) if content else "",
    )


def file_view(enclosure: Enclosure) -> FileView:
    kind = (enclosure.type or "").partition("/")[0]
    path = urlsplit(enclosure.url).path
    name = xml_safe(unquote(path.rstrip("/").rpartition("/")[2])) or urlsplit(enclosure.url).hostname or enclosure.url
    details = ", ".join(part for part in (enclosure.type, size_text(enclosure.length)) if part)
    return FileView(kind if kind in FILE_KINDS else "file", enclosure.url, name, details)


def size_text(length: int | None) -> str:
    """A size in bytes for people: `950 bytes`, `12.3 MB`; "" when unknown."""
    if length is None:
        return ""
    if length < 1000:
        return f"{length} bytes"
    size = float(length)
    for unit in SIZE_UNITS:
        size /= 1000
        if round(size, 1) < 1000:
            break
    return f"{size:.1f} {unit}"


def story_key(uid: str) -> str:
    """The file name of a story's page, from its id alone: ``urn:uuid:…`` gives the uuid, anything else a hash."""
    if uid.startswith("urn:uuid:") and re.fullmatch(r"[0-9a-fA-F-]{36}", uid[9:]):
        return uid[9:].lower()
    return hashlib.blake2b(uid.encode("utf-8"), digest_size=16).hexdigest()


@functools.lru_cache(maxsize=256)
def language(tag: str | None) -> Language:
    """The direction of a BCP 47 tag; ``Language("", None)`` when no language is declared."""
    tag = (tag or "").strip()
    if not tag:
        return Language("", None)
    lowered = tag.lower().replace("_", "-")
    parts = lowered.split("-")
    script = next((p for p in parts[1:] if len(p) == 4 and p.isalpha()), None)
    if script:
        return Language(tag, "rtl" if script in RTL_SCRIPTS else "ltr")
    if parts[0] in RTL_LANGUAGES or "-".join(parts[:2]) in RTL_LANGUAGES:
        return Language(tag, "rtl")
    locale = _locale(lowered)
    if locale is not None:
        return Language(tag, "rtl" if locale.character_order == "right-to-left" else "ltr")
    return Language(tag, "ltr")


@functools.lru_cache(maxsize=256)
def _locale(tag: str) -> Locale | None:
    for candidate in (tag, tag.split("-")[0]):
        try:
            return Locale.parse(candidate, sep="-")
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return None


def page_language(tag: str | None) -> Language:
    """A page's own language: the output's, else the templates' (a page always says what it is written in)."""
    declared = language(tag)
    return declared if declared.tag else language(DEFAULT_LANGUAGE)


def when(moment: datetime, pattern: str, tag: str) -> When:
    return When(rfc3339(moment), format_date(moment, pattern, tag))


def format_date(moment: datetime, pattern: str, tag: str) -> str:
    """`pattern` (strftime) with month and day names, AM/PM and digits in the language of `tag` (UTC)."""
    plan = _date_plan(pattern, tag)
    if isinstance(plan, str):
        return moment.strftime(plan)  # the common case: numbers only, in one call
    parts, numbers, digits = plan
    values = iter(moment.strftime(numbers).translate(digits).split(_APART) if numbers else ())
    return "".join(part if type(part) is str else next(values) if part is None else part(moment) for part in parts)


_APART = "\x1f"  # between the numbers of one strftime call: no directive writes it


@functools.lru_cache(maxsize=64)
def _date_plan(pattern: str, tag: str) -> str | tuple:
    """How format_date writes `pattern` in the language of `tag`, worked out once: the pattern strftime takes
    whole when only numbers in ASCII digits are asked for, else its parts in order (literals, None for each
    number, and for a name or a period what gives it the moment's, in the locale's words) with the directives
    of the numbers, for one strftime call, and the table of the locale's digits."""
    locale = _locale(tag.lower().replace("_", "-")) if tag else None
    digits = DIGITS.get(_numbering(locale), "")
    tokens = _tokens(pattern)
    if not digits and not any(code in NAMED or code == "p" for _, code in tokens):
        return pattern.replace("%Z", "UTC")
    parts: list = []
    numbers = []
    for literal, code in tokens:
        parts.append(literal)
        if not code:
            continue
        if code in NAMED and locale is not None:
            kind, width = NAMED[code]
            parts.append(_named(getattr(locale, kind)["format"][width], kind == "days"))
        elif code == "p" and locale is not None:
            parts.append(_period(locale.periods.get("am"), locale.periods.get("pm")))
        elif code == "Z":
            parts.append("UTC")
        else:
            parts.append(None)
            numbers.append("%" + code)
    return tuple(parts), _APART.join(numbers), str.maketrans("0123456789", digits) if digits else {}


def _named(names, days: bool) -> Callable[[datetime], str]:
    """The moment's day or month name, among the locale's `names` (days from Monday, 0; months from 1)."""
    return (lambda moment: names[moment.weekday()]) if days else (lambda moment: names[moment.month])


def _period(am: str | None, pm: str | None) -> Callable[[datetime], str]:
    """The locale's AM or PM for the moment, else strftime's."""
    def period(moment: datetime) -> str:
        word = am if moment.hour < 12 else pm
        return moment.strftime("%p") if word is None else word
    return period


@functools.lru_cache(maxsize=64)
def _tokens(pattern: str) -> tuple[tuple[str, str], ...]:
    return tuple((literal, directive[1:]) for literal, directive in re.findall(r"([^%]*)(%.|$)", pattern))


def _numbering(locale: Locale | None) -> str:
    if locale is None:
        return "latn"
    return getattr(locale, "default_numbering_system", None) or "latn"


def summary_text(entry: StoryEntry, words: int = SUMMARY_WORDS) -> str:
    """The summary as plain text, else the opening `words` words of the content, cut with an ellipsis."""
    split = _opening_text(entry.summary or entry.content or "", words).split()
    if len(split) <= words:
        return " ".join(split)
    return " ".join(split[:words]) + " …"


def _opening_text(fragment: str, words: int) -> str:
    """The fragment's text, or that of an opening of it that holds more than `words` words already: a long
    article's summary is its first words, and stripping all of it was most of a river page's cost.
    The opening ends where a tag begins, so no tag or reference is cut; its last word may go on past the
    cut, so one word more than needed is asked for."""
    size = SUMMARY_SCAN
    while size < len(fragment):
        cut = fragment.rfind("<", 0, size)
        if cut > 0:
            text = _block_text(fragment[:cut])
            if len(text.split()) > words + 1:
                return text
        size *= 4
    return _block_text(fragment)


def _block_text(fragment: str) -> str:
    return plain_text(BLOCK_START.sub(r" \g<0>", fragment))  # "a</p><p>b": two words


def page_content(fragment: str | None, clean: bool = False) -> str:
    """Sanitised HTML made to load nothing from elsewhere: each remote image, video or audio becomes a link to it.

    The HTML was sanitised when it was stored. It is sanitised once more here
    unless `clean` says this version's sanitiser made it (SANITIZER, stored
    with each item): a page must not trust what an older version stored, but
    cleaning every story's HTML again was a seventh of a first publish.
    What is left that a browser would fetch by itself is media; inline
    raster images (``data:``) load nothing and stay.
    """
    fragment = (fragment or None) if clean else clean_html(fragment)
    if not fragment:
        return ""
    if not re.search(r"<(?:img|video|audio|source|picture|track)\b", fragment, re.IGNORECASE):
        return fragment
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.LxmlError, ValueError):
        return html.escape(plain_text(fragment), quote=False)  # its text, which may read like a tag, as HTML
    for element in list(root.iter("img", "video", "audio", "picture")):
        if element.getparent() is not None and not _inside_media(element):
            _replace_with_link(element)
    for element in list(root.iter("source", "track")):  # left over outside any media element
        element.drop_tree()
    text = lxml.html.tostring(root, encoding="unicode", method="html")
    return text[len("<div>"):-len("</div>")]


def _inside_media(element) -> bool:
    return any(parent.tag in MEDIA for parent in element.iterancestors())


def _replace_with_link(element) -> None:
    url = _media_url(element)
    if element.tag == "img" and url is not None and url.startswith("data:"):
        return  # an inline image loads nothing
    kind = MEDIA[element.tag]
    label = " ".join((element.get("alt") or element.get("title") or "").split())
    for img in element.iter("img"):
        label = label or " ".join((img.get("alt") or "").split())
    text = f"[{kind}: {label}]" if label else f"[{kind}]"
    in_link = any(parent.tag == "a" for parent in element.iterancestors())  # a link holds no link
    if url and url.startswith(("http://", "https://")) and not in_link:
        replacement = lxml.html.Element("a", href=url, rel="noopener noreferrer")
        replacement.set("class", "media-link")
    else:
        replacement = lxml.html.Element("span")
        replacement.set("class", "media-link")
    replacement.text = text
    replacement.tail = element.tail
    element.getparent().replace(element, replacement)


def _media_url(element) -> str | None:
    if element.get("src"):
        return element.get("src").strip()
    for child in element.iter("source", "img"):
        if child.get("src"):
            return child.get("src").strip()
    return None
