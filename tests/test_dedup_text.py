"""Text normalisation, one transformation at a time, on real paragraphs (tests/fixtures/dedup/real_paragraphs.json).

Each edit is one a CMS, an editor, a theme or a PDF makes to a copy; the
folded words of the edited paragraph must be the original's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.dedup.text import fold, fold_characters, text_tokens, unwrap_markup

PARAGRAPHS = json.loads((Path(__file__).parent / "fixtures/dedup/real_paragraphs.json").read_text("utf-8"))
IDS = [f"{p['lang']}-{i}" for i, p in enumerate(PARAGRAPHS)]
LONG_WORD = re.compile(r"[^\W\d_]{8,}")


def _every_long_word(text: str, fn) -> str:
    return LONG_WORD.sub(lambda m: fn(m.group(0)), text)


def _middle(word: str, mark: str) -> str:
    return word[:4] + mark + word[4:]


TYPOGRAPHY = {
    "soft hyphen U+00AD": lambda t: _every_long_word(t, lambda w: _middle(w, "\u00ad")),
    "&shy;": lambda t: _every_long_word(t, lambda w: _middle(w, "&shy;")),
    "&#173;": lambda t: _every_long_word(t, lambda w: _middle(w, "&#173;")),
    "&amp;shy; (escaped twice)": lambda t: _every_long_word(t, lambda w: _middle(w, "&amp;shy;")),
    "zero-width space": lambda t: _every_long_word(t, lambda w: _middle(w, "\u200b")),
    "zero-width non-joiner": lambda t: _every_long_word(t, lambda w: _middle(w, "\u200c")),
    "zero-width joiner": lambda t: _every_long_word(t, lambda w: _middle(w, "\u200d")),
    "word joiner": lambda t: _every_long_word(t, lambda w: _middle(w, "\u2060")),
    "BOM": lambda t: "\ufeff" + _every_long_word(t, lambda w: _middle(w, "\ufeff")),
    "no-break spaces": lambda t: t.replace(" ", "\u00a0"),
    "thin spaces": lambda t: t.replace(" ", "\u2009"),
    "narrow no-break spaces": lambda t: t.replace(" ", "\u202f"),
    "&nbsp;": lambda t: t.replace(" ", "&nbsp;"),
    "curly quotes": lambda t: re.sub(r"(\w)'(\w)", "\\1\u2019\\2", t).replace('"', "\u201c"),
    "modifier apostrophe": lambda t: re.sub(r"(\w)'(\w)", "\\1\u02bc\\2", t),
    "numeric entities": lambda t: "".join(f"&#{ord(c)};" if ord(c) > 127 or c == "'" else c for c in t),
    "hex entities": lambda t: "".join(f"&#x{ord(c):X};" if ord(c) > 127 else c for c in t),
    "en dashes": lambda t: t.replace("-", "\u2013"),
    "em dashes": lambda t: t.replace(" - ", "\u2014").replace("-", "\u2014"),
    "minus signs": lambda t: t.replace("-", "\u2212"),
    "ligatures": lambda t: t.replace("ffi", "\ufb03").replace("fi", "\ufb01").replace("fl", "\ufb02"),
    "full-width letters": lambda t: "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" else c for c in t),
}

def _initial(text: str, markup: str) -> str:
    """The first letter opening a word, as a theme's drop cap (`markup` with {c} for the letter)."""
    at = re.search(r"\b[^\W\d_]", text).start()
    return text[:at] + markup.format(c=text[at]) + text[at + 1:]


MARKUP = {
    "drop cap span": lambda t: _initial(t, '<span class="dropcap">{c}</span>'),
    "drop cap big": lambda t: _initial(t, '<big class="initial">{c}</big>'),
    "image initial": lambda t: _initial(t, '<img src="https://i.example/{c}.png" alt="{c}" class="initial">'),
    "bold first letters": lambda t: re.sub(r"\b([A-Z])(\w+)", r"<b>\1</b>\2", t),
    "inline tags inside words": lambda t: _every_long_word(
        t, lambda w: f"<em>{w[:2]}</em><strong>{w[2:4]}</strong><a href='https://t.example/'>{w[4:6]}</a>"
                     f"<mark>{w[6:]}</mark>"),
    "span, font, small, u, abbr": lambda t: _every_long_word(
        t, lambda w: f'<span class="x">{w[:3]}</span><font color="red">{w[3:5]}</font><small>{w[5]}</small>'
                     f"<u>{w[6]}</u><abbr>{w[7:]}</abbr>"),
    "wbr": lambda t: _every_long_word(t, lambda w: _middle(w, "<wbr>")),
    "footnote markers": lambda t: re.sub(r"(\w{6,})([.,])", r'\1<sup><a href="#fn1" id="ref1">1</a></sup>\2', t),
    "bracketed footnotes": lambda t: re.sub(r"(\w{6,})([.,])", r"\1<sup>[2]</sup>\2", t),
    "print hyphenation": lambda t: re.sub(r"\b([a-z]{4})([a-z]{4,})\b", r"\1-<br>\2", t, count=3),
}


@pytest.mark.parametrize("edit", TYPOGRAPHY)
@pytest.mark.parametrize("paragraph", PARAGRAPHS, ids=IDS)
def test_typography_is_folded(paragraph, edit):
    text = paragraph["paragraph"]
    edited = TYPOGRAPHY[edit](text.replace("&", "&amp;").replace("<", "&lt;"))
    assert text_tokens(f"<p>{edited}</p>") == text_tokens(f"<p>{text}</p>")


@pytest.mark.parametrize("edit", MARKUP)
@pytest.mark.parametrize("paragraph", PARAGRAPHS, ids=IDS)
def test_inline_markup_joins_words(paragraph, edit):
    text = paragraph["paragraph"]
    assert text_tokens(f"<p>{MARKUP[edit](text)}</p>") == text_tokens(f"<p>{text}</p>")


@pytest.mark.parametrize("tag", ["p", "div", "li", "h2", "blockquote", "td", "figcaption", "section", "article"])
def test_block_elements_separate_words(tag):
    assert text_tokens(f"<{tag}>Wash</{tag}><{tag}>ington</{tag}>") == ["wash", "ington"]
    assert text_tokens("Wash<br>ington") == ["wash", "ington"]


def test_the_issues_cases():
    assert text_tokens('<p><span class="dropcap">A</span>fter the vote</p>') == ["after", "the", "vote"]
    assert text_tokens("<p><b>W</b>ashington said</p>") == ["washington", "said"]


def test_titles_fold_the_same_way():
    assert fold("Clearly I\u2019ve missed\u00a0an op\u00adportunity \u2014 \ufb01ne") == fold(
        "Clearly I've missed an opportunity - fine")
    assert fold("Kol\u00edkov\u00e1 hovor\u00ed\u200b o situ\u00e1cii") == "kolíková hovorí o situácii"


def test_digit_grouping_is_folded():
    assert fold_characters("12\u202f345 and 1,234,567 and 12\u00a0345") == "12345 and 1234567 and 12345"
    assert fold_characters("1,5 and 2, 345 and 1,23") == "1,5 and 2, 345 and 1,23"  # not grouping
    assert text_tokens("<p>3\u2009000 km</p>") == text_tokens("<p>3,000 km</p>") == ["3000", "km"]


def test_a_persian_zwnj_is_folded_the_same_in_every_copy():
    with_zwnj, joined = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0645\u06cc\u062e\u0648\u0627\u0647\u0645"
    assert fold(with_zwnj) == fold(joined)
    assert text_tokens(f"<p>{with_zwnj}</p>") == text_tokens(f"<p>{joined}</p>")


def test_markup_unwrapping_keeps_what_is_not_a_marker():
    assert unwrap_markup("x<sup>2</sup>") == "x"  # a footnote-sized marker goes, in every copy alike
    assert unwrap_markup("10<sup>th</sup>") == "10<sup>th</sup>"
    assert unwrap_markup("well-<br>Known") == "well-<br>Known"  # a capital after the break: not one word
    assert unwrap_markup('<img alt="Logo" src="x">') == '<img alt="Logo" src="x">'
    assert unwrap_markup("&amp;amp; &amp;#8217;") == "&amp; &#8217;"


@pytest.mark.parametrize("fragment", [
    "<b>W</b>ashington\nsaid <i>no</i>\n\n",
    "Fish &amp; chips\n&lt;b&gt;bold&lt;/b&gt; stays text\nplain",
    "a &amp;lt;tag&amp;gt; twice escaped\n<script>x()</script> after",
    "x < y and y > z\n<a href='/q?a=1&amp;b=2'>link</a>\n&#10;newline entity",
    "\x01control\n<em>ok</em>",
    "a form feed: in&#12;side, in&#xC;side, in&#x0c;side\n<b>in</b> references",  # the one reference XML cannot carry
    "&nbsp;no&nbsp;break &amp; &lt;\n<i>named</i>  references   only",
])
def test_plain_lines_is_plain_text_of_each_line(fragment):
    from aggregator.reader.sanitize import plain_lines, plain_text
    expected = [plain_text(line) for line in fragment.split("\n")]
    assert plain_lines(fragment) == expected
    assert [" ".join(line.split()) for line in plain_lines(fragment, spaced=False)] == expected


# The shortcuts below (a byte table for ASCII folds, a word lookup before the boilerplate patterns, a check for
# a separator before the affix patterns, XML-forbidden characters told by UTF-8, one strip and decode for all
# lines) must decide as the definitions they skip would, on any input: each against that definition.

_AMPERSANDS = ["Fish ", "&amp;", " chips", "Q&A", "&", "AT&T", "&amp;lt;b&amp;gt;", "&lt;", "&gt;", "&#38;", "&amp;amp;",
               "<b>", "</b>", "\n", "&#12;", "&copy", "&copy;", "&notit;", "&nbsp;", "é", "x", " ", "\x01", "&#x26;lt;",
               "<a href='/?a=1&amp;b=2'>", "</a>", "<i>", "</i>", "&#0;", "&zwnj;", "&amp;#8217;", ";", "#", "lt",
               "<template>", "</template>"]  # parsed apart from other tags: wherever plain_text needs the parser


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_AMPERSANDS), max_size=14))
def test_plain_lines_is_plain_text_of_each_line_whatever_its_ampersands(pieces):
    from aggregator.reader.sanitize import plain_lines, plain_text
    fragment = "".join(pieces)
    assert plain_lines(fragment) == [plain_text(line) for line in fragment.split("\n")]


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(blacklist_categories=()), max_size=30))
def test_xml_safe_removes_exactly_what_xml_forbids(text):
    from aggregator.reader.sanitize import XML_FORBIDDEN, xml_safe
    assert xml_safe(text) == XML_FORBIDDEN.sub("", text)
    for forbidden in "\x0c", "\ufffe", "\uffff", "\x01":  # each alone: a lone surrogate takes the regex for all
        assert xml_safe(f"é{text}{forbidden}ok") == XML_FORBIDDEN.sub("", f"é{text}") + "ok"


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=40))
def test_an_ascii_fold_is_the_unicode_fold(text):
    from aggregator.dedup.text import _PUNCTUATION
    unicode_fold = " ".join(_PUNCTUATION.sub(" ", fold_characters(text).casefold()).split())
    assert fold(text) == unicode_fold


def _pattern_words() -> list[str]:
    from aggregator.dedup.text import BOILERPLATE_SHORT, BOILERPLATE_START
    return sorted({w for p in (BOILERPLATE_SHORT, BOILERPLATE_START) for w in re.findall(r"[a-z]+", p.pattern)}
                  - {"re"}) + ["here", "the", "republished", "reposted", "vote", "city", "fish", "2020"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_pattern_words()), max_size=8), st.integers(0, 60))
def test_the_boilerplate_shortcut_decides_as_the_patterns(words, padding):
    from aggregator.dedup.text import (BOILERPLATE_MAX_WORDS, BOILERPLATE_SHORT, BOILERPLATE_START,
                                       SHORT_BOILERPLATE_WORDS, _is_boilerplate)
    for paragraph in (words, words + ["vote"] * padding, ["vote"] * padding + words):
        folded = " ".join(paragraph)
        expected = len(paragraph) <= BOILERPLATE_MAX_WORDS and bool(BOILERPLATE_START.match(folded) or (
            len(paragraph) <= SHORT_BOILERPLATE_WORDS and BOILERPLATE_SHORT.search(folded)))
        assert _is_boilerplate(paragraph) == expected, folded


_TITLE_PARTS = ["Reuters", "Opinion", "Vote", "city", "2020", "Ep 12", " - ", " | ", "|", ": ", ":", "::", " — ", " – ",
                " -", "- ", "-", " / ", " » ", "(", ")", "[", "]", " ", "  ", "…", "é", "℃", "①", "_", "!"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_TITLE_PARTS), max_size=10), st.sampled_from(["prefix", "suffix"]))
def test_an_affix_is_split_off_as_the_patterns_split_it(parts, position):
    from aggregator.dedup import titles
    text = "".join(parts)
    for pattern in titles._PREFIXES if position == "prefix" else titles._SUFFIXES:
        if match := pattern.match(text):
            break
    affix, rest = (match.groups() if position == "prefix" else reversed(match.groups())) if match else ("", "")
    balanced = all(part.count("(") == part.count(")") and part.count("[") == part.count("]") for part in (affix, rest))
    expected = (affix.strip(), rest.strip()) if match and balanced and fold(rest) and fold(affix) else None
    assert titles.split_affix.__wrapped__(text, position) == expected


_IMAGES = ["<img", "<IMG", " alt=", " ALT=", "alt=", '"', "'", "A", "é", "1", "Logo", ">", "/>", " />", " src=x", " ",
           "fter", "<b>", "_"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_IMAGES), max_size=12))
def test_an_image_initial_is_found_wherever_the_pattern_finds_it_in_an_img_or_IMG_tag(pieces):
    from aggregator.dedup.text import _IMAGE_INITIAL
    fragment = "".join(pieces)
    assert unwrap_markup(fragment) == _IMAGE_INITIAL.sub(r"\1", fragment)
