"""Queries of what publishing remembers: failed publishes, what each file was rendered from, the last inputs."""

from __future__ import annotations

from datetime import datetime

from ..models import from_text, to_text


class OutputQueries:
    """Publishing's own records, so `status` shows failures and unchanged documents are not rendered again."""

    def output_failures(self) -> dict[str, tuple[datetime, str]]:
        """Output id → (when, error) of the outputs whose last publish failed."""
        return {r[0]: (from_text(r[1]), r[2]) for r in self.query("SELECT id, failed_at, error FROM output_failures")}

    def record_publish(self, output_id: str, error: str | None, when: datetime) -> None:
        """Remember a failed publish, or forget the failure once a publish succeeds."""
        with self.transaction() as db:
            if error is None:
                db.execute("DELETE FROM output_failures WHERE id = ?", (output_id,))
            else:
                db.execute("INSERT INTO output_failures VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                           "failed_at = excluded.failed_at, error = excluded.error", (output_id, to_text(when), error))

    def published_inputs(self) -> str | None:
        """output.rendered.Rendered.inputs() of the last publish of every output that went through without a failure."""
        rows = self.query("SELECT value FROM dedup_meta WHERE name = 'published_inputs'")
        return rows[0][0] if rows else None

    def set_published_inputs(self, inputs: str) -> None:
        with self.transaction() as db:
            self.set_meta(db, "published_inputs", inputs)

    def rendered_files(self) -> dict[str, str]:
        """Every file publishing recorded writing, with its signature (size, times, inode) then."""
        return {r[0]: r[1] for r in self.query("SELECT path, file FROM rendered")}

    def rendered(self, path: str) -> tuple[str, str] | None:
        """(digest, file signature) recorded when publishing last wrote `path`, or None."""
        rows = self.query("SELECT digest, file FROM rendered WHERE path = ?", (path,))
        return (rows[0][0], rows[0][1]) if rows else None

    def rendered_many(self, paths: list[str]) -> dict[str, tuple[str, str]]:
        """`rendered` for many paths at once: path → (digest, file signature), for those recorded."""
        found = {}
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            for row in self.query(f"SELECT path, digest, file FROM rendered WHERE path IN ({marks})", chunk):
                found[row[0]] = (row[1], row[2])
        return found

    def forget_rendered(self, paths: list[str]) -> None:
        """Drop the records of files publishing will never write again (the pages of pruned stories)."""
        with self.transaction() as db:
            for start in range(0, len(paths), 500):
                chunk = paths[start:start + 500]
                db.execute(f"DELETE FROM rendered WHERE path IN ({', '.join('?' * len(chunk))})", chunk)

    def record_rendered(self, rows: list[tuple[str, str, str]]) -> None:
        """Remember (path, digest, file signature) of files publishing just wrote."""
        with self.transaction() as db:
            for row in rows:
                db.execute("INSERT INTO rendered VALUES (?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                           "digest = excluded.digest, file = excluded.file", row)
