"""migrate-state: copy a whole state between SQLite and PostgreSQL, row ids and dates unchanged.

Both ends are opened as stores, so both carry the current schema (FROM is
upgraded first, as any command would); then every table is copied row for
row, each after the tables it references, inside one transaction on TO: TO
ends with the whole state or, on any failure, as empty as it was.
"""

from __future__ import annotations

from contextlib import closing
from graphlib import TopologicalSorter
from pathlib import Path

from ..errors import StoreError
from .backend import backend_for, is_postgresql
from .core import Store
from .migrations import MIGRATIONS, schema_version

BATCH = 1000


def describe(location: str) -> str:
    """The state's name as messages show it (a URL without its password)."""
    return backend_for(location).display


def migrate_state(source: str, target: str) -> dict[str, int]:
    """Copy the state at `source` into the empty state at `target`; rows copied per table."""
    if _same(source, target):
        raise StoreError("FROM and TO name the same state; name another file or database as TO")
    if not state_exists(source):
        raise StoreError(f"{describe(source)} holds no aggregator state; check the FROM path or URL")
    created = not is_postgresql(target) and not Path(target).exists()
    try:
        with closing(Store(source)) as old, closing(Store(target)) as new:
            _refuse_newer(old)
            return _copy(old, new)
    except BaseException:
        if created:  # leave no empty state file behind a failed copy
            for suffix in ("", "-wal", "-shm"):
                Path(target + suffix).unlink(missing_ok=True)
        raise


def state_exists(location: str) -> bool:
    """Whether an aggregator state is already there, without creating one."""
    if not is_postgresql(location):
        return Path(location).is_file()
    from . import postgres

    db = postgres.connect(location)
    try:
        return db.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    except postgres.ERRORS as exc:
        raise StoreError(postgres.explain(exc, describe(location))) from exc
    finally:
        db.close()


def tables(store: Store) -> list[str]:
    """Every table of the state, each after the tables it references: the order to fill them in."""
    if not store.backend.shared:
        rows = store.query("SELECT m.name, f.\"table\" FROM sqlite_master AS m "
                           "LEFT JOIN pragma_foreign_key_list(m.name) AS f "
                           "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite%'")
    else:
        rows = store.query("SELECT t.relname, r.relname FROM pg_class AS t "
                           "LEFT JOIN pg_constraint AS k ON k.conrelid = t.oid AND k.contype = 'f' "
                           "LEFT JOIN pg_class AS r ON r.oid = k.confrelid "
                           "WHERE t.relkind = 'r' AND t.relnamespace = current_schema()::regnamespace")
    graph: dict[str, set[str]] = {}
    for table, referenced in rows:
        graph.setdefault(table, set())
        if referenced and referenced != table:
            graph[table].add(referenced)
    return list(TopologicalSorter(graph).static_order())


def _same(source: str, target: str) -> bool:
    if is_postgresql(source) or is_postgresql(target):
        return source == target
    return Path(source).resolve() == Path(target).resolve()


def _refuse_newer(store: Store) -> None:
    newest = schema_version(store)
    if newest > len(MIGRATIONS):
        raise StoreError(f"{store.path} has schema version {newest}, newer than this aggregator's "
                         f"{len(MIGRATIONS)}; upgrade aggregator, then retry")


def _copy(old: Store, new: Store) -> dict[str, int]:
    names = [t for t in tables(old) if t != "schema_migrations"]
    with new.transaction() as db:
        held = {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in names}
        if any(held.values()):
            rows = ", ".join(f"{n} {t}" for t, n in held.items() if n)
            raise StoreError(f"{new.path} already holds a state ({rows}); migrate-state copies only into an "
                             "empty one: name a new file or an empty database as TO")
        with old.snapshot() as src:
            copied = {t: _copy_table(old, src, db, t) for t in names}
        _continue_ids(new, db)
    return copied


def _copy_table(old: Store, src, dst, table: str) -> int:
    # A server-side cursor on PostgreSQL streams the table instead of loading it into memory.
    cursor = src.cursor(name=f"copy_{table}") if old.backend.shared else src.cursor()
    cursor.execute(f'SELECT * FROM "{table}"')
    columns = [d[0] for d in cursor.description]
    quoted = ", ".join(f'"{c}"' for c in columns)
    insert = f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(columns))})'
    count = 0
    while rows := cursor.fetchmany(BATCH):
        dst.cursor().executemany(insert, [tuple(row) for row in rows])
        count += len(rows)
    cursor.close()
    return count


def _continue_ids(new: Store, db) -> None:
    """Rows came in with their ids; new rows must get ids past them (SQLite does so by itself)."""
    if not new.backend.shared:
        return
    for table, column in db.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall():
        db.execute(f'SELECT setval(pg_get_serial_sequence(?, ?), '
                   f'coalesce((SELECT max("{column}") FROM "{table}"), 0) + 1, false)', (f'"{table}"', column))
