"""Run as a process by test_postgres.py: store one source's feed into the state in one transaction, as a poll does.

usage: ingest_process.py CONFIG SOURCE_ID [--hold]

Prints "pid N" (its PostgreSQL backend) once connected and "stored NEW UPDATED"
once the entries are written; with --hold it then keeps the transaction open
until a line arrives on stdin, so another process can ingest at the same moment.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from aggregator.config import load_config
from aggregator.reader.parse import parse_feed
from aggregator.run.pipeline import store_entries
from aggregator.store import Store


def main(config_path: str, source_id: str, hold: bool) -> None:
    config = load_config(Path(config_path))
    source = config.source(source_id)
    now = datetime.now(timezone.utc)
    feed = parse_feed(Path(urlsplit(source.url).path).read_bytes(), url=source.url, now=now)
    store = Store(config.state)
    print(f"pid {store.db.info.backend_pid}", flush=True)
    with store.transaction() as db:
        new, updated = store_entries(store, db, source, feed, now, config.dedup_window)
        print(f"stored {new} {updated}", flush=True)
        if hold:
            sys.stdin.readline()
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--hold" in sys.argv[3:])
