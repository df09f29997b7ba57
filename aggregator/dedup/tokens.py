"""Words: the tokeniser (runs of letters and digits, each CJK character a word of its own, after NFKC and
case folding), and the tables that let most texts be split into the same words without its regex.

Pure functions over strings; text.py folds markup and characters first.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import numpy as np

_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_TOKEN = re.compile(_CJK + r"|[^\W_]+")


def _words(block: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", block).casefold())


def _block_words(blocks: list[str]) -> list[list[str]] | None:
    """_words of each paragraph, found in all at once; None for a text with a CJK character or one past the BMP
    that is not an emoji (or another pictograph).

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
    spaced = unfolded.take(np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype=np.uint16))
    if not spaced.all():
        if _PAST_BMP.search(text):  # emoji, mostly: as much a space as the regex finds them, and NFKC leaves them
            text = _pictographs().sub(" ", text)
        text = unicodedata.normalize("NFKC", text).casefold()  # folds no character into a newline
        spaced = folded.take(np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype=np.uint16))
        if not spaced.all():
            return None
    if spaced.max() < 256:
        text = spaced.astype(np.uint8).tobytes().decode("latin-1")
    else:
        text = spaced.tobytes().decode("utf-16-le")
    return [block.split() for block in text.split("\n")]


_PAST_BMP = re.compile("[\U00010000-\U0010ffff]")


@cache
def _pictographs() -> re.Pattern:
    """The emoji and pictographs past the BMP (U+1F000-U+1FAFF, and flags' tag characters) that no word of
    _TOKEN holds and NFKC and case folding leave alone: spaces to _block_words, as they are to _words."""
    spaces = {ord(c) for c in map(chr, (*range(0x1F000, 0x1FB00), *range(0xE0000, 0xE0080))) if not _TOKEN.match(c)
              and unicodedata.normalize("NFKC", c) == c == c.casefold() and unicodedata.category(c)[0] != "M"}
    starts, ends = sorted(c for c in spaces if c - 1 not in spaces), sorted(c for c in spaces if c + 1 not in spaces)
    # As ranges: the regex engine tests a character past the BMP against each member of a class in turn.
    return re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in zip(starts, ends)) + "]")


@cache
def _spacing() -> tuple[np.ndarray, np.ndarray]:
    """Two tables of what _block_words turns each UTF-16 code unit into, for unfolded and for folded text.

    Folded: the unit itself if _TOKEN's [^\\W_]+ words hold it; 0 for a CJK
    character (a word alone for _TOKEN) or half a surrogate pair; a newline
    for a newline and a space for anything else. Unfolded: the folded entry of
    the unit's case folding if NFKC leaves the unit as it is, alone and beside
    anything, and case folding makes it one character; a space if NFKC and case folding make it only
    characters that are a space to _TOKEN (and no mark); 0 otherwise (and past U+3000, where few texts need it).
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
    # What NFKC turns into characters that are no word's and no mark (an ellipsis into three full stops): as
    # much a space as they are, and nothing composes with them.
    spacing = {chr(unit) for unit in np.flatnonzero(folded == ord(" ")).tolist()}
    for unit in np.flatnonzero(~unchanged & alone).tolist():
        into = normalised[unit].casefold()
        if into and all(c in spacing and unicodedata.category(c)[0] != "M" for c in into):
            unfolded[unit] = ord(" ")
    unfolded[ord("\n")] = ord("\n")
    return unfolded, folded
