"""fingerprint: shingles, similarities and the MinHash LSH keys of the near-duplicate index."""

from __future__ import annotations

import hashlib
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


def test_shingle_hashes_are_each_tokens_crc32_whether_or_not_the_token_was_seen_before(monkeypatch):
    """Stored fingerprints were made without the token cache: a cached, or evicted, token must hash the same."""
    first = fingerprint.fingerprint(WORDS).hashes.copy()
    monkeypatch.setattr(fingerprint, "MAX_KNOWN_TOKENS", len(fingerprint._STOPWORD_IDS) + 5)
    fingerprint._TOKEN_IDS.clear()
    fingerprint._TOKEN_IDS.update(fingerprint._STOPWORD_IDS)
    again = fingerprint.fingerprint(WORDS).hashes
    assert again.tolist() == first.tolist()
    crc = [zlib.crc32(w.encode()) for w in WORDS[1:4]]  # "committee voted on", by hand
    expected = ((crc[0] * 0x9E3779B1 & 0xFFFFFFFF ^ crc[1]) * 0x85EBCA77 & 0xFFFFFFFF ^ crc[2]) * 0xC2B2AE3D
    assert first[1] == expected & 0xFFFFFFFF
    assert len(fingerprint._TOKEN_IDS) <= len(fingerprint._STOPWORD_IDS) + 5


def test_shingles_of_function_words_only_are_left_out():
    print_ = fingerprint.fingerprint(["frogs", "one", "of", "the", "a\ud800"])  # a lone surrogate is hashed too
    assert print_.hashes[0] != 0 and print_.hashes[1] == 0 and print_.hashes[2] != 0


def test_index_keys_are_the_bands_of_datasketch_minhashes():
    """The keys of a text and of its opening: bands of datasketch's MinHash of each's distinct shingles."""
    for words in (WORDS, ["frog", "pond", "leap"] * 14 + WORDS[:30], WORDS[:30]):  # an opening too repetitive to index
        print_ = fingerprint.fingerprint(words)
        expected = set()
        for shingles in (print_.shingles(), print_.shingles(fingerprint.LEAD_WORDS)):
            if len(shingles) < fingerprint.MIN_INDEXED_WORDS // 2:
                continue
            minhash = MinHash(num_perm=fingerprint.NUM_PERM, seed=fingerprint.MINHASH_SEED, scheme="affine32",
                              hashfunc=int)
            minhash.update_batch(shingles.tolist())
            values = minhash.hashvalues.astype("<u4")
            for band in range(fingerprint.BANDS):
                rows = values[band * fingerprint.ROWS:(band + 1) * fingerprint.ROWS].tobytes()
                digest = hashlib.blake2b(rows, digest_size=8, person=band.to_bytes(2, "little")).digest()
                expected.add(int.from_bytes(digest, "little") >> 1)
        assert fingerprint.index_keys(print_) == sorted(expected)


def test_the_minhash_permutations_are_datasketchs_so_stored_keys_stay_valid():
    expected = MinHash(num_perm=fingerprint.NUM_PERM, seed=fingerprint.MINHASH_SEED, scheme="affine32").permutations
    assert (fingerprint._PERMUTATIONS == expected).all() and fingerprint._PERMUTATIONS.dtype == expected.dtype


def test_the_daemon_does_not_import_scipy():
    """datasketch's package imports scipy: about 50 MB in every process of `run` for no use."""
    code = "import sys, aggregator.cli, aggregator.run.daemon; print(sorted({'scipy', 'datasketch'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
