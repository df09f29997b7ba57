"""Text normalisation: an entry's HTML as paragraphs of folded words, boilerplate removed, and its hash.

Pure functions over strings; tokens.py splits the folded text into words, and
fingerprint.py turns them into shingles and index keys.

What is folded before words are made (`fold_characters`, `unwrap_markup`), so
that two copies a CMS, an editor or a theme wrote differently give the same
words; matching sees only the result, what is published keeps the source's text:

* Unicode NFKC (full-width forms, ligatures such as U+FB01 "ﬁ" -> "fi",
  superscript digits, compatibility spaces), then case folding;
* soft hyphens (U+00AD, `&shy;`, `&#173;`) and zero-width characters removed
  inside words: ZWSP U+200B, ZWNJ U+200C, ZWJ U+200D, word joiner U+2060,
  BOM/ZWNBSP U+FEFF, Mongolian vowel separator U+180E, combining grapheme
  joiner U+034F. ZWNJ is meaningful in Persian (and ZWJ in Indic scripts and
  emoji); removing it joins the parts, which is fine for matching since
  every copy gets the same treatment;
* every other space (no-break U+00A0, en/em/thin/hair U+2000-U+200A, narrow
  no-break U+202F, medium mathematical U+205F, ideographic U+3000, Ogham
  U+1680) -> a plain space;
* curly quotes, low quotes, guillemets, primes and the modifier-letter
  apostrophe U+02BC (a letter to Unicode, so it would join words) -> ASCII
  quotes; en/em dashes, figure dash, horizontal bar, minus U+2212 and the
  non-breaking hyphen U+2011 -> "-" (all punctuation, so they separate words);
* digit grouping: a thin, narrow no-break or no-break space or a comma
  between digits, followed by three digits, removed ("12 345", "12,345" and
  "12345" are one number);
* markup: inline elements (span, b, i, em, strong, a, sup, sub, small, big,
  font, mark, u, s, abbr, cite, code, q, wbr, ...) are removed without a space,
  so `<span class="dropcap">A</span>fter` and `<b>W</b>ashington` are one
  word; block elements (p, div, br, li, h1-h6, blockquote, tr, td, th,
  figure, figcaption, section, article, ...) separate paragraphs; an image
  initial (`<img alt="A">fter`) is its letter; footnote markers
  (`<sup><a href="#fn1">1</a></sup>`, `<sup>[2]</sup>`, `<sup>*</sup>`) are
  removed; print hyphenation across a line break (`inter-<br>national`)
  is joined;
* entities: named and numeric references are decoded (`&#8217;`, `&rsquo;`,
  `&#xAD;`), and so are references escaped twice (`&amp;#8217;`, `&amp;shy;`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from itertools import chain

from ..reader.sanitize import plain_lines
from .tokens import _block_words, _words


_PUNCTUATION = re.compile(r"[^\w\s]|_", re.UNICODE)


def fold(text: str) -> str:
    """Case, punctuation, whitespace and Unicode forms folded: what titles and paragraphs are compared as."""
    if text.isascii():  # most text: NFKC leaves it as it is, and a byte table lowers and spaces it fastest
        return " ".join(_without_digit_grouping(text).encode("ascii").translate(_ASCII_FOLD).decode("ascii").split())
    text = unicodedata.normalize("NFKC", fold_characters(text)).casefold()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


_ASCII_FOLD = bytes(ord(" ") if _PUNCTUATION.match(chr(c)) else ord(chr(c).lower()) for c in range(128)) + bytes(128)
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff\u180e\u034f"
_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_CHARACTER_FOLDS = {
    **dict.fromkeys(map(ord, _INVISIBLE), None),
    **dict.fromkeys(map(ord, _SPACES), " "),
    **dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032\u2035\u02bc\u02bb\u0060\u00b4"), "'"),
    **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb"), '"'),
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d"), "-"),
}
# A separator between digit groups; each starts with what it looks for, which the regex engine finds fast.
_DIGIT_COMMA = re.compile(r",(?<=\d,)(?=\d{3}(?!\d))")
_DIGIT_SPACE = re.compile(r"[\u00a0\u2009\u202f](?<=\d.)(?=\d{3}(?!\d))")


def fold_characters(text: str) -> str:
    """The character folds of the module docstring (all but NFKC and case): invisible characters
    removed, spaces, quotes and dashes made plain, digit grouping removed."""
    text = _without_digit_grouping(text)
    return text if text.isascii() else text.translate(_CHARACTER_FOLDS)


# What must be folded before words are made: characters that would join words or split one. The other
# folds (spaces, quotes, dashes) are all non-word characters before and after, so they change no word.
_JOINS_OR_SPLITS = _INVISIBLE + "\u02bc\u02bb"
# The invisible characters as references (`&shy;`, `&#173;`, `&#xAD;`, `&#8203;`, `&zwnj;` ...).
_INVISIBLE_REFERENCE = re.compile(r"&(?:shy|zwnj|zwj|#0*(?:173|820[345]|8288|65279)|#[xX]0*(?:[aA][dD]|200[bBcCdD]"
                                  r"|2060|[fF][eE][fF][fF]));")


def _without_digit_grouping(text: str) -> str:
    if "," in text:
        text = _DIGIT_COMMA.sub("", text)
    if not text.isascii() and ("\u00a0" in text or "\u2009" in text or "\u202f" in text):
        text = _DIGIT_SPACE.sub("", text)
    return text


_TWICE_ESCAPED = re.compile(r"&amp;(#[0-9]{2,7}|#[xX][0-9a-fA-F]{2,6}|[a-zA-Z][a-zA-Z0-9]{1,9});")
_FOOTNOTE = re.compile(r"<sup\b[^>]*>\s*(?:<a\b[^>]*>\s*)?\[?(?:\d{1,3}|[*\u2020\u2021\u00a7]{1,3}|[a-z])\]?"
                       r"\s*(?:</a>\s*)?</sup>", re.IGNORECASE)
_LINE_HYPHEN = re.compile(r"-(?<=[^\W\d_]-)\s*<[bB][rR]\s*/?>\s*(?=[^\W\d_A-Z])")  # "-" first: found fast
_ALT_LETTER = re.compile(r"alt=(?<=\balt=)[\"']?[^\W\d_][\"'\s/>]", re.IGNORECASE)  # what _IMAGE_INITIAL needs
_IMAGE_INITIAL = re.compile(r"<img\b[^>]*?\balt=[\"']?([^\W\d_])[\"']?(?:\s[^>]*)?/?>", re.IGNORECASE)


def unwrap_markup(fragment: str) -> str:
    """An entry's HTML with the folds of the module docstring that words need and tag removal alone does
    not make: references escaped twice decoded once, invisible characters (and their references) removed,
    footnote markers removed, image initials as their letter, print hyphenation across a line break
    joined, and digit grouping removed. Done once for the whole fragment: most of these find nothing."""
    if "&" in fragment:
        if "&amp;" in fragment:
            fragment = _TWICE_ESCAPED.sub(r"&\1;", fragment)
        fragment = _INVISIBLE_REFERENCE.sub("", fragment)
    if "<sup" in fragment or "<SUP" in fragment:
        fragment = _FOOTNOTE.sub("", fragment)
    if ("<img" in fragment or "<IMG" in fragment) and _ALT_LETTER.search(fragment):
        fragment = _IMAGE_INITIAL.sub(r"\1", fragment)
    if "-<" in fragment or "- <" in fragment:
        fragment = _LINE_HYPHEN.sub("", fragment)
    fragment = _without_digit_grouping(fragment)
    if not fragment.isascii() and any(c in fragment for c in _JOINS_OR_SPLITS):  # `in` scans faster than a regex
        fragment = fragment.translate(_CHARACTER_FOLDS)
    return fragment


_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:p|div|br|li|ul|ol|h[1-6]|blockquote|pre|tr|td|th|table|thead|tbody|tfoot|caption|section|"
    r"article|header|footer|main|nav|address|details|summary|hgroup|aside|figure|figcaption|hr|dd|dt|dl|center)"
    r"\b[^>]*>", re.IGNORECASE)
BOILERPLATE_MAX_WORDS = 60  # a longer paragraph is the article's own, whatever it says
SHORT_BOILERPLATE_WORDS = 25
# Paragraphs republishers and blog engines add around an article, matched on folded text: first
# those recognisable by how they start, then short ones recognisable anywhere.
BOILERPLATE_START = re.compile(
    r"^(?:this (?:article|story|post|piece|report|column|essay|interview|item|entry|text) (?:was |is |has been )?"
    r"(?:originally |first )?(?:published|posted|appeared|written|produced|republished|reprinted|syndicated)"
    r"|(?:originally|first) (?:published|posted|appeared|ran) (?:by|on|in|at)|the post .{1,300} appeared first on"
    r"|(?:republished|reprinted|reproduced|syndicated|crossposted|cross posted) (?:here )?(?:with|by|under|from|courtesy|on)"
    r")\b")
BOILERPLATE_SHORT = re.compile(
    r"^(?:read more|continue reading|read the (?:full|rest|original|complete)|full (?:story|article)"
    r"|view (?:the )?(?:original|full)|originally at|more at|see more|source|via|credits?|photo|image|copyright"
    r"|share|tweet|email|print|follow us|subscribe|sign up|like us|more$)\b"
    r"|\bclick here\b|\bread (?:this|the) (?:full )?(?:article|story|post) in full\b"
    r"|\bappeared first on\b|\b(?:was|were|is) (?:originally|first) (?:published|posted) (?:by|on|at)\b"
    r"|\b(?:re)?(?:published|printed|posted|produced) (?:here )?(?:with|by|under|courtesy of|from) (?:the )?"
    r"(?:kind )?(?:permission|license|licence|agreement|arrangement|a creative commons)"
    r"|\bcreative commons (?:license|licence)")
_TAIL = re.compile(r"(?:\s*(?:\[\s*(?:…|\.\.\.)\s*\]|…|\.\.\.|\(more…?\)))?\s*(?:(?:read more|continue reading|read the "
                   r"(?:full|rest of the) (?:story|article|post)|more)\s*(?:»|→|>>|\.\.\.|…)|\[\s*(?:…|\.\.\.)\s*\]|…|"
                   r"\.\.\.|\(more…?\))\s*$", re.IGNORECASE)


# What any _TAIL match holds one of: most paragraphs have none, and need no regex.
_TAIL_MARKS = ("…", "...", "»", "→", ">>", "(")


def text_blocks(fragment: str | None) -> list[str]:
    """The paragraphs of an HTML fragment as plain text, boilerplate paragraphs removed."""
    return [text for text in (" ".join(block.split()) for block in _paragraphs(fragment)[0]) if text]


def block_tokens(fragment: str | None) -> list[list[str]]:
    """The words of each paragraph of an entry's text, folded, boilerplate removed; CJK characters count as words."""
    return _paragraphs(fragment)[1]


def text_words(fragment: str | None) -> tuple[list[str], tuple[int, ...]]:
    """block_tokens in one list, and how many words each paragraph has: what a fingerprint is made of."""
    blocks = _paragraphs(fragment)[1]
    return list(chain.from_iterable(blocks)), tuple(map(len, blocks))


def text_tokens(fragment: str | None) -> list[str]:
    return text_words(fragment)[0]


def normalised_text(fragment: str | None) -> str:
    """The words of an entry's HTML, for hashing, similarity and filters."""
    return " ".join(text_tokens(fragment))


def _paragraphs(fragment: str | None) -> tuple[list[str], list[list[str]]]:
    """The paragraphs of an HTML fragment, boilerplate removed: as plain text (its runs of spaces left as
    they are, but in the last paragraph), and as words (of those with any)."""
    if not fragment:
        return [], []
    marked = _BLOCK_TAG.sub("\n", unwrap_markup(fragment).replace("\r", " ").replace("\n", " "))
    # One tag strip for all paragraphs, a line each; their spaces are made single only where text is kept.
    blocks = [line for line in plain_lines(marked, spaced=False) if line and not line.isspace()]
    words = _block_words(blocks)
    if words is not None:
        kept = [(block, w) for block, w in zip(blocks, words) if not _is_boilerplate(w)]
    else:
        blocks = [" ".join(block.split()) for block in blocks]
        kept = [(block, _words(block)) for block in blocks if not _is_boilerplate_text(block)]
    if not kept:
        return [], []
    last = " ".join(kept[-1][0].split())
    if any(mark in last[-80:] for mark in _TAIL_MARKS):
        end = (last[:-80] + _TAIL.sub("", last[-80:])).strip()
        if end != last:
            kept[-1] = (end, _words(end))
    return [block for block, _ in kept], [w for _, w in kept if w]


# How a boilerplate paragraph too long for BOILERPLATE_SHORT can start: the words BOILERPLATE_START opens with.
_START_WORDS = ("this", "originally", "first", "the post", "republished", "reprinted", "reproduced", "syndicated",
                "crossposted", "cross posted")


# The words the patterns can match at a paragraph's start, and one of which anything they match past it holds.
_OPENING_WORDS = frozenset("this originally first the republished reprinted reproduced syndicated crossposted cross "
                           "read continue full view more see source via credit credits photo image copyright share "
                           "tweet email print follow subscribe sign like".split())
_INNER_WORDS = frozenset("click full appeared published republished printed reprinted posted reposted produced "
                         "reproduced creative".split())


def _is_boilerplate(words: list[str]) -> bool:
    """Whether a paragraph is one republishers add, from its _words (holding no CJK character)."""
    count = len(words)
    if count > BOILERPLATE_MAX_WORDS or not count:
        return False
    if count > SHORT_BOILERPLATE_WORDS and not " ".join(words[:3]).startswith(_START_WORDS):
        return False  # most paragraphs: their opening decides (BOILERPLATE_START opens with these words)
    if words[0] not in _OPENING_WORDS and _INNER_WORDS.isdisjoint(words):
        return False
    folded = " ".join(words)  # fold(block), when the words hold no CJK character
    return bool(BOILERPLATE_START.match(folded) or (count <= SHORT_BOILERPLATE_WORDS and _short_boilerplate(folded)))


def _is_boilerplate_text(block: str) -> bool:
    """_is_boilerplate of a paragraph's text with single spaces, for texts whose words need the regex."""
    spaces = block.count(" ")
    if spaces > 2 * BOILERPLATE_MAX_WORDS:
        return False
    if spaces > 2 * SHORT_BOILERPLATE_WORDS and not fold(block[:80]).startswith(_START_WORDS):
        return False
    folded = fold(block)
    count = len(folded.split())
    if count > BOILERPLATE_MAX_WORDS:
        return False
    return bool(BOILERPLATE_START.match(folded) or (count <= SHORT_BOILERPLATE_WORDS and _short_boilerplate(folded)))


# What BOILERPLATE_SHORT's unanchored alternatives each need to find somewhere in a paragraph.
_SHORT_ANYWHERE = ("click here", "in full", "appeared first on", "published", "printed", "posted", "produced",
                   "creative commons")


def _short_boilerplate(folded: str) -> bool:
    """BOILERPLATE_SHORT.search, without trying each alternative at each position of most paragraphs.

    Past the start only the unanchored alternatives can match, and each needs
    one of a few phrases; most paragraphs hold none of them.
    """
    if BOILERPLATE_SHORT.match(folded):
        return True
    for phrase in _SHORT_ANYWHERE:
        if phrase in folded:
            return bool(BOILERPLATE_SHORT.search(folded))
    return False


def joined_words(tokens: list[str]) -> bytes:
    """Words joined by spaces, in UTF-8 (a lone surrogate too): what content_hash and shingle hashes read."""
    return " ".join(tokens).encode("utf-8", "surrogatepass")


def content_hash(text: str | bytes) -> str | None:
    """A hash of the normalised text (or of its joined_words); None for texts too short to identify a story."""
    if len(text.split(None, 19)) < 20:  # fewer than 20 words, counting no further than that
        return None
    return hashlib.sha256(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# Function words of the languages sources commonly use: they carry no meaning in titles, and a
# shingle made only of them ("one of the") is shared by unrelated texts.
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no nor
not now of off on once only or other our ours out over own same she should so some such than that
the their theirs them then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours s t d ll m re ve
said says one two new also
le la les un une des du de et est en que qui dans pour pas sur au aux avec ce ces il elle ils on
ne se son sa ses par plus ou mais été être
der die das den dem des ein eine einen einem einer und ist im in zu von mit auf für nicht sich es
auch als an bei aus wie dass oder wird sind war hat
el los las una unos unas y del al que por con para es se lo su sus como más pero o
o os as um uma e do da dos das no na nos nas em por com para não mais ao à
il lo gli un una e di da in con su per che non è
het een en van de in op te dat voor met zijn niet aan er ook als bij
""".split())
