"""Republished HTML made safe (nh3, the Ammonia binding) and text made fit for XML.

A whitelist sanitiser: anything not listed (script, frames, objects, forms,
styles, event handlers) is dropped; links and images are made absolute against
the item's (resolved) link so they work in a reader far from the source site,
and dropped when the item has no link to resolve them against.
"""

from __future__ import annotations

import contextvars
import html
import html.entities
import re
from urllib.parse import urljoin, urlsplit

import lxml.html
import nh3
from lxml import etree

_base_url: contextvars.ContextVar[str | None] = contextvars.ContextVar("base_url", default=None)

#: Which sanitiser made a stored item's HTML: nh3's version and the policy below (bump POLICY whenever the
#: cleaner's settings or _rewrite_url change). A page shows HTML stored under this stamp as it is, and cleans
#: anything else (stored by an older version, or by nothing) again first.
POLICY = 1
SANITIZER = f"nh3 {nh3.__version__}, policy {POLICY}"

URL_ATTRIBUTES = {"href", "src", "cite", "longdesc", "poster"}
SAFE_SCHEMES = {"http", "https", "mailto", "ftp", "tel", "data"}
RASTER_DATA = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp)(;[a-z0-9=._-]+)*(;base64)?,", re.IGNORECASE)
#: html5ever's tree builder slows down with the square of nesting depth (100,000 nested <div>: 15 s);
#: fragments that nest deeper than any article are first re-parsed by libxml2, which stops at 255 levels.
DEPTH_CHECK_TAGS = 2000
MAX_DEPTH = 250
TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Characters XML 1.0 forbids: C0 controls but tab/newline/return, lone surrogates, U+FFFE/U+FFFF.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _rewrite_url(tag: str, attribute: str, value: str) -> str | None:
    if attribute not in URL_ATTRIBUTES:
        return value
    value = value.strip()
    if value[:8].lower().startswith(("https://", "http://")):
        return value  # already absolute, and most are: urljoin is the costliest step of sanitising
    if value.lower().startswith("data:"):
        return value if tag == "img" and attribute == "src" and RASTER_DATA.match(value) else None
    base = _base_url.get()
    try:
        absolute = urljoin(base, value) if base else value
        scheme = urlsplit(absolute).scheme.lower()
    except ValueError:  # "http://[::1": no URL at all
        return None
    if scheme and scheme not in SAFE_SCHEMES:
        return None
    if not scheme:
        return None  # relative, and the item has no link to resolve it against: a reader could not follow it
    return absolute


_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("img", set()).add("title")
_ATTRIBUTES.setdefault("a", set()).add("title")
_ATTRIBUTES.update({"audio": {"src", "controls"}, "video": {"src", "controls", "poster", "width", "height"},
                    "source": {"src", "type"}})

_CLEANER = nh3.Cleaner(
    tags=(nh3.ALLOWED_TAGS | {"audio", "video", "source", "picture"}) - {"area", "map"},
    clean_content_tags={"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet",
                        "noscript", "template", "svg", "math", "form", "select", "textarea", "button"},
    attributes=_ATTRIBUTES,
    attribute_filter=_rewrite_url,
    url_schemes=SAFE_SCHEMES,
    link_rel="noopener noreferrer",
)


def clean_html(fragment: str | None, base_url: str | None = None) -> str | None:
    """Sanitised HTML with absolute URLs; None stays None."""
    if not fragment:
        return None
    token = _base_url.set(base_url)
    try:
        cleaned = _CLEANER.clean(bounded_depth(xml_safe(fragment)))
    finally:
        _base_url.reset(token)
    return cleaned.strip() or None


def bounded_depth(fragment: str) -> str:
    """The fragment, re-parsed to at most 255 levels when its tags nest deeper than MAX_DEPTH."""
    if fragment.count("<") < DEPTH_CHECK_TAGS:
        return fragment
    depth = peak = 0
    for match in TAG.finditer(fragment):
        if match.group(1):
            depth = max(depth - 1, 0)
        elif match.group(2).lower() not in VOID:
            depth += 1
            peak = max(peak, depth)
            if peak > MAX_DEPTH:
                break
    if peak <= MAX_DEPTH:
        return fragment
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.LxmlError, ValueError):
        return html.escape(fragment)
    return etree.tostring(root, encoding="unicode", method="html")


_TAG_STRIPPER = nh3.Cleaner(tags=set(), clean_content_tags={"script", "style"}, attributes={}, link_rel=None)


def plain_text(fragment: str | None) -> str:
    """The text of an HTML fragment, as a title holds it: every tag removed, references decoded once.

    Decoded once: `&amp;lt;b&amp;gt;` is the text `&lt;b&gt;`, and `&lt;b&gt;` the text `<b>`, which is
    not markup any more but what the fragment says; every output escapes it as text (SPEC §4).
    """
    text = xml_safe(fragment or "")
    if "<" in text or "&" in text:
        text = _quick_strip(text) or _thorough_strip(text)
    return " ".join(text.split())


def spaced_text(text: str | None) -> str:
    """A plain text as a title holds it: XML-safe, each run of whitespace one space; nothing in it is markup."""
    return " ".join(xml_safe(text or "").split())


#: The HTML elements feedparser's guess knows (feedparser.sanitizer._HTMLSanitizer.acceptable_elements).
GUESSED_ELEMENTS = frozenset("""
a abbr acronym address area article aside audio b big blockquote br button canvas caption center cite code col
colgroup command datagrid datalist dd del details dfn dialog dir div dl dt em event-source fieldset figcaption
figure font footer form h1 h2 h3 h4 h5 h6 header hr i img input ins kbd keygen label legend li m map menu
meter multicol nav nextid noscript ol optgroup option output p pre progress q s samp section select small
sound source spacer span strike strong sub sup table tbody td textarea tfoot th thead time tr tt u ul var
video""".split())
_CLOSING_TAG = re.compile(r"</(\w+)>")
_REFERENCE = re.compile(r"&#?\w+;")
_TAG_NAME = re.compile(r"</?(\w+)")
_NAMED_REFERENCE = re.compile(r"&(\w+);")


def looks_like_html(text: str) -> bool:
    """Whether a text of no declared type (an RSS title, a name) is HTML, guessed as feedparser guesses an RSS
    title: it holds a closing tag or a reference, every tag is of an element in GUESSED_ELEMENTS, and every
    named reference is HTML's. `Tom & Jerry` and `Why <script> tags` are plain text, `<b>Bold</b>` and
    `Tom &amp;amp; Jerry` HTML."""
    if "<" not in text and "&" not in text:
        return False
    if not (_CLOSING_TAG.search(text) or _REFERENCE.search(text)):
        return False
    if any(name.lower() not in GUESSED_ELEMENTS for name in _TAG_NAME.findall(text)):
        return False
    return all(name in html.entities.entitydefs for name in _NAMED_REFERENCE.findall(text))


def plain_lines(fragment: str, spaced: bool = True) -> list[str]:
    """plain_text of each line of a fragment, for markup whose line breaks are paragraph breaks: the simple
    tags of every line removed by one regex pass; a line that needs more gets plain_text of its own.
    `spaced=False`, for a caller that splits the lines into words itself: a line's runs of whitespace may
    be left as they are (making every word twice was a third of this function's cost)."""
    text = xml_safe(fragment)
    lines = text.split("\n")
    if "<" not in text and "&" not in text:
        return [" ".join(line.split()) for line in lines]
    whole = _SIMPLE_TAG.sub("", text)
    stripped = whole.split("\n")
    if _CONTENT_TAGS.search(text) or len(stripped) != len(lines):
        return [plain_text(line) for line in lines]
    if "<" not in whole and ">" not in whole:  # every line's tags were simple: references decoded all at once
        decoded = html.unescape(whole) if "&" in whole else whole
        if "<" not in decoded and "&" not in decoded and decoded.count("\n") == len(lines) - 1:
            # Of all references, only &#12; and its hexadecimal forms decode to a character XML cannot carry.
            lines = (xml_safe(decoded) if "&#" in whole else decoded).split("\n")
            return [" ".join(line.split()) for line in lines] if spaced else lines
    plain = []
    for line, bare in zip(lines, stripped):  # _quick_strip of each line, from the strip of them all
        simple = "<" not in bare and ">" not in bare
        if simple and "&" in bare:
            bare = html.unescape(bare)
            simple = "<" not in bare and "&" not in bare
            bare = xml_safe(bare) if simple else bare
        plain.append(" ".join(bare.split()) if simple else plain_text(line))
    return plain


# A tag whose attributes are plain or quoted values: what sanitised HTML is made of.
_SIMPLE_TAG = re.compile(r"""</?[a-zA-Z][^<>"']*(?:(?:"[^"]*"|'[^']*')[^<>"']*)*>""")
_CONTENT_TAGS = re.compile(r"<\s*(?:script|style|svg|math)", re.IGNORECASE)  # whose text the parser drops


def _quick_strip(text: str) -> str | None:
    """The text of XML-safe markup made only of simple tags, or None when only the HTML parser can be sure.

    Most article paragraphs are; removing their tags with one regex costs a
    tenth of a parse, and the result is the same.
    """
    if _CONTENT_TAGS.search(text):
        return None
    stripped = _SIMPLE_TAG.sub("", text)
    if "<" in stripped or ">" in stripped:
        return None
    if "&" not in stripped:
        return stripped  # already XML-safe: removing tags adds no character
    decoded = html.unescape(stripped)
    if "<" in decoded or "&" in decoded:
        return None
    return xml_safe(decoded)


def _thorough_strip(text: str) -> str:
    """The text of any markup, by the HTML parser: tags removed (script and style with their text), references
    decoded once."""
    return xml_safe(html.unescape(_TAG_STRIPPER.clean(bounded_depth(text))))


def xml_safe(text: str) -> str:
    """Drop characters XML cannot carry, so one bad title cannot make an output invalid.

    Most texts have none; they are told by their UTF-8 (which a lone surrogate
    cannot be encoded in) faster than a regex search finds nothing: a C0
    control is one byte of its own, U+FFFE and U+FFFF end in BF BE and BF BF.
    """
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        return XML_FORBIDDEN.sub("", text)
    if len(encoded.translate(None, _C0_CONTROLS)) != len(encoded) or b"\xef\xbf\xbe" in encoded \
            or b"\xef\xbf\xbf" in encoded:
        return XML_FORBIDDEN.sub("", text)
    return text


_C0_CONTROLS = bytes(c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D))
