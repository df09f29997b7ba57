"""run: the daemon and the poll cycle that drive every other stage.

Owns one poll end to end (`pipeline`: reader -> dedup -> store), the per-item
preparing in worker processes, `once` over many sources, scheduling and
backoff, outage detection, the local daemon and the worker mode on a shared
PostgreSQL state, coalesced publishing, the HTTP server and the status rows.
May import every stage below it: reader, dedup, store, output.
"""
