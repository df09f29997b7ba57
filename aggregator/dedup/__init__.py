"""dedup: when two items are one story, decided from values alone.

Owns text normalisation, canonical links, title keys and decorations,
fingerprints (shingles, MinHash index keys) and the rules that judge a new
copy against the candidates it is handed (`match`: every story it matches, to be
joined), and why two copies are apart (`apart`). Pure: it never opens the
database; the store fetches the candidates and keeps what dedup computes. May
import the top-level vocabulary and `aggregator.reader.sanitize` (plain text
of HTML).
"""
