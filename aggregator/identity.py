"""Canonical forms that decide whether two copies are the same story: links, titles, text.

Pure functions over strings; fingerprint.py turns the normalised text into
shingles and index keys, dedupe.py weighs what both produce.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import chain
from typing import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from .sanitize import plain_text

# Query parameters that say how a reader arrived, never which page it is. Kept to names that
# are tracking everywhere: dropping a parameter that does identify a page (`id`, `p`, `cid` on
# some sites) would make two different articles look like one.
TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "yclid", "igshid",
    "ref", "ref_src", "ref_url", "referrer", "source", "cmpid", "ncid", "sr_share", "spm", "_hsenc",
    "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "rss", "at_medium", "at_campaign", "ito", "s_cid",
    "smid", "partner", "via", "share", "from", "xtor", "__s", "ocid", "soc_src", "soc_trk", "cmp",
}
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "__twitter", "_ga", "vero_", "itm_", "trk_")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Link wrappers that carry the real target in a parameter: (host suffix, path, parameter).
REDIRECTS = (("google.com", "/url", ("url", "q")), ("facebook.com", "/l.php", ("u",)))


def canonical_link(url: str | None) -> str | None:
    """The form two links to one article share, however each outlet decorated it.

    Unwraps redirect wrappers, then folds scheme (http/https), host case,
    ``www.``, default ports, fragments, tracking parameters, query order and a
    trailing slash. The scheme is dropped so http and https copies compare equal.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip() or None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return url.strip() or None
    host = parts.hostname.lower().rstrip(".")
    target = _redirect_target(host, parts.path, parts.query)
    if target and target != url:
        return canonical_link(target)
    host = host[4:] if host.startswith("www.") else host
    if port and port not in DEFAULT_PORTS.values():
        host = f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMS and not k.lower().startswith(TRACKING_PREFIXES)
    )
    path = re.sub(r"/{2,}", "/", parts.path) or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    return urlunsplit(("", host, path, urlencode(query), ""))[2:]


def _redirect_target(host: str, path: str, query: str) -> str | None:
    for suffix, wrapper_path, names in REDIRECTS:
        if (host == suffix or host.endswith("." + suffix)) and path == wrapper_path:
            values = dict(parse_qsl(query))
            for name in names:
                if values.get(name, "").startswith(("http://", "https://")):
                    return values[name]
    return None


def identifies_page(canonical: str | None) -> bool:
    """False for a site's home page: a link there says nothing about which story an item is."""
    if not canonical:
        return False
    path_and_query = canonical.partition("/")[2]
    return bool(path_and_query.strip("/"))


def link_host(canonical: str | None) -> str | None:
    return canonical.partition("/")[0] if canonical else None


# Titles

_PUNCTUATION = re.compile(r"[^\w\s]|_", re.UNICODE)
_DIGITS = re.compile(r"\d+")
_SEPARATOR = r"(?:\s+[-–—|•·»›~/:]{1,2}\s+|\s*\|\s*|\s*::\s*)"
# (affix, rest) patterns, tried in order: brackets first, then a separator.
_PREFIXES = (re.compile(r"^\s*[\[(]([^\[\]()]{1,100})[\])]\s*(.+)$"),
             re.compile(rf"^\s*([^:|]{{1,60}}?)(?:{_SEPARATOR}|:\s+)(.+)$"))
_SUFFIXES = (re.compile(r"^(.*\S)\s*[\[(]([^\[\]()]{1,100})[\])]\s*$"),
             re.compile(rf"^(.+){_SEPARATOR}([^|:]{{1,60}}?)\s*$"))
MIN_DECORATION_SHARE = 0.05  # of a source's titles that must carry an affix before it counts as one


def normalised_title(title: str | None, decorations: Decorations | None = None) -> str:
    """Case, punctuation, whitespace and Unicode forms folded, the source's decorations removed."""
    text = unicodedata.normalize("NFKC", title or "").strip()
    if decorations:
        text = decorations.strip(text)
    return _fold(text)


def _fold(text: str) -> str:
    if text.isascii():  # most text: NFKC leaves it as it is, and a table replaces punctuation faster than a regex
        return " ".join(text.lower().translate(_ASCII_PUNCTUATION).split())
    return " ".join(_PUNCTUATION.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


_ASCII_PUNCTUATION = {c: " " for c in range(128) if _PUNCTUATION.match(chr(c))}


def title_keys(title: str | None, decorations: Decorations | None = None) -> tuple[str, ...]:
    """The title's key, then the keys left when one or two more prefixes or suffixes are taken off.

    Catches decorations a source's own titles could not teach ("Report: …",
    "… (via Example News)", another outlet's name in front). Only the first is
    the title; the others may match another copy's title, never each other.
    """
    text = unicodedata.normalize("NFKC", title or "").strip()
    level = [decorations.strip(text) if decorations else text]
    texts = list(level)
    for _ in range(2):  # up to two more affixes off, in any order
        level = [split[1] for t in level for split in (split_affix(t, "prefix"), split_affix(t, "suffix")) if split]
        texts += level
    return tuple(dict.fromkeys(k for k in map(_fold, texts) if k))


def title_shape(text: str) -> str:
    """A folded title with numbers replaced: "Episode 12" and "Episode 13" share a shape."""
    return _DIGITS.sub("#", _fold(text))


@lru_cache(maxsize=4096)  # a title is split while learning its source's habits, stripping it and keying it
def split_affix(text: str, position: str) -> tuple[str, str] | None:
    """(affix, rest) when the title has a prefix (or suffix) set off by a separator or brackets."""
    for pattern in _PREFIXES if position == "prefix" else _SUFFIXES:
        if match := pattern.match(text):
            break
    else:
        return None
    affix, rest = match.groups() if position == "prefix" else reversed(match.groups())
    if any(part.count("(") != part.count(")") or part.count("[") != part.count("]") for part in (affix, rest)):
        return None  # a separator inside brackets does not split a title
    rest = rest.strip()
    if not _fold(rest) or not _fold(affix):
        return None
    return affix.strip(), rest


@dataclass(frozen=True)
class Decorations:
    """The site-name prefixes and suffixes one source adds to its titles, by shape."""

    prefixes: frozenset[str] = frozenset()
    suffixes: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()  # the source's own name(s), folded, from its feed title

    def strip(self, text: str) -> str:
        """The title without its decorations; never strips a title down to nothing."""
        for _ in range(4):
            changed = False
            for position, known in (("prefix", self.prefixes), ("suffix", self.suffixes)):
                split = split_affix(text, position)
                if split and (title_shape(split[0]) in known or self.is_name(split[0])):
                    text, changed = split[1], True
            if not changed:
                break
        return text

    def is_name(self, affix: str) -> bool:
        loose = _loose(affix)
        return bool(loose) and any(loose == name or f" {loose} " in f" {name} " for name in self.names)


def learn_decorations(feed_title: str | None, titles: Iterable[str]) -> Decorations:
    """What one source adds around its titles, learnt from those titles and its feed title.

    An affix is a decoration when it names the source (its feed title or a part
    of it) or when the same affix, numbers aside, recurs on several of the
    source's titles ("Opinion | …", "… - Reuters", "Giant Bombcast 512: …").
    """
    names = {_loose(feed_title or "")}
    for part in re.split(_SEPARATOR, feed_title or ""):
        names.add(_loose(part))
    names.discard("")
    titles = [unicodedata.normalize("NFKC", t).strip() for t in titles if t]
    counts: dict[str, Counter] = {"prefix": Counter(), "suffix": Counter()}
    for title in set(titles):
        for position in counts:
            split = split_affix(title, position)
            if split:
                counts[position][title_shape(split[0])] += 1
    needed = max(2, int(MIN_DECORATION_SHARE * len(set(titles))))
    recurring = {p: frozenset(s for s, n in c.items() if n >= needed and s) for p, c in counts.items()}
    return Decorations(recurring["prefix"], recurring["suffix"], frozenset(names))


_ARTICLES = {"the", "a", "an", "le", "la", "les", "der", "die", "das", "el", "il", "o", "de"}


def _loose(text: str) -> str:
    return " ".join(w for w in _fold(text).split() if w not in _ARTICLES)


# Words that make a title a series label rather than a story ("Weekly roundup", "Episode 12").
GENERIC_WORDS = frozenset("""
weekly daily monthly yearly annual roundup round up links link open thread threads podcast episode ep
show news update updates live digest newsletter briefing brief morning afternoon evening night edition
issue vol volume part chapter week day month year today tonight weekend review recap notes note
thoughts random misc miscellany miscellaneous mailbag q qa ama announcement announcements release
released new post posts blog untitled photo photos picture pictures video videos quote quotes reading
list top best highlights headlines bulletin report column special feature minisode bonus chat
interview interviews discussion quick short takes stuff things odds ends bits pieces reader readers
mail fun good reads read worth interesting assorted various latest recent roundtable catchup catch
welcome hello introduction intro preview teaser trailer sneak peek summary wrap wrapup friday monday tuesday wednesday thursday saturday sunday january
february march april may june july august september october november december jan feb mar apr jun
jul aug sep sept oct nov dec
""".split())


def is_generic_title(key: str, recurring_titles: frozenset[str] = frozenset()) -> bool:
    """A title that cannot say which story an item is: only generic words, dates and numbers
    ("Weekly roundup", "Podcast episode 12", "2008-11-11"), or one this source gives several items
    ("Daily forecast for London"). A recurring series name with a number that changes
    ("Giant Bombcast 512") still names one episode."""
    content = [w for w in key.split() if w not in GENERIC_WORDS and w not in STOPWORDS and not w.isdigit()]
    return not content or key in recurring_titles


def title_words(key: str) -> frozenset[str]:
    """The words of a folded title that carry its meaning."""
    return frozenset(w for w in key.split() if w not in STOPWORDS)


def title_similarity(one: str, two: str) -> float:
    """Jaccard similarity of two folded titles' meaningful words."""
    a, b = title_words(one), title_words(two)
    return len(a & b) / len(a | b) if a and b else 0.0


# Text

_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:p|div|br|li|ul|ol|h[1-6]|blockquote|pre|tr|td|th|table|section|article|header|footer|"
    r"aside|figure|figcaption|hr|dd|dt|dl|center)\b[^>]*>", re.IGNORECASE)
_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_TOKEN = re.compile(_CJK + r"|[^\W_]+")
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
    return _paragraphs(fragment)[0]


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
    """The paragraphs of an HTML fragment, boilerplate removed: as plain text, and as words (those with any)."""
    if not fragment:
        return [], []
    blocks = list(filter(None, map(plain_text, [p for p in _BLOCK_TAG.split(fragment) if p and not p.isspace()])))
    words = _block_words(blocks)
    if words is not None:
        kept = [(block, w) for block, w in zip(blocks, words) if not _is_boilerplate(block, w)]
    else:
        kept = [(block, _words(block)) for block in blocks if not _is_boilerplate(block)]
    if not kept:
        return [], []
    last = kept[-1][0]
    if any(mark in last[-80:] for mark in _TAIL_MARKS):
        end = (last[:-80] + _TAIL.sub("", last[-80:])).strip()
        if end != last:
            kept[-1] = (end, _words(end))
    return [block for block, _ in kept if block], [w for _, w in kept if w]


def _words(block: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", block).casefold())


def _block_words(blocks: list[str]) -> list[list[str]] | None:
    """_words of each paragraph, found in all at once; None for a text with a CJK character or one past the BMP.

    Every character that is not part of a word is turned into a space with
    one table lookup; splitting on whitespace then finds the same words as the
    regex, which is needed only where a CJK character makes a word of its own.
    Most texts are made only of characters NFKC leaves alone whatever their
    neighbours: for them the lookup also case-folds, and NFKC is skipped.
    """
    if not blocks:
        return []
    unfolded, folded = _spacing()
    text = "\n".join(blocks)
    spaced = unfolded[np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)]
    if not spaced.all():
        text = unicodedata.normalize("NFKC", text).casefold()  # folds no character into a newline
        spaced = folded[np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)]
        if not spaced.all():
            return None
    if spaced.max() < 256:
        text = spaced.astype(np.uint8).tobytes().decode("latin-1")
    else:
        text = spaced.tobytes().decode("utf-16-le")
    return [block.split() for block in text.split("\n")]


@cache
def _spacing() -> tuple[np.ndarray, np.ndarray]:
    """Two tables of what _block_words turns each UTF-16 code unit into, for unfolded and for folded text.

    Folded: the unit itself if _TOKEN's [^\\W_]+ words hold it; 0 for a CJK
    character (a word alone for _TOKEN) or half a surrogate pair; a newline
    for a newline and a space for anything else. Unfolded: the folded entry of
    the unit's case folding if NFKC leaves the unit as it is, alone and beside
    anything, and case folding makes it one character; 0 otherwise (and past U+3000, where few texts need it).
    """
    chars = [chr(unit) for unit in range(0x10000)]
    folded = np.full(len(chars), ord(" "), dtype=np.uint16)
    for match in re.finditer(r"[^\W_]+", "".join(chars)):
        folded[match.start():match.end()] = np.arange(match.start(), match.end())
    for match in re.finditer(_CJK + "+", "".join(chars)):
        folded[match.start():match.end()] = 0
    folded[0xD800:0xE000] = 0
    folded[ord("\n")] = ord("\n")

    # Below U+3000 (the scripts and punctuation of most texts): each unit normalised alone, all in one call,
    # for a newline composes and reorders with nothing.
    chars = chars[:0x3000]
    chars[ord("\n")] = " "
    joined = "\n".join(chars)
    normalised, case_folded = unicodedata.normalize("NFKC", joined).split("\n"), joined.casefold().split("\n")
    unfolded = np.zeros(len(folded), dtype=np.uint16)
    if len(normalised) != len(chars) or len(case_folded) != len(chars):
        return unfolded, folded  # not the Unicode this was written for: always NFKC
    unchanged = np.array(list(map(str.__eq__, normalised, chars)))
    one_char = np.array([len(f) == 1 and f < "\U00010000" for f in case_folded])
    # What may compose with or reorder around the character before it: marks (all the later characters of
    # canonical decompositions are) and Hangul vowels and final consonants.
    alone = np.array([category[0] != "M" for category in map(unicodedata.category, chars)])
    alone &= np.array(list(map(unicodedata.combining, chars))) == 0
    alone[0x1160:0x1200] = False
    keep = np.flatnonzero(unchanged & one_char & alone).tolist()
    unfolded[keep] = folded[[ord(case_folded[unit]) for unit in keep]]
    unfolded[ord("\n")] = ord("\n")
    return unfolded, folded


# How a boilerplate paragraph too long for BOILERPLATE_SHORT can start: the words BOILERPLATE_START opens with.
_START_WORDS = ("this", "originally", "first", "the post", "republished", "reprinted", "reproduced", "syndicated",
                "crossposted", "cross posted")


def _is_boilerplate(block: str, words: list[str] | None = None) -> bool:
    """Whether a paragraph is one republishers add; `words`, when given, are its _words and hold no CJK character."""
    spaces = block.count(" ")
    if spaces > 2 * BOILERPLATE_MAX_WORDS:
        return False
    if spaces > 2 * SHORT_BOILERPLATE_WORDS and not _fold(block[:80]).startswith(_START_WORDS):
        return False  # most paragraphs: folding only their opening decides
    folded = _fold(block) if words is None else " ".join(words)  # the same, when words has no CJK character
    count = len(folded.split()) if words is None else len(words)
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


def content_hash(text: str) -> str | None:
    """A hash of the normalised text; None for texts too short to identify a story."""
    if len(text.split(None, 19)) < 20:  # fewer than 20 words, counting no further than that
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


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
