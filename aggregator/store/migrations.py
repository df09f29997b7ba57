"""The schema, as an append-only list of migrations: each runs once, in order, inside its own transaction."""

from __future__ import annotations

from datetime import datetime, timezone

from ..models import to_text

#: Append-only: each entry runs once, in order, inside its own transaction. Never edit a shipped one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE sources (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL DEFAULT 'new',
        configured_url TEXT,
        url TEXT,
        etag TEXT,
        last_modified TEXT,
        body_hash TEXT,
        last_poll TEXT,
        last_success TEXT,
        last_status INTEGER,
        errors INTEGER NOT NULL DEFAULT 0,
        next_poll TEXT,
        retry_after TEXT,
        last_error TEXT,
        feed_title TEXT,
        feed_link TEXT,
        feed_id TEXT,
        feed_updated TEXT,
        min_interval INTEGER
    );
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        republished TEXT NOT NULL
    );
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        source_id TEXT NOT NULL,
        key TEXT NOT NULL,
        story_id INTEGER NOT NULL REFERENCES stories(id),
        guid TEXT,
        link TEXT,
        canonical_link TEXT,
        title TEXT NOT NULL,
        title_key TEXT,
        summary TEXT,
        content TEXT,
        authors TEXT NOT NULL DEFAULT '[]',
        categories TEXT NOT NULL DEFAULT '[]',
        language TEXT,
        published TEXT NOT NULL,
        updated TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        raw_hash TEXT NOT NULL,
        content_hash TEXT,
        UNIQUE (source_id, key)
    );
    CREATE INDEX items_story ON items (story_id);
    CREATE INDEX items_canonical_link ON items (canonical_link);
    CREATE INDEX items_source_published ON items (source_id, published);
    CREATE TABLE merges (
        item_id INTEGER PRIMARY KEY REFERENCES items(id),
        story_id INTEGER NOT NULL REFERENCES stories(id),
        matched_item INTEGER,
        evidence TEXT NOT NULL,
        score REAL NOT NULL,
        decided TEXT NOT NULL
    );
    """,
    # 2: the feed's skipHours/skipDays, which the scheduler honours (schedule.skip_forward)
    """
    ALTER TABLE sources ADD COLUMN skip_hours TEXT;
    ALTER TABLE sources ADD COLUMN skip_days TEXT
    """,
    # 3: publish failures (a full disk, an unwritable folder), so `status` can show them
    """
    CREATE TABLE output_failures (
        id TEXT PRIMARY KEY,
        failed_at TEXT NOT NULL,
        error TEXT NOT NULL
    );
    """,
    # 4: the near-duplicate index (MinHash LSH band keys per item) and the lookups dedupe makes.
    """
    CREATE TABLE near_keys (
        key INTEGER NOT NULL,
        published TEXT NOT NULL,
        item_id INTEGER NOT NULL REFERENCES items(id)
    );
    CREATE INDEX near_keys_lookup ON near_keys (key, published);
    CREATE INDEX near_keys_item ON near_keys (item_id);
    CREATE INDEX items_content_hash ON items (content_hash, published);
    CREATE TABLE dedup_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    ALTER TABLE merges ADD COLUMN details TEXT;
    ALTER TABLE items ADD COLUMN title_keys TEXT;
    """,
    # 5: several workers on one PostgreSQL state (workers.py): who polls a source until when (epoch seconds by
    # the database's clock), the outputs left for the publishing worker, due sources found by index
    """
    ALTER TABLE sources ADD COLUMN lease_owner TEXT;
    ALTER TABLE sources ADD COLUMN lease_expires REAL;
    CREATE INDEX sources_next_poll ON sources (next_poll);
    CREATE TABLE publish_requests (
        output_id TEXT PRIMARY KEY,
        requested TEXT NOT NULL
    );
    """,
    # 6: each item's text fingerprint (fingerprint.py), so judging a stored copy does not read its HTML again;
    # apart from items, whose rows stay small for the lookups
    """
    CREATE TABLE fingerprints (
        item_id INTEGER PRIMARY KEY REFERENCES items(id),
        words INTEGER NOT NULL,
        blocks TEXT NOT NULL,
        hashes BLOB NOT NULL
    );
    """,
    # 7: what each published file was rendered from (publish.Rendered), so an unchanged document is not rendered again
    """
    CREATE TABLE rendered (
        path TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        file TEXT NOT NULL
    );
    """,
    # 8: the near-duplicate index as one B-tree of (key, item id), the window checked on the item it joins:
    # a fifth of the size, and one random insert per key instead of two (a cold poll's commit rewrote ~2,000 pages)
    """
    ALTER TABLE near_keys RENAME TO near_keys_before;
    CREATE TABLE near_keys (
        key INTEGER NOT NULL,
        item_id INTEGER NOT NULL,
        PRIMARY KEY (key, item_id)
    ) WITHOUT ROWID;
    INSERT INTO near_keys (key, item_id) SELECT DISTINCT key, item_id FROM near_keys_before ORDER BY key, item_id;
    DROP TABLE near_keys_before;
    CREATE INDEX near_keys_item ON near_keys (item_id);
    """,
    # 9: how many polls brought a source a new body (what publishing reads of it may have changed since), so
    # `once` can tell that nothing did since the last publish; counted up, so a body changing back still counts
    """
    ALTER TABLE sources ADD COLUMN changed_bodies INTEGER NOT NULL DEFAULT 0;
    """,
    # 10: the feed's own rel="self" link: atom:source names a file: source by it (SPEC §4), never by a path
    """
    ALTER TABLE sources ADD COLUMN feed_self TEXT;
    """,
    # 11: each source's WebSub subscription (run/push.py): its hub (where reached, and as the feed names it) and
    # topic, our secret, its state and lease, and when the subscriber acts on it next (request, renew, give up
    # waiting), found by index
    """
    CREATE TABLE push_subscriptions (
        source_id TEXT PRIMARY KEY,
        hub TEXT NOT NULL,
        advertised TEXT,
        topic TEXT NOT NULL,
        state TEXT NOT NULL,
        secret TEXT,
        requested TEXT,
        expires TEXT,
        lease INTEGER,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_action TEXT
    );
    CREATE INDEX push_subscriptions_next_action ON push_subscriptions (next_action);
    """,
    # 12: the kind of a source's last failure (errors.FailureKind), so what decides on it (is the network down?)
    # never reads the message
    """
    ALTER TABLE sources ADD COLUMN last_failure TEXT;
    """,
    # 13: what the last body read had to work around (an encoding guessed because none declared fits), for status
    """
    ALTER TABLE sources ADD COLUMN warning TEXT;
    """,
    # 14: retention (SPEC §6.1): a tombstone per pruned item, so a source that still lists it never brings it back,
    # kept while the source lists it (last_listed) and dropped once a new body of the source left it out for
    # `keep`; when each source last brought a new body; lookups by date for pruning and for trimming the
    # near-duplicate index to the dedup window (by publication and by first sight); each story's copies by story,
    # read without the rows' text
    """
    CREATE TABLE tombstones (
        source_id TEXT NOT NULL,
        key TEXT NOT NULL,
        raw_hash TEXT NOT NULL,
        content_hash TEXT,
        uid TEXT NOT NULL,
        pruned TEXT NOT NULL,
        last_listed TEXT NOT NULL,
        PRIMARY KEY (source_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX tombstones_hash ON tombstones (source_id, content_hash);
    CREATE INDEX tombstones_uid ON tombstones (uid);
    ALTER TABLE sources ADD COLUMN body_changed TEXT;
    CREATE INDEX items_published ON items (published);
    CREATE INDEX items_first_seen ON items (first_seen);
    CREATE INDEX stories_republished ON stories (republished);
    DROP INDEX items_story;
    CREATE INDEX items_story ON items (story_id, source_id, published);
    """,
    # 15: publishing only what changed (store/publications.py): the stories each output must look at again, each
    # output's last publication, and the stories its archive pages hold
    """
    CREATE TABLE publish_queue (
        output_id TEXT NOT NULL,
        story_id INTEGER NOT NULL,
        PRIMARY KEY (output_id, story_id)
    ) WITHOUT ROWID;
    CREATE TABLE publications (
        output_id TEXT PRIMARY KEY,
        settings TEXT NOT NULL,
        current TEXT NOT NULL,
        newest_page INTEGER NOT NULL
    );
    CREATE TABLE archived (
        output_id TEXT NOT NULL,
        story_id INTEGER NOT NULL,
        PRIMARY KEY (output_id, story_id)
    ) WITHOUT ROWID;
    CREATE INDEX archived_story ON archived (story_id);
    """,
    # 16: stories joined into one and operators' corrections (store/stories.py): each retired story id with the
    # story it lives on in, its own republication time and the evidence that joined it (an automatic join when a
    # new copy ties two stories, or an operator's merge); every merge and unmerge an operator decided; the pairs
    # of copies an unmerge keeps apart, which no automatic rule joins again
    """
    CREATE TABLE retired_stories (
        uid TEXT PRIMARY KEY,
        story_id INTEGER NOT NULL,
        republished TEXT NOT NULL,
        retired TEXT NOT NULL,
        decided_by TEXT NOT NULL,
        item_id INTEGER,
        matched_item INTEGER,
        evidence TEXT NOT NULL,
        score REAL NOT NULL,
        details TEXT
    );
    CREATE INDEX retired_stories_story ON retired_stories (story_id);
    CREATE TABLE dedup_decisions (
        id INTEGER PRIMARY KEY,
        action TEXT NOT NULL,
        item_id INTEGER NOT NULL,
        other_item INTEGER,
        decided TEXT NOT NULL,
        note TEXT NOT NULL
    );
    CREATE INDEX dedup_decisions_item ON dedup_decisions (item_id);
    CREATE INDEX dedup_decisions_other ON dedup_decisions (other_item);
    CREATE TABLE kept_apart (
        item_id INTEGER NOT NULL,
        other_item INTEGER NOT NULL,
        decision INTEGER NOT NULL,
        PRIMARY KEY (item_id, other_item)
    ) WITHOUT ROWID;
    CREATE INDEX kept_apart_other ON kept_apart (other_item);
    """,
    # 17: which sanitiser made each item's HTML (reader/sanitize.SANITIZER): a story page cleans it again only when
    # an older one did (NULL: stored before this column was)
    """
    ALTER TABLE items ADD COLUMN sanitizer TEXT;
    """,
    # 18: each item's enclosures (models.Enclosure: url, type, length), a JSON list (NULL: stored before they were
    # kept), so the outputs carry a podcast's episodes
    """
    ALTER TABLE items ADD COLUMN enclosures TEXT;
    """,
]


def migrate(store) -> None:
    """Apply the migrations not yet applied to a Store being opened, each in its own transaction; concurrent
    openers take turns."""
    backend = store.backend
    if not store.has_table("schema_migrations"):
        with store.transaction() as db:
            backend.lock(db, "migrations", ["schema"])
            db.execute(backend.ddl("CREATE TABLE IF NOT EXISTS schema_migrations "
                                   "(version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"))
    done = {row[0] for row in store.query("SELECT version FROM schema_migrations")}
    for version, script in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        with store.transaction() as db:
            backend.lock(db, "migrations", ["schema"])
            if db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                continue  # another process applied it while we waited
            for statement in filter(str.strip, script.split(";")):
                db.execute(backend.ddl(statement))
            db.execute("INSERT INTO schema_migrations VALUES (?, ?)",
                       (version, to_text(datetime.now(timezone.utc))))


def schema_version(store) -> int:
    """The newest migration applied to this state."""
    return store.query("SELECT max(version) FROM schema_migrations")[0][0] or 0
