"""One publish of an output as one change on disk, even when the process is killed in the middle of it.

A publish that moves stories from the current document into an archive page
changes two files of one format; each is replaced atomically, but not both at
once, so a crash between the two would show those stories twice (or nowhere).
So every file of one output's publish is first staged beside its place
(`.<name>.<random>.staged`, written and fsynced); then, when one format
changes more than one file, a journal `<output.dir>/.publish-<id>.journal`
naming every (staged, final) pair is written atomically; then the staged files
are renamed over their places and the journal is removed.

A crash before the journal exists leaves the old documents, all of them; one
after it leaves a journal that `finish` completes (the renames are idempotent:
a staged file already moved is done). Every command that publishes (`once`,
`publish`, `run`) finishes interrupted publishes before anything else, and
every publish first finishes its output's. A publish that fails while staging
(a full disk) removes what it staged and leaves the old documents.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from ..errors import PublishError

STAGED = ".staged"
ORPHAN_AGE = 3600.0  # seconds: a staged file no journal names, this old, is from a publish that died
TEMPORARY_AGE = 60.0  # a killed write_atomic's (files.py) or journal's temporary file


def journal_path(output_dir: Path, output_id: str) -> Path:
    return output_dir / f".publish-{output_id}.journal"


class Publication:
    """The files one output's publish changes, staged, then put in place together by `commit`."""

    def __init__(self, output_dir: Path, output_id: str):
        self.output_dir, self.output_id = output_dir, output_id
        self.journal = journal_path(output_dir, output_id)
        self.staged: list[tuple[Path, Path]] = []  # (staged, final)

    def stage(self, path: Path, data: bytes) -> bool:
        """Write `data` beside `path`, to be renamed over it on commit; False when `path` holds it already."""
        try:
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                return False
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PublishError(f"cannot read {path}: {exc.strerror}") from exc
        staged = path.parent / f".{path.name}.{secrets.token_hex(4)}{STAGED}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(staged, data)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            hint = "free some disk space" if exc.errno in (28, 27, 122) else "check that the output folder is writable"
            raise PublishError(f"cannot write {path}: {exc.strerror or exc}; {hint}") from exc
        self.staged.append((staged, path))
        return True

    def commit(self) -> list[Path]:
        """Put every staged file in place, as one change; the paths replaced."""
        if not self.staged:
            return []
        finals = [final for _, final in self.staged]
        together = len({final.suffix for final in finals}) < len(finals)  # a format changes two files or more
        try:
            if together:
                _fsync_dirs({staged.parent for staged, _ in self.staged})  # the journal names durable files
                _write_journal(self.journal, self.output_dir, self.staged)
            _rename(self.staged)
            if together:
                self.journal.unlink(missing_ok=True)
        except OSError as exc:
            raise PublishError(f"cannot put the new documents of {self.output_id} in place: "
                               f"{exc.strerror or exc}; the next publish finishes it") from exc
        self.staged = []
        return finals

    def abort(self) -> None:
        """Remove what was staged: the old documents stay, all of them."""
        for staged, _ in self.staged:
            try:
                staged.unlink(missing_ok=True)
            except OSError:
                pass
        self.staged = []


def finish(output_dir: Path, output_id: str) -> list[Path]:
    """Complete the interrupted publish of one output, if its journal says there is one; the paths replaced."""
    journal = journal_path(output_dir, output_id)
    try:
        text = journal.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PublishError(f"cannot read {journal}: {exc.strerror}; check the output folder") from exc
    try:
        pairs = [(output_dir / staged, output_dir / final) for staged, final in json.loads(text)["renames"]]
    except (ValueError, KeyError, TypeError):
        pairs = []  # written whole or not at all (renamed into place): this is not our journal; leave its files
    try:
        done = _rename(pairs)
        journal.unlink(missing_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot finish the interrupted publish of {output_id}: {exc.strerror or exc}; "
                           "check that the output folder is writable") from exc
    return done


def finish_all(output_dir: Path) -> list[Path]:
    """Every interrupted publish in the folder (outputs since removed from the config included), then the
    staged and temporary files of writers that died, once they are old enough not to be anyone's."""
    done: list[Path] = []
    try:
        names = os.listdir(output_dir)
    except FileNotFoundError:
        return done
    except OSError as exc:
        raise PublishError(f"cannot read {output_dir}: {exc.strerror}; check the output folder") from exc
    for name in sorted(names):
        if name.startswith(".publish-") and name.endswith(".journal"):
            done += finish(output_dir, name[len(".publish-"):-len(".journal")])
    archive = output_dir / "archive"
    folders = [output_dir] + ([p for p in archive.iterdir() if p.is_dir()] if archive.is_dir() else [])
    now = time.time()
    for folder in folders:
        for pattern, age in ((f".*{STAGED}", ORPHAN_AGE), (".*.tmp", TEMPORARY_AGE)):
            for leftover in folder.glob(pattern):
                try:
                    if leftover.stat().st_mtime < now - age:
                        leftover.unlink()
                except OSError:
                    pass
    return done


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o644)


def _write_journal(journal: Path, output_dir: Path, pairs: list[tuple[Path, Path]]) -> None:
    """Written beside and renamed into place, so a journal is whole or absent."""
    body = json.dumps({"renames": [[str(s.relative_to(output_dir)), str(f.relative_to(output_dir))]
                                   for s, f in pairs]}).encode()
    temporary = journal.with_name(journal.name + ".tmp")
    _write(temporary, body)
    os.replace(temporary, journal)
    _fsync_dirs({journal.parent})


def _rename(pairs: list[tuple[Path, Path]]) -> list[Path]:
    """Each staged file over its place, in order; one already moved (by an earlier try) is done."""
    done = []
    for staged, final in pairs:
        try:
            os.replace(staged, final)
        except FileNotFoundError:
            continue
        done.append(final)
    _fsync_dirs({final.parent for _, final in pairs})
    return done


def _fsync_dirs(folders: set[Path]) -> None:
    for folder in sorted(folders):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
