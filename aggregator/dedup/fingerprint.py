"""Fingerprints of texts: word shingles, the similarities between them, and MinHash LSH index keys.

The keys let the store find the few stored texts worth comparing with a new
one without comparing every pair; the shingles then give exact scores.
Pure functions over token lists and numpy arrays.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .text import STOPWORDS, joined_words, text_words

SHINGLE_WORDS = 3
LEAD_WORDS = 40  # the opening a summary shares with its full text
MIN_INDEXED_WORDS = 20
# P(two texts share a key) = 1 - (1 - J**4)**8: 0.40 at J=0.5, 0.87 at J=0.7, 0.98 at J=0.8
NUM_PERM, BANDS, ROWS = 32, 8, 4  # ROWS even, and at most 6: band_keys reads rows in pairs, one multiplier each
MINHASH_SEED = 20240927
#: Changes whenever the keys below would come out differently; the store rebuilds its index then (v3: the
#: folded texts of issue 19; v4: band keys by multiply and xor instead of BLAKE2b, shingle hashes as v2 made them).
INDEX_VERSION = f"minhash-affine32-{NUM_PERM}-{BANDS}x{ROWS}-lead{LEAD_WORDS}-shingle{SHINGLE_WORDS}-v4"
_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)  # band keys


def affine32_permutations(seed: int, count: int) -> np.ndarray:
    """datasketch's affine32 MinHash permutations for this seed, rows a (odd) and b: the same keys without
    importing datasketch, whose package pulls in scipy (about 50 MB of every process's memory)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, count, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, count, dtype=np.uint32)
    return np.array([a, b])


_PERMUTATIONS = affine32_permutations(MINHASH_SEED, NUM_PERM)
_PERMUTATION_COLUMNS = _PERMUTATIONS.reshape(2, NUM_PERM, 1)


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
        return self.distinct if upto_words is None else self.span(0, upto_words)

    @cached_property
    def distinct(self) -> np.ndarray:
        """The whole text's distinct shingles, sorted: kept, since a stored copy may be judged against many."""
        return self.span(0, self.words)

    def span(self, start: int, end: int) -> np.ndarray:
        """The distinct shingles lying wholly within words [start, end)."""
        hashes = self.hashes[max(0, start):max(0, end - SHINGLE_WORDS + 1)]
        return np.unique(hashes[hashes != 0])


def fingerprint(tokens: list[str], blocks: tuple[int, ...] = (), joined: bytes | None = None) -> Fingerprint:
    """Each shingle's 32-bit hash: its three tokens' CRC-32s chained by multiply and xor; 0 for a shingle of
    stopwords only. The tokens are encoded in one call (`joined`, when the caller has it: text.joined_words)
    and hashed by zlib in one pass; a stopword is told by its CRC-32. No Python code runs per token, and no
    token is remembered from one text to the next."""
    count = len(tokens)
    if count < SHINGLE_WORDS:
        return Fingerprint(count, np.zeros(0, dtype=np.uint32), blocks)
    encoded = (joined_words(tokens) if joined is None else joined).split(b" ")
    crcs = np.fromiter(map(zlib.crc32, encoded), dtype=np.uint32, count=count)
    stop = _STOPWORD_SLOTS.take(crcs & _SLOT) == crcs
    n = count - SHINGLE_WORDS + 1
    mixed = crcs[:n] * _MULTIPLIERS32[0]  # 32-bit products wrap
    mixed ^= crcs[1:n + 1]
    mixed *= _MULTIPLIERS32[1]
    mixed ^= crcs[2:]
    mixed *= _MULTIPLIERS32[2]
    only_stopwords = stop[:n] & stop[1:n + 1]
    only_stopwords &= stop[2:]
    mixed[only_stopwords] = 0  # 0 marks a left-out shingle
    return Fingerprint(count, mixed, blocks)


def _stopword_slots() -> np.ndarray:
    """A table of 2**16 slots, one per low 16 bits of a CRC-32: in each, the CRC-32 of the stopword whose
    CRC ends so, or one that ends otherwise (so no word's matches). One lookup and one compare tell a
    stopword. No two of ours share a slot (test_stopwords_are_the_listed_words_exactly), and a word that
    shares a stopword's CRC-32 (one in ten million) only leaves out the shingles it makes with two stopwords."""
    crcs = np.array([zlib.crc32(word.encode("utf-8")) for word in STOPWORDS], dtype=np.uint32)
    table = np.arange(1 << 16, dtype=np.uint32) ^ np.uint32(1)
    table[crcs & _SLOT] = crcs
    return table


_SLOT = np.uint32(0xFFFF)
_STOPWORD_SLOTS = _stopword_slots()
_MULTIPLIERS32 = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D], dtype=np.uint32)
_MIX = tuple(map(np.uint64, (30, 0xBF58476D1CE4E5B9, 27, 0x94D049BB133111EB, 31)))


def _splitmix64(value: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place: every bit of the input moves every bit of the output."""
    value ^= value >> _MIX[0]
    value *= _MIX[1]
    value ^= value >> _MIX[2]
    value *= _MIX[3]
    value ^= value >> _MIX[4]
    return value


def text_fingerprint(fragment: str | None) -> tuple[Fingerprint, bytes]:
    """The fingerprint of an entry's HTML, and its words as content_hash takes them (text.joined_words)."""
    tokens, blocks = text_words(fragment)
    joined = joined_words(tokens)
    return fingerprint(tokens, blocks, joined), joined


def index_keys(print_: Fingerprint) -> list[int]:
    """The LSH band keys of a text and of its opening, in one key space.

    Two texts sharing a key are worth comparing: near-identical full texts
    share full-text bands; a summary shares bands with its full text's opening.
    """
    if print_.words < MIN_INDEXED_WORDS:
        return []
    hashes = print_.hashes
    lead_end = max(0, LEAD_WORDS - SHINGLE_WORDS + 1)
    # Shingles in reading order, repeats and all: a MinHash is the same without the repeats.
    kept = hashes[hashes != 0]
    in_lead = int(np.count_nonzero(hashes[:lead_end]))
    enough = MIN_INDEXED_WORDS // 2
    lead_indexed = len(set(kept[:in_lead].tolist())) >= enough
    # The whole text holds its opening's shingles: it has enough of them whenever its opening does.
    whole_indexed = lead_indexed or (len(hashes) > lead_end and len(np.unique(kept)) >= enough)
    if not (lead_indexed or whole_indexed):
        return []
    permuted = _permuted(kept)
    lead = permuted[:, :in_lead].min(axis=1) if lead_indexed else None
    minima = [lead] if lead_indexed else []
    if whole_indexed and in_lead < len(kept):
        minima.append(permuted.min(axis=1) if lead is None else np.minimum(lead, permuted[:, in_lead:].min(axis=1)))
    return band_keys(np.array(minima, dtype=np.uint32))


def band_keys(minhashes: np.ndarray) -> list[int]:
    """The distinct LSH band keys of some MinHashes (one per row), sorted; each fits a signed 64-bit column.

    A band's ROWS 32-bit values are read two at a time as 64-bit words, chained
    by multiply and xor (rows that differ give keys that differ but for chance
    at 2**-63), then offset by the band's own salt, so equal rows in different
    bands give different keys.
    """
    words = np.ascontiguousarray(minhashes, dtype="<u4").view("<u8").reshape(len(minhashes), BANDS, ROWS // 2)
    keys = words[:, :, 0] * _MULTIPLIERS[0]
    for column in range(1, ROWS // 2):
        keys ^= words[:, :, column]
        keys *= _MULTIPLIERS[column]
    keys += _BAND_SALTS
    keys >>= _ONE
    return sorted(set(keys.ravel().tolist()))


_ONE = np.uint64(1)
_BAND_SALTS = _splitmix64(np.arange(1, BANDS + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def minhash(shingles: np.ndarray) -> np.ndarray:
    """datasketch's affine32 MinHash of these shingle hashes, the same values without its per-sketch costs."""
    return _permuted(shingles).min(axis=1)


_FMIX32 = tuple(map(np.uint32, (16, 0x85EBCA6B, 13, 0xC2B2AE35)))


def _permuted(shingles: np.ndarray) -> np.ndarray:
    """Each shingle's hash under each of the MinHash permutations: one row per permutation, one column per shingle."""
    hv = shingles.astype(np.uint32)  # a copy, mixed in place: murmur3's finaliser, as datasketch's affine32
    hv ^= hv >> _FMIX32[0]
    hv *= _FMIX32[1]
    hv ^= hv >> _FMIX32[2]
    hv *= _FMIX32[3]
    hv ^= hv >> _FMIX32[0]
    permuted = _PERMUTATION_COLUMNS[0] * hv
    permuted += _PERMUTATION_COLUMNS[1]
    return permuted


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
