"""Fingerprints of texts: word shingles, the similarities between them, and MinHash LSH index keys.

The keys let the store find the few stored texts worth comparing with a new
one without comparing every pair; the shingles then give exact scores.
Pure functions over token lists and numpy arrays.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field

import numpy as np

from .identity import STOPWORDS, block_tokens

SHINGLE_WORDS = 3
LEAD_WORDS = 40  # the opening a summary shares with its full text
MIN_INDEXED_WORDS = 20
NUM_PERM, BANDS, ROWS = 64, 16, 4  # P(two texts share a key) = 1 - (1 - J**4)**16: 0.64 at J=0.5, 0.98 at J=0.7
MINHASH_SEED = 20240927
#: Changes whenever the keys below would come out differently; the store rebuilds its index then.
INDEX_VERSION = f"minhash-affine32-{NUM_PERM}-{BANDS}x{ROWS}-lead{LEAD_WORDS}-shingle{SHINGLE_WORDS}-v2"
_MULTIPLIERS = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D], dtype=np.uint64)


def affine32_permutations(seed: int, count: int) -> np.ndarray:
    """datasketch's affine32 MinHash permutations for this seed, rows a (odd) and b: the same keys without
    importing datasketch, whose package pulls in scipy (about 50 MB of every process's memory)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, count, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, count, dtype=np.uint32)
    return np.array([a, b])


_PERMUTATIONS = affine32_permutations(MINHASH_SEED, NUM_PERM)


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """A text's word shingles in reading order: enough to compare it with any other text.

    Shingles made only of function words ("one of the") are left out: every
    text shares them, so they would only make unrelated texts look alike.
    """

    words: int
    hashes: np.ndarray = field(repr=False)  # one 32-bit hash per shingle, in reading order
    blocks: tuple[int, ...] = ()  # words per paragraph

    def shingles(self, upto_words: int | None = None) -> np.ndarray:
        """The distinct shingles of the whole text, or of its first `upto_words` words."""
        return self.span(0, self.words if upto_words is None else upto_words)

    def span(self, start: int, end: int) -> np.ndarray:
        """The distinct shingles lying wholly within words [start, end)."""
        hashes = self.hashes[max(0, start):max(0, end - SHINGLE_WORDS + 1)]
        return np.unique(hashes[hashes != 0])


def fingerprint(tokens: list[str], blocks: tuple[int, ...] = ()) -> Fingerprint:
    if len(tokens) < SHINGLE_WORDS:
        return Fingerprint(len(tokens), np.zeros(0, dtype=np.uint32), blocks)
    known = _TOKEN_IDS
    ids = np.array([known.get(t) or _token_id(t) for t in tokens], dtype=np.uint64)
    stop = np.isin(ids, _STOPWORD_IDS)
    n = len(tokens) - SHINGLE_WORDS + 1
    mixed = np.zeros(n, dtype=np.uint64)
    only_stopwords = np.ones(n, dtype=bool)
    for offset in range(SHINGLE_WORDS):
        mixed = ((mixed ^ ids[offset:offset + n]) * _MULTIPLIERS[offset]) & 0xFFFFFFFF
        only_stopwords &= stop[offset:offset + n]
    mixed[only_stopwords | (mixed == 0)] = 0  # 0 marks a left-out shingle
    return Fingerprint(len(tokens), mixed.astype(np.uint32), blocks)


_TOKEN_IDS: dict[str, int] = {}  # words seen lately: a lookup costs a third of hashing one again
_TOKEN_IDS_MAX = 100_000


def _token_id(token: str) -> int:
    if len(_TOKEN_IDS) >= _TOKEN_IDS_MAX:
        _TOKEN_IDS.clear()
    value = _TOKEN_IDS[token] = zlib.crc32(token.encode("utf-8", "surrogatepass"))
    return value


_STOPWORD_IDS = np.array(sorted({_token_id(w) for w in STOPWORDS}), dtype=np.uint64)


def text_fingerprint(fragment: str | None) -> tuple[Fingerprint, list[str]]:
    """The fingerprint of an entry's HTML, and its words."""
    blocks = block_tokens(fragment)
    tokens = [token for block in blocks for token in block]
    return fingerprint(tokens, tuple(len(b) for b in blocks)), tokens


def index_keys(print_: Fingerprint) -> list[int]:
    """The LSH band keys of a text and of its opening, in one key space.

    Two texts sharing a key are worth comparing: near-identical full texts
    share full-text bands; a summary shares bands with its full text's opening.
    """
    if print_.words < MIN_INDEXED_WORDS:
        return []
    keys: set[int] = set()
    for shingles in (print_.shingles(), print_.shingles(LEAD_WORDS)):
        if len(shingles) < MIN_INDEXED_WORDS // 2:
            continue
        values = minhash(shingles).astype("<u4")
        for band in range(BANDS):
            digest = hashlib.blake2b(values[band * ROWS:(band + 1) * ROWS].tobytes(), digest_size=8,
                                     person=band.to_bytes(2, "little")).digest()
            keys.add(int.from_bytes(digest, "little") >> 1)  # fits a signed 64-bit column
    return sorted(keys)


def minhash(shingles: np.ndarray) -> np.ndarray:
    """datasketch's affine32 MinHash of these shingle hashes, the same values without its per-sketch costs."""
    hv = shingles.astype(np.uint32).reshape(-1, 1)
    hv = hv ^ (hv >> np.uint32(16))
    hv = hv * np.uint32(0x85EBCA6B)
    hv = hv ^ (hv >> np.uint32(13))
    hv = hv * np.uint32(0xC2B2AE35)
    hv = hv ^ (hv >> np.uint32(16))
    return (hv * _PERMUTATIONS[0] + _PERMUTATIONS[1]).min(axis=0)


def jaccard(one: np.ndarray, two: np.ndarray) -> float:
    if not len(one) or not len(two):
        return 0.0
    common = len(np.intersect1d(one, two, assume_unique=True))
    return common / (len(one) + len(two) - common)


def containment(part: np.ndarray, whole: np.ndarray) -> float:
    """The share of `part`'s shingles found in `whole`."""
    if not len(part):
        return 0.0
    return len(np.intersect1d(part, whole, assume_unique=True)) / len(part)



def title_index_key(key: str, own_title: bool) -> int:
    """A title key as an index key (same key space as the LSH bands): a copy's own title and the
    keys left when affixes come off hash apart, so leftovers ("Example News") never meet each other."""
    person = b"title" if own_title else b"title-variant"
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, person=person).digest()
    return int.from_bytes(digest, "little") >> 1
