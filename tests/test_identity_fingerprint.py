"""fingerprint: shingles, similarities and the MinHash LSH keys of the near-duplicate index."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

from datasketch import MinHash

from aggregator.dedup import fingerprint

WORDS = ("the committee voted on tuesday to approve a new budget for the city parks department after months of "
         "debate about maintenance costs staffing levels and the future of several playgrounds in the northern "
         "districts where residents had campaigned for repairs since the storms of last winter damaged fences "
         "paths lighting and the old bandstand that many families consider the heart of the neighbourhood and "
         "its summer concerts").split()


def test_fingerprints_compare_texts_by_shingles():
    full = fingerprint.fingerprint(WORDS)
    summary = fingerprint.fingerprint(WORDS[:30])
    assert fingerprint.jaccard(full.shingles(), full.shingles()) == 1.0
    assert fingerprint.containment(summary.shingles(), full.shingles()) == 1.0
    assert fingerprint.jaccard(summary.shingles(), full.shingles()) < 0.5
    other = fingerprint.fingerprint(list(reversed(WORDS)))
    assert fingerprint.jaccard(full.shingles(), other.shingles()) == 0.0


def test_index_keys_find_near_duplicates_and_summaries_but_not_strangers():
    full = set(fingerprint.index_keys(fingerprint.fingerprint(WORDS)))
    edited = set(fingerprint.index_keys(fingerprint.fingerprint(WORDS[:40] + ["indeed"] + WORDS[40:])))
    summary = set(fingerprint.index_keys(fingerprint.fingerprint(WORDS[:35])))
    stranger = set(fingerprint.index_keys(fingerprint.fingerprint(sorted(WORDS))))
    assert full & edited
    assert full & summary
    assert not full & stranger
    assert fingerprint.index_keys(fingerprint.fingerprint(WORDS[:10])) == []


def test_index_keys_are_the_same_in_every_process():
    """The index lives in the store: keys made by one run must be the keys the next run makes."""
    code = ("import json; from aggregator.dedup import fingerprint; "
            f"print(json.dumps(fingerprint.index_keys(fingerprint.fingerprint({WORDS!r}))))")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1
    assert runs.pop().strip() == str(fingerprint.index_keys(fingerprint.fingerprint(WORDS))).replace("'", '"')


def test_shingle_hashes_are_made_of_each_tokens_crc32_wherever_the_token_stands():
    """Stored fingerprints must be the ones the next run makes: a token hashes alike in any text, at any place,
    as it did when it was the first (or only) text a process saw."""
    first = fingerprint.fingerprint(WORDS).hashes
    assert fingerprint.fingerprint(WORDS[1:8]).hashes.tolist() == first[1:6].tolist()
    crc = [zlib.crc32(w.encode()) for w in WORDS[1:4]]  # "committee voted on", by hand
    expected = ((crc[0] * 0x9E3779B1 & 0xFFFFFFFF ^ crc[1]) * 0x85EBCA77 & 0xFFFFFFFF ^ crc[2]) * 0xC2B2AE3D
    assert first[1] == expected & 0xFFFFFFFF
    crc = [zlib.crc32(w.encode("utf-8", "surrogatepass")) for w in ("é", "a\ud800", "x" * 300)]
    expected = ((crc[0] * 0x9E3779B1 & 0xFFFFFFFF ^ crc[1]) * 0x85EBCA77 & 0xFFFFFFFF ^ crc[2]) * 0xC2B2AE3D
    assert fingerprint.fingerprint(["é", "a\ud800", "x" * 300]).hashes.tolist() == [expected & 0xFFFFFFFF]


def test_stopwords_are_the_listed_words_exactly():
    words = sorted(fingerprint.STOPWORDS)
    print_ = fingerprint.fingerprint([w for word in words for w in (word, word, word)])
    assert not print_.hashes.any()
    lookalikes = {w + "x" for w in words} | {w[:-1] for w in words if len(w) > 1} | {w.upper() for w in words}
    the = zlib.crc32(b"the")  # a word in the slot of a stopword's CRC-32 (its low 16 bits), but not that CRC
    lookalikes.add(next(w for w in map("w{}".format, range(10**6)) if zlib.crc32(w.encode()) & 0xFFFF == the & 0xFFFF))
    lookalikes = sorted(lookalikes - fingerprint.STOPWORDS)
    print_ = fingerprint.fingerprint([w for word in lookalikes for w in (word, word, word)])
    assert print_.hashes.all()


def test_shingles_of_function_words_only_are_left_out():
    print_ = fingerprint.fingerprint(["frogs", "one", "of", "the", "a\ud800"])  # a lone surrogate is hashed too
    assert print_.hashes[0] != 0 and print_.hashes[1] == 0 and print_.hashes[2] != 0


def test_index_keys_are_the_bands_of_datasketch_minhashes():
    """The keys of a text and of its opening: bands of datasketch's MinHash of each's distinct shingles."""
    mask = (1 << 64) - 1
    salts = fingerprint._BAND_SALTS.tolist()
    for words in (WORDS, ["frog", "pond", "leap"] * 14 + WORDS[:30], WORDS[:30]):  # an opening too repetitive to index
        print_ = fingerprint.fingerprint(words)
        expected = set()
        for shingles in (print_.shingles(), print_.shingles(fingerprint.LEAD_WORDS)):
            if len(shingles) < fingerprint.MIN_INDEXED_WORDS // 2:
                continue
            minhash = MinHash(num_perm=fingerprint.NUM_PERM, seed=fingerprint.MINHASH_SEED, scheme="affine32",
                              hashfunc=int)
            minhash.update_batch(shingles.tolist())
            values = minhash.hashvalues.tolist()
            assert fingerprint.minhash(shingles).tolist() == values
            for band in range(fingerprint.BANDS):
                rows = values[band * fingerprint.ROWS:(band + 1) * fingerprint.ROWS]
                # two rows to a 64-bit word, the first in its low half; words chained by multiply and xor
                key = (rows[0] | rows[1] << 32) * 0x9E3779B97F4A7C15 & mask
                key = (key ^ (rows[2] | rows[3] << 32)) * 0xC2B2AE3D27D4EB4F & mask
                expected.add(((key + salts[band]) & mask) >> 1)
        assert fingerprint.index_keys(print_) == sorted(expected)


def test_the_minhash_permutations_are_datasketchs_so_stored_keys_stay_valid():
    expected = MinHash(num_perm=fingerprint.NUM_PERM, seed=fingerprint.MINHASH_SEED, scheme="affine32").permutations
    assert (fingerprint._PERMUTATIONS == expected).all() and fingerprint._PERMUTATIONS.dtype == expected.dtype


def test_the_daemon_does_not_import_scipy():
    """datasketch's package imports scipy: about 50 MB in every process of `run` for no use."""
    code = "import sys, aggregator.cli, aggregator.run.daemon; print(sorted({'scipy', 'datasketch'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
