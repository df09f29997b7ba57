"""store: the state, and every SQL statement of the project.

One `Store` facade over a `Backend` (SQLite file or PostgreSQL, chosen once by
`backend_for`), append-only migrations, and one module per table family:
sources, items and stories, the near-duplicate index, published outputs,
joined stories and operators' corrections, worker leases, and copying a whole state. Callers hand it values and get
values back (models' dataclasses, dedup's candidates); no other package writes
SQL. May import the top-level vocabulary and `aggregator.dedup`.
"""

from .core import Store, story_uid

__all__ = ["Store", "story_uid"]
