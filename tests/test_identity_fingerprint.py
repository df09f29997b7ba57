"""fingerprint: shingles, similarities and the MinHash LSH keys of the near-duplicate index."""

from __future__ import annotations

import os
import subprocess
import sys

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


def _token_hash(token: str) -> int:
    """token_hashes by hand: FNV's prime to the power of each UTF-16 unit's position (its closing space
    included), splitmix64's finaliser."""
    mask, prime, basis = (1 << 64) - 1, 0x100000001B3, 0xCBF29CE484222325
    units = (token + " ").encode("utf-16-le", "surrogatepass")
    value = sum(int.from_bytes(units[i:i + 2], "little") * pow(prime, i // 2 % 256 + 1, 1 << 64) * basis
                for i in range(0, len(units), 2)) & mask
    value = (value ^ value >> 30) * 0xBF58476D1CE4E5B9 & mask
    value = (value ^ value >> 27) * 0x94D049BB133111EB & mask
    return value ^ value >> 31


def test_shingle_hashes_are_made_of_each_tokens_hash_wherever_the_token_stands():
    """Stored fingerprints must be the ones the next run makes: a token hashes alike in any text, at any place."""
    tokens = ["é", "a\ud800", "x" * 300] + WORDS
    hashes = fingerprint.token_hashes(tokens).tolist()
    assert hashes == [_token_hash(t) for t in tokens]
    assert fingerprint.token_hashes(WORDS[5:9]).tolist() == hashes[8:12]
    ids = [_token_hash(w) for w in WORDS[1:4]]  # "committee voted on", by hand
    mixed = ((ids[0] * 0x9E3779B97F4A7C15 & (1 << 64) - 1 ^ ids[1]) * 0xC2B2AE3D27D4EB4F & (1 << 64) - 1
             ^ ids[2]) * 0x165667B19E3779F9 & (1 << 64) - 1
    assert fingerprint.fingerprint(WORDS).hashes[1] == mixed >> 32


def test_stopwords_are_found_by_their_hash():
    words = sorted(fingerprint.STOPWORDS)
    print_ = fingerprint.fingerprint([w for word in words for w in (word, word, word)])
    assert not print_.hashes.any()
    lookalikes = {w + "x" for w in words} | {w[:-1] for w in words if len(w) > 1}
    lookalikes = sorted(lookalikes - fingerprint.STOPWORDS)
    print_ = fingerprint.fingerprint([w for word in lookalikes for w in (word, word, word)])
    assert print_.hashes[::3].all()


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
