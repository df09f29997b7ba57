"""The include/exclude grammar of an output: plain words, or /regex/flags run by a linear-time engine.

A plain word or phrase matches case-insensitively as a whole word ("Mali"
matches "mali" but not "Somalia"); whitespace inside a phrase matches any run
of whitespace. ``/regex/flags`` (flags i, m, s) is compiled by RE2, whose
matching time is linear in the text, so no pattern in a config file can hang
publishing on a crafted title (catastrophic backtracking cannot happen). RE2
has no backreferences or lookaround; such a pattern is a config error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import re2

REGEX_TERM = re.compile(r"/(.*)/([a-zA-Z]*)", re.DOTALL)
REGEX_FLAGS = "ims"  # ignore case, ^/$ at line breaks, . matches a newline
MAX_PATTERN_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern


class _Searcher(Protocol):
    def search(self, text: str): ...


@dataclass(frozen=True)
class Pattern:
    """An include/exclude term: a plain word (case-insensitive) or /regex/flags."""

    text: str
    regex: _Searcher

    def search(self, haystack: str) -> bool:
        return self.regex.search(haystack) is not None


def parse_pattern(value: object) -> Pattern:
    """One term of `include`/`exclude`; ValueError with a message an operator can act on."""
    text = str(value)
    match = REGEX_TERM.fullmatch(text)
    if match:
        return Pattern(text, _compile_regex(text, match.group(1), match.group(2)))
    if not text.strip():
        raise ValueError("an empty word matches everything; remove it")
    return Pattern(text, _word_regex(text))


def _word_regex(text: str) -> re.Pattern:
    """A whole-word, case-insensitive literal: only an escaped literal and lookarounds, so linear."""
    words = [re.escape(word) for word in text.split()]
    body = r"\s+".join(words)
    left = r"(?<!\w)" if re.match(r"\w", text.strip()[0]) else ""
    right = r"(?!\w)" if re.match(r"\w", text.strip()[-1]) else ""
    return re.compile(left + body + right, re.IGNORECASE)


def _compile_regex(text: str, source: str, flags: str):
    unknown = sorted(set(flags) - set(REGEX_FLAGS))
    if unknown:
        raise ValueError(f"bad regular expression {text!r}: unknown flag {''.join(unknown)!r}; "
                         "use i (ignore case), m (multi-line) or s (dot matches newline)")
    if not source:
        raise ValueError(f"bad regular expression {text!r}: an empty pattern matches everything")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PATTERN_MEMORY
    prefix = f"(?{''.join(sorted(set(flags)))})" if flags else ""
    try:
        return re2.compile(prefix + source, options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"bad regular expression {text!r}: {reason} (filters use RE2, a linear-time engine "
            "without backreferences or lookaround)") from None
