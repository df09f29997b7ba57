"""reader: bytes from a source, and those bytes made into our own ParsedFeed.

Owns HTTP and file: reads (conditional GET, the whole-request deadline, the
size cap, redirects, the internal-address guard), the per-host politeness
limits, parsing every feed dialect into `models.ParsedFeed` (the only place
feedparser is imported), and sanitising HTML. May import only the top-level
vocabulary: `aggregator.models`, `aggregator.errors`, `aggregator.config`.
"""
