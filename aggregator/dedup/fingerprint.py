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

from .text import STOPWORDS, text_words

SHINGLE_WORDS = 3
LEAD_WORDS = 40  # the opening a summary shares with its full text
MIN_INDEXED_WORDS = 20
# P(two texts share a key) = 1 - (1 - J**4)**8: 0.40 at J=0.5, 0.87 at J=0.7, 0.98 at J=0.8
NUM_PERM, BANDS, ROWS = 32, 8, 4
MINHASH_SEED = 20240927
#: Changes whenever the keys below would come out differently; the store rebuilds its index then.
INDEX_VERSION = f"minhash-affine32-{NUM_PERM}-{BANDS}x{ROWS}-lead{LEAD_WORDS}-shingle{SHINGLE_WORDS}-v3"
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
        return self.distinct if upto_words is None else self.span(0, upto_words)

    @cached_property
    def distinct(self) -> np.ndarray:
        """The whole text's distinct shingles, sorted: kept, since a stored copy may be judged against many."""
        return self.span(0, self.words)

    def span(self, start: int, end: int) -> np.ndarray:
        """The distinct shingles lying wholly within words [start, end)."""
        hashes = self.hashes[max(0, start):max(0, end - SHINGLE_WORDS + 1)]
        return np.unique(hashes[hashes != 0])


def fingerprint(tokens: list[str], blocks: tuple[int, ...] = ()) -> Fingerprint:
    count = len(tokens)
    if count < SHINGLE_WORDS:
        return Fingerprint(count, np.zeros(0, dtype=np.uint32), blocks)
    # Each token's CRC-32, with bit 32 set for a stopword: one pass over the tokens gives both.
    known = _TOKEN_IDS
    ids = np.array([known.get(t) or _token_id(t) for t in tokens], dtype=np.uint64)
    n = count - SHINGLE_WORDS + 1
    crcs = ids.astype(np.uint32)
    # 32-bit products wrap as the masked 64-bit ones did.
    mixed = crcs[:n] * _MULTIPLIERS32[0]
    mixed ^= crcs[1:n + 1]
    mixed *= _MULTIPLIERS32[1]
    mixed ^= crcs[2:]
    mixed *= _MULTIPLIERS32[2]
    only_stopwords = ids[:n] & ids[1:n + 1]
    only_stopwords &= ids[2:]
    mixed[only_stopwords >= _STOPWORD_BIT] = 0  # 0 marks a left-out shingle
    return Fingerprint(count, mixed, blocks)


_MULTIPLIERS32 = _MULTIPLIERS.astype(np.uint32)
_STOPWORD_BIT = 1 << 32
_STOPWORD_IDS = {w: zlib.crc32(w.encode("utf-8")) | _STOPWORD_BIT for w in STOPWORDS}
#: Token ids already computed: most words of a text were seen in earlier ones, and a lookup costs a
#: fifth of encoding and hashing. Started again from the stopwords when it reaches MAX_KNOWN_TOKENS
#: (about 6 MB: a 200,000-word cache was 24 MB of the daemon's memory budget).
_TOKEN_IDS = dict(_STOPWORD_IDS)
MAX_KNOWN_TOKENS = 50_000


def _token_id(token: str) -> int:
    if len(_TOKEN_IDS) >= MAX_KNOWN_TOKENS:
        _TOKEN_IDS.clear()
        _TOKEN_IDS.update(_STOPWORD_IDS)
    value = _TOKEN_IDS[token] = zlib.crc32(token.encode("utf-8", "surrogatepass"))
    return value


def text_fingerprint(fragment: str | None) -> tuple[Fingerprint, list[str]]:
    """The fingerprint of an entry's HTML, and its words."""
    tokens, blocks = text_words(fragment)
    return fingerprint(tokens, blocks), tokens


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
    keys: set[int] = set()
    if lead_indexed or whole_indexed:
        permuted = _permuted(kept)
        lead = permuted[:, :in_lead].min(axis=1) if lead_indexed else None
        if lead_indexed:
            _add_band_keys(keys, lead)
        if whole_indexed and in_lead < len(kept):
            whole = permuted.min(axis=1) if lead is None else np.minimum(lead, permuted[:, in_lead:].min(axis=1))
            _add_band_keys(keys, whole)
    return sorted(keys)


# Each band's hash, started: copying one costs less than starting a new one with its person.
_BAND_HASHES = [hashlib.blake2b(digest_size=8, person=band.to_bytes(2, "little")) for band in range(BANDS)]


def _add_band_keys(keys: set[int], values: np.ndarray) -> None:
    data, size = values.astype("<u4").tobytes(), ROWS * 4
    for band, started in enumerate(_BAND_HASHES):
        digest = started.copy()
        digest.update(data[band * size:(band + 1) * size])
        keys.add(int.from_bytes(digest.digest(), "little") >> 1)  # fits a signed 64-bit column


def minhash(shingles: np.ndarray) -> np.ndarray:
    """datasketch's affine32 MinHash of these shingle hashes, the same values without its per-sketch costs."""
    return _permuted(shingles).min(axis=1)


def _permuted(shingles: np.ndarray) -> np.ndarray:
    """Each shingle's hash under each of the MinHash permutations: one row per permutation, one column per shingle."""
    hv = shingles.astype(np.uint32)  # a copy, mixed in place
    hv ^= hv >> np.uint32(16)
    hv *= np.uint32(0x85EBCA6B)
    hv ^= hv >> np.uint32(13)
    hv *= np.uint32(0xC2B2AE35)
    hv ^= hv >> np.uint32(16)
    permuted = _PERMUTATIONS[0].reshape(-1, 1) * hv
    permuted += _PERMUTATIONS[1].reshape(-1, 1)
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
