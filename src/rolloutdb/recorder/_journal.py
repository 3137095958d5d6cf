"""The recorder's journal: records the database has not taken yet, kept on disk.

Each recorder session spills into a file of its own, ``<journal dir>/<key>/<session>.jsonl``, where the key
stands for the database and the project: a journal is replayed only into the database and project it was
recorded for. The first line says so in words (database without password, project, run, session); each
further entry is one recorded operation: a line of JSON, or a frame with its screenshots (``_frames``). A live
session holds an exclusive lock on its file, so another recorder (or ``rolloutdb journal replay``) replays only the files of sessions that are gone.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy.engine import make_url

from ..config import JOURNAL_DIRECTORY, display_url
from ._frames import Entry, decode, entries, read, stream

SUFFIX = ".jsonl"
MAX_BATCH_BYTES = 8 << 20  # a batch of records (screenshots, mostly) read or sent at once holds about this much


def database_identity(url: str) -> str:
    """The database a URL points at, without its password; a SQLite file by its absolute path."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return display_url(parsed.render_as_string(hide_password=False))


def journal_folder(directory: str | os.PathLike, url: str, project: str) -> Path:
    key = hashlib.sha256(f"{database_identity(url)}\n{project}".encode()).hexdigest()[:16]
    return Path(directory) / key


@dataclass(frozen=True)
class JournalInfo:
    """One journal file as ``rolloutdb journal ls`` shows it."""

    path: Path
    database: str
    project: str
    run: str
    session: str
    created_at: str
    records: int
    size: int
    live: bool  # its recorder is still running (it holds the file's lock)


class SpillFile:
    """This session's journal file, created on the first spill and locked while the session lives."""

    def __init__(self, folder: Path, header: dict[str, Any]) -> None:
        self.path = folder / f"{header['session']}{SUFFIX}"
        self._header = header
        self._file: IO[bytes] | None = None
        self._read_offset = 0
        self.unread = 0  # records written and not yet read back

    def append(self, lines: list[Entry]) -> None:
        """Write records at the end (raises OSError when the folder cannot be written)."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab+")  # noqa: SIM115 - held open for the session's lifetime
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file.write(orjson.dumps(self._header) + b"\n")
            self._read_offset = self._file.tell()
        self._file.seek(0, os.SEEK_END)
        written = stream(lines)
        self._file.writelines([written] if type(written) is bytes else written)
        self._file.write(b"\n")
        self._file.flush()
        self.unread += len(lines)

    def read(self, limit: int) -> tuple[list[Entry], int]:
        """Up to ``limit`` records (and ``MAX_BATCH_BYTES``, after the first) from where reading stopped, and the
        offset after them."""
        if self._file is None or not self.unread:
            return [], self._read_offset
        self._file.seek(self._read_offset)
        lines, size = [], 0
        while len(lines) < limit and size < MAX_BATCH_BYTES and (line := read(self._file)) is not None:
            lines.append(line)
            size += len(line)
        return lines, self._file.tell()

    def consumed(self, count: int, offset: int) -> None:
        """The records read up to ``offset`` are in the database: drop the file once all are."""
        self._read_offset = offset
        self.unread -= count
        if not self.unread:
            self.remove()

    def release(self) -> None:
        """Let go of the file (and its lock), leaving the records not yet written for a later recorder: those
        read back and written already are cut from its head first."""
        if self._file is None:
            return
        if not self.unread:
            self.remove()
            return
        self._file.seek(0)
        head = self._file.readline()
        if self._read_offset > len(head):
            self._file.seek(self._read_offset)
            rest = self._file.read()
            rewritten = self.path.with_suffix(".rewriting")
            rewritten.write_bytes(head + rest)
            os.replace(rewritten, self.path)  # atomically: a crash leaves the old file or the new one
        self._file.close()
        self._file = None

    def remove(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()
            self._file = None
            _remove_if_empty(self.path.parent)


class LeftoverFile:
    """A journal file whose session is gone, locked by whoever replays it."""

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path, self._file = path, handle

    @classmethod
    def claim(cls, path: Path) -> LeftoverFile | None:
        """The file, locked for replay, or None if its session still lives (or someone replays it)."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by done()
        except OSError:
            return None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        return cls(path, handle)

    def batches(self, size: int) -> Iterator[list[Entry]]:
        """Its records, ``size`` at a time or fewer that hold ``MAX_BATCH_BYTES`` (the header skipped)."""
        self._file.seek(0)
        self._file.readline()
        batch: list[Entry] = []
        held = 0
        for entry in entries(self._file):
            batch.append(entry)
            held += len(entry)
            if len(batch) == size or held >= MAX_BATCH_BYTES:
                yield batch
                batch, held = [], 0
        if batch:
            yield batch

    def done(self, *, remove: bool) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
            _remove_if_empty(self.path.parent)
        self._file.close()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty: another session's journal is there


def leftover_files(folder: Path, *, except_path: Path | None = None) -> list[Path]:
    """Journal files in ``folder``, oldest first (ids are time-ordered), but ``except_path``."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob(f"*{SUFFIX}") if path != except_path)


def header(url: str, project: str, run: str, session: str) -> dict[str, Any]:
    return {"rolloutdb_journal": 1, "database": database_identity(url), "project": project, "run": run,
            "session": session, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def list_journals(directory: str | os.PathLike) -> list[JournalInfo]:
    """Every journal file under ``directory``, for any database and project."""
    found = []
    for path in sorted(Path(directory).glob(f"*/*{SUFFIX}")):
        try:
            with open(path, "rb") as handle:
                first = orjson.loads(handle.readline() or b"{}")
                records = sum(1 for _ in entries(handle))
        except (OSError, orjson.JSONDecodeError):
            continue
        claimed = LeftoverFile.claim(path)
        if claimed is not None:
            claimed.done(remove=False)
        found.append(JournalInfo(path=path, database=str(first.get("database", "?")),
                                 project=str(first.get("project", "?")), run=str(first.get("run", "?")),
                                 session=str(first.get("session", path.stem)),
                                 created_at=str(first.get("created_at", "?")), records=records,
                                 size=path.stat().st_size, live=claimed is None))
    return found


@dataclass(frozen=True)
class ReplayResult:
    """What ``replay_journals`` did: files written and removed, records written and refused (with why),
    files skipped because their recorder still runs."""

    files: int
    written: int
    rejected: list[str]
    live: list[Path]


def replay_journals(store: Any, directory: str | os.PathLike = JOURNAL_DIRECTORY, *, batch_size: int = 2000,
                    on_batch: Any = None) -> ReplayResult:
    """Write into ``store`` the records that gone recorders kept in the journal for its database and project,
    oldest first, and remove their files. ``on_batch(records)`` is called after each batch (for progress)."""
    folder = journal_folder(directory, store.url, store.project)
    files = written = 0
    rejected: list[str] = []
    live: list[Path] = []
    for path in leftover_files(folder):
        claimed = LeftoverFile.claim(path)
        if claimed is None:
            live.append(path)
            continue
        try:
            for lines in claimed.batches(batch_size):
                result = store.recording.apply([decode(line) for line in lines], heartbeat=False)
                written += result.applied
                rejected += [f"{r.subject}: {r.message}" for r in result.rejected]
                if on_batch is not None:
                    on_batch(len(lines))
        except BaseException:
            claimed.done(remove=False)
            raise
        claimed.done(remove=True)
        files += 1
    return ReplayResult(files=files, written=written, rejected=rejected, live=live)


def count_journal_records(store: Any, directory: str | os.PathLike = JOURNAL_DIRECTORY) -> int:
    """How many records wait in the journal for ``store``'s database and project (from recorders that are
    gone: what ``replay_journals`` would write)."""
    folder = journal_folder(directory, store.url, store.project)
    return sum(info.records for info in list_journals(directory) if info.path.parent == folder and not info.live)
