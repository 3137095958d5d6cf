"""Artifacts: content (screenshots, files, a policy's weights) stored once per project by its SHA-256, and linked
with a role from turns, steps, rollouts and checkpoints.

Where the content lives is chosen by ``connect(..., artifacts=...)``: ``"database"`` (in ``artifact_chunks``,
a chunk a row), or a folder (a path or ``file:///dir``), where each blob is ``<folder>/<project id>/ab/cdef...``.
Default: a SQLite file's folder ``<db>.artifacts`` beside it; the database itself otherwise. An artifact
remembers where its content went, so a store opened with another setting still reads it.

Content is always spooled first (hashing it), then written under the hash in the put's transaction: a blob by
temp file + fsync + rename, so a crash never leaves half a blob under its hash; chunks in that transaction.

gc deletes artifacts no link refers to that were not put or linked within its grace period: a writer puts,
then links within the grace period, and gc leaves the artifact alone meanwhile. gc locks the artifacts it
deletes (PostgreSQL: FOR UPDATE; SQLite: the write lock), and a put or a link takes the same row lock, so the
two never interleave on one artifact."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

import zstandard
from sqlalchemy import Connection, and_, delete, exists, select, update

from ..config import ARTIFACTS_VAR, MAX_ARTIFACT_BYTES
from ..errors import InvalidInputError, NotFoundError
from ..records import Artifact, ArtifactLink
from ..schema import artifact_chunks, artifact_links, artifacts, checkpoints, rollouts, steps, turns
from .base import build_record, check_key, insert_ignoring_conflicts, seconds

CHUNK_BYTES = 1 << 20  # content is copied, written and read this much at a time
ROLES = ("screenshot", "before", "after", "attachment")
ZSTD = "zstd"
COMPRESSIONS = (None, ZSTD)  # how put may store content
# link(..., NAME=id): the owner type it stores, and the table whose row it must name
OWNERS = {"turn_id": ("turn", turns), "step_id": ("step", steps), "rollout_id": ("rollout", rollouts),
          "checkpoint_id": ("checkpoint", checkpoints)}
GC_GRACE = timedelta(hours=1)
# A spool file this old is a crashed put's, whatever gc's grace: one in use by a put is never this old.
STALE_SPOOL_SECONDS = 24 * 3600
DATABASE = "database"
SHA256 = re.compile(r"[0-9a-f]{64}")


def artifact_digest(artifact: Any) -> str:
    """The sha256 naming ``artifact`` (its record, or the sha256 itself), or InvalidInputError."""
    if isinstance(artifact, Artifact):
        return artifact.sha256
    if not isinstance(artifact, str) or not SHA256.fullmatch(artifact):
        raise InvalidInputError(f"an artifact is named by its record or its sha256 (64 lowercase hex digits), "
                                f"got {type(artifact).__name__} {artifact!r:.80}")
    return artifact


def content_source(data: Any):
    """A context manager giving ``put``'s content as a binary file object: bytes, a file's path (opened and closed
    here), or the caller's file object (left open)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(data)
    if isinstance(data, (str, os.PathLike)):
        if not os.path.isfile(data):
            raise InvalidInputError(f"artifacts.put: no file at {os.fspath(data)!r}")
        return open(data, "rb")
    if callable(getattr(data, "read", None)):
        return contextlib.nullcontext(data)  # the caller's file: the caller closes it
    raise InvalidInputError(f"artifacts.put takes bytes, a file's path or a binary file object, "
                            f"got {type(data).__name__}")


def content_chunks(source: IO[bytes], max_bytes: int) -> Iterator[bytes]:
    """The content of ``source`` a chunk at a time; InvalidInputError once it is not bytes, or is over
    ``max_bytes`` (before more than a chunk beyond it is read)."""
    size = 0
    while chunk := source.read(CHUNK_BYTES):
        if not isinstance(chunk, bytes):
            raise InvalidInputError(f"artifacts.put: the file object gave {type(chunk).__name__}, not bytes: open "
                                    "it in binary mode")
        size += len(chunk)
        if size > max_bytes:
            raise InvalidInputError(f"artifacts.put: the content is over the limit of {max_bytes:,} bytes "
                                    "(max_artifact_bytes)")
        yield chunk


def check_media_type(media_type: Any) -> str:
    if not isinstance(media_type, str) or not 0 < len(media_type) <= 200:
        raise InvalidInputError(f"media_type must be a string of 1 to 200 characters, got {media_type!r:.80}")
    return media_type


def check_compression(compression: Any) -> None:
    if compression not in COMPRESSIONS:
        raise InvalidInputError(f"unknown compression {compression!r:.80}; compressions: None, "
                                f"{', '.join(repr(name) for name in COMPRESSIONS if name)}")


def check_role(role: Any) -> str:
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidInputError(f"unknown artifact role {role!r:.80}; roles: {', '.join(ROLES)}")
    return role


@dataclass(frozen=True)
class GcResult:
    artifacts: int  # artifacts deleted, with their content
    bytes: int  # their size
    links: int  # links deleted because their turn, step or rollout is gone


# Content told by its first bytes (the recorder's screenshots come without a media type).
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def media_type_of(data: bytes) -> str:
    """The media type of an image by its signature (PNG, JPEG, GIF, WebP); application/octet-stream otherwise."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((media for signature, media in _SIGNATURES if data.startswith(signature)), "application/octet-stream")


def artifacts_home(setting: str | os.PathLike | None, database_file: str | None) -> Path | None:
    """The folder blobs go to for ``connect(..., artifacts=setting)``; None: the database holds them."""
    setting = os.environ.get(ARTIFACTS_VAR) or None if setting is None else setting
    if setting is None:
        return None if database_file is None else Path(database_file + ".artifacts").absolute()
    if isinstance(setting, os.PathLike):
        return Path(setting).absolute()
    if not isinstance(setting, str) or not setting:
        raise InvalidInputError(f'artifacts must be "database", a folder or a file:// URL, got {setting!r:.80}')
    if setting == DATABASE:
        return None
    if "://" in setting:
        parsed = urlparse(setting)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise InvalidInputError(f"artifacts: only file:// URLs (a local or mounted folder) are supported, got "
                                    f"{setting!r}")
        return Path(unquote(parsed.path)).absolute()
    return Path(setting).absolute()


class Artifacts:
    """``store.artifacts``: put content, read it back, link it, collect what nothing links."""

    def __init__(self, store, home: Path | None, max_bytes: int = MAX_ARTIFACT_BYTES) -> None:
        self._store = store
        self.home = home  # None: content is stored in the database
        self.max_bytes = max_bytes  # a put of more is refused

    # -- writing -----------------------------------------------------------------------------------

    def put(self, data: bytes | str | os.PathLike | IO[bytes], media_type: str = "application/octet-stream", *,
            role: str = "attachment", turn_id: str | None = None, step_id: str | None = None,
            rollout_id: str | None = None, checkpoint_id: str | None = None, compression: str | None = None
            ) -> Artifact:
        """Store ``data`` (bytes, a file's path, or a binary file object read to its end) and return its
        record; content stored already (in this project) is not stored again, and its record is returned.
        Given a turn, step or rollout, it is linked from there with ``role`` in the same transaction (which
        gc cannot come between, whatever its grace period). ``compression="zstd"`` stores it compressed (for
        text-like content: logs, JSON, HTML); its sha256 and size stay the original's, and it reads back as given."""
        check_media_type(media_type)
        check_compression(compression)
        owner = None
        if (turn_id, step_id, rollout_id, checkpoint_id) != (None, None, None, None):
            owner = self._owner(turn_id=turn_id, step_id=step_id, rollout_id=rollout_id, checkpoint_id=checkpoint_id)
            check_role(role)
        with content_source(data) as source, self._spooled(source, compression) as spooled:
            with self._store._write() as connection:
                return self._store_spooled(connection, spooled, media_type, owner, role)

    def _put_in(self, connection: Connection, data: bytes, *, turn_id: str, role: str) -> Artifact:
        """``put(data, turn_id=..., role=...)`` in the caller's write transaction (the recorder's batch: a turn and
        its screenshots are written together or not at all), its media type told by its first bytes."""
        digest = hashlib.sha256(data).hexdigest()
        row = self._row(connection, digest, lock=True)
        if row is not None and (row["storage"] == DATABASE or Path(row["location"]).exists()):
            self._link(connection, digest, "turn_id", turn_id, role, self._store.now())  # stored: not again
            return self._record(row)
        with self._spooled(io.BytesIO(data)) as spooled:
            return self._store_spooled(connection, spooled, media_type_of(data), ("turn_id", turn_id), role)

    def _store_spooled(self, connection: Connection, spooled: _Spool, media_type: str,
                       owner: tuple[str, str] | None, role: str) -> Artifact:
        spool, digest, size = spooled.file, spooled.digest, spooled.size
        now = self._store.now()  # in the transaction: gc's grace counts from when the row is touched
        found = self._row(connection, digest, lock=True)
        inserted = found is None and connection.execute(
            insert_ignoring_conflicts(connection, artifacts).returning(artifacts.c.sha256),
            {"sha256": digest, "project_id": self._store.project_id, "size": size, "media_type": media_type,
             "compression": spooled.compression, "storage": "file" if self.home else DATABASE,
             "location": str(self._blob_path(digest)) if self.home else None,
             "created_at": now, "touched_at": now}).first() is not None
        if not inserted:  # stored already (or meanwhile, by another process): keep it from gc
            self._touch(connection, digest, now)
        row = self._row(connection, digest)
        if owner is not None:
            self._link(connection, digest, *owner, role, now)
        if row["storage"] == DATABASE:
            if inserted:
                self._write_chunks(connection, digest, spool)
        elif row["compression"] == spooled.compression:  # (stored otherwise, the spool is not its blob)
            self._place_blob(Path(row["location"]), spool)  # again, should a crash have lost it
        return self._record(row)

    def link(self, artifact: Artifact | str, *, role: str = "attachment", turn_id: str | None = None,
             step_id: str | None = None, rollout_id: str | None = None, checkpoint_id: str | None = None
             ) -> ArtifactLink:
        """Link an artifact (its record or sha256) from one turn, step or rollout, with ``role`` (one of
        ``ROLES``). Linking it again with the same owner and role returns the link there is. An artifact not
        linked within gc's grace period of its put may be collected meanwhile (NotFoundError): ``put(...,
        turn_id=...)`` puts and links at once."""
        digest = artifact_digest(artifact)
        check_role(role)
        field, owner_id = self._owner(turn_id=turn_id, step_id=step_id, rollout_id=rollout_id,
                                      checkpoint_id=checkpoint_id)
        with self._store._write() as connection:
            if self._row(connection, digest, lock=True) is None:  # the lock keeps gc off it until commit
                raise self._not_found(digest)
            return self._link(connection, digest, field, owner_id, role, self._store.now())

    def _link(self, connection: Connection, digest: str, field: str, owner_id: str, role: str, now) -> ArtifactLink:
        """Link the artifact ``digest``, locked by the caller, from its owner, which must exist."""
        owner_type, table = OWNERS[field]
        if connection.execute(select(table.c.id).where(table.c.project_id == self._store.project_id,
                                                       table.c.id == owner_id)).first() is None:
            raise NotFoundError(f"{owner_type} {owner_id!r} not found in project {self._store.project!r}")
        self._touch(connection, digest, now)
        same = and_(artifact_links.c.project_id == self._store.project_id, artifact_links.c.sha256 == digest,
                    artifact_links.c.owner_type == owner_type, artifact_links.c.owner_id == owner_id,
                    artifact_links.c.role == role)
        existing = connection.execute(select(artifact_links).where(same)).mappings().first()
        if existing is not None:
            return ArtifactLink.model_validate(dict(existing))
        link = build_record(ArtifactLink, {"project_id": self._store.project_id, "sha256": digest,
                                           "owner_type": owner_type, "owner_id": owner_id, "role": role,
                                           "created_at": now}, "artifact link")
        connection.execute(artifact_links.insert(), link.model_dump())
        return link

    def gc(self, grace: timedelta | float = GC_GRACE) -> GcResult:
        """Delete the links whose turn, step or rollout is gone, then the artifacts (rows and content) no link
        refers to that were not put or linked in the last ``grace`` (a timedelta or seconds; default an hour:
        a writer links what it put within it)."""
        grace_seconds = grace.total_seconds() if isinstance(grace, timedelta) else grace
        cutoff = self._store.now() - timedelta(seconds=seconds("grace", grace_seconds))
        project = self._store.project_id
        linked = exists().where(artifact_links.c.project_id == project, artifact_links.c.sha256 == artifacts.c.sha256)
        with self._store._write() as connection:
            dangling = 0
            for owner_type, table in OWNERS.values():
                dangling += connection.execute(delete(artifact_links).where(
                    artifact_links.c.project_id == project, artifact_links.c.owner_type == owner_type,
                    ~exists().where(table.c.project_id == project, table.c.id == artifact_links.c.owner_id))
                ).rowcount
            candidates = connection.execute(
                select(artifacts.c.sha256, artifacts.c.size, artifacts.c.location)
                .where(artifacts.c.project_id == project, ~linked,
                       (artifacts.c.touched_at < cutoff) | artifacts.c.touched_at.is_(None))
                .with_for_update()).all()
            # Locked now: a link committed while gc waited for a lock is seen by this new statement.
            keys = [row.sha256 for row in candidates]
            relinked = set(connection.execute(select(artifact_links.c.sha256).where(
                artifact_links.c.project_id == project, artifact_links.c.sha256.in_(keys))).scalars()) if keys else set()
            doomed = [row for row in candidates if row.sha256 not in relinked]
            for start in range(0, len(doomed), 500):
                batch = [row.sha256 for row in doomed[start:start + 500]]
                for table in (artifact_chunks, artifacts):
                    connection.execute(delete(table).where(table.c.project_id == project, table.c.sha256.in_(batch)))
            # Before commit, while the rows are locked: a put of the same content waits, then writes it anew.
            for row in doomed:
                if row.location is not None:
                    Path(row.location).unlink(missing_ok=True)
        self._remove_stale_spools()
        return GcResult(artifacts=len(doomed), bytes=sum(row.size for row in doomed), links=dangling)

    # -- reading -----------------------------------------------------------------------------------

    def get(self, sha256: Artifact | str) -> Artifact:
        """The artifact with this sha256 (or this record's, read again), or NotFoundError."""
        digest = artifact_digest(sha256)
        with self._store._read() as connection:
            row = self._row(connection, digest)
        if row is None:
            raise self._not_found(digest)
        return self._record(row)

    def exists(self, sha256: str) -> bool:
        """Whether this project has an artifact with this sha256."""
        digest = artifact_digest(sha256)
        with self._store._read() as connection:
            return self._row(connection, digest) is not None

    def open(self, artifact: Artifact | str) -> IO[bytes]:
        """The content as a binary file object, read as it is consumed (never all at once)."""
        record = self.get(artifact)
        if record.storage == DATABASE:
            stored = io.BufferedReader(ChunkReader(functools.partial(self._chunk, record.sha256)), CHUNK_BYTES)
        else:
            try:
                stored = open(record.location, "rb")
            except FileNotFoundError:
                raise NotFoundError(f"the content of artifact {record.sha256} is missing from {record.location}; "
                                    "putting it again restores it") from None
        if record.compression == ZSTD:
            return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(stored, closefd=True), CHUNK_BYTES)
        if record.compression == "gzip":  # not written by put, but a record may say so
            return gzip.GzipFile(fileobj=stored)
        return stored

    def read(self, artifact: Artifact | str) -> bytes:
        """The whole content, as bytes (``open`` streams it)."""
        with self.open(artifact) as file:
            return file.read()

    def links(self, *, turn_id: str | None = None, step_id: str | None = None,
              rollout_id: str | None = None, checkpoint_id: str | None = None) -> list[ArtifactLink]:
        """The links from one turn, step, rollout or checkpoint, oldest first."""
        field, owner_id = self._owner(turn_id=turn_id, step_id=step_id, rollout_id=rollout_id,
                                      checkpoint_id=checkpoint_id)
        statement = (select(artifact_links)
                     .where(artifact_links.c.project_id == self._store.project_id,
                            artifact_links.c.owner_type == OWNERS[field][0], artifact_links.c.owner_id == owner_id)
                     .order_by(artifact_links.c.created_at, artifact_links.c.id))
        with self._store._read() as connection:
            return [ArtifactLink.model_validate(dict(row)) for row in connection.execute(statement).mappings()]

    def _chunk(self, digest: str, seq: int) -> bytes | None:
        with self._store._read() as connection:
            return connection.execute(select(artifact_chunks.c.data).where(
                artifact_chunks.c.project_id == self._store.project_id, artifact_chunks.c.sha256 == digest,
                artifact_chunks.c.seq == seq)).scalar_one_or_none()

    # -- helpers -----------------------------------------------------------------------------------

    def _row(self, connection: Connection, digest: str, *, lock: bool = False):
        statement = select(artifacts).where(artifacts.c.project_id == self._store.project_id,
                                            artifacts.c.sha256 == digest)
        return connection.execute(statement.with_for_update() if lock else statement).mappings().first()

    def _touch(self, connection: Connection, digest: str, now) -> None:
        connection.execute(update(artifacts).where(artifacts.c.project_id == self._store.project_id,
                                                   artifacts.c.sha256 == digest).values(touched_at=now))

    def _record(self, row) -> Artifact:
        return Artifact.model_validate(dict(row))

    def _not_found(self, digest: str) -> NotFoundError:
        return NotFoundError(f"artifact {digest} not found in project {self._store.project!r}")

    @staticmethod
    def _owner(**owners: str | None) -> tuple[str, str]:
        given = [(field, value) for field, value in owners.items() if value is not None]
        if len(given) != 1:
            raise InvalidInputError(f"name exactly one owner ({', '.join(OWNERS)}), got "
                                    f"{', '.join(field for field, _ in given) or 'none'}")
        field, value = given[0]
        return field, check_key(OWNERS[field][0], value)

    def _blob_path(self, digest: str) -> Path:
        return self.home / self._store.project_id / digest[:2] / digest[2:]

    def _spool_folder(self) -> Path | None:
        return None if self.home is None else self.home / self._store.project_id / "tmp"

    def _spooled(self, source: IO[bytes], compression: str | None = None):
        """Copy ``source`` to a temporary file (beside the blobs, for the rename), hashing it (as given) and
        compressing it if asked; fsynced."""
        folder = self._spool_folder()
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        spool = tempfile.NamedTemporaryFile(dir=folder, prefix="put-", delete=False)
        digest, size = hashlib.sha256(), 0
        compressor = zstandard.ZstdCompressor().compressobj() if compression == ZSTD else None
        try:
            for chunk in content_chunks(source, self.max_bytes):
                digest.update(chunk)
                size += len(chunk)
                spool.write(chunk if compressor is None else compressor.compress(chunk))
            if compressor is not None:
                spool.write(compressor.flush())
            spool.flush()
            os.fsync(spool.fileno())
            spool.seek(0)
        except BaseException:
            spool.close()
            os.unlink(spool.name)
            raise
        return _Spool(spool, digest.hexdigest(), size, compression)

    def _write_chunks(self, connection: Connection, digest: str, spool: IO[bytes]) -> None:
        seq = 0
        while chunk := spool.read(CHUNK_BYTES):
            connection.execute(artifact_chunks.insert(), {"project_id": self._store.project_id, "sha256": digest,
                                                         "seq": seq, "data": chunk})
            seq += 1

    @staticmethod
    def _place_blob(path: Path, spool) -> None:
        """The spooled content renamed to ``path`` (atomic: whole or absent), unless it is there already."""
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spool.name, path)
        spool.placed = True
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    def _remove_stale_spools(self) -> None:
        """Spool files a crashed put left behind."""
        folder = self._spool_folder()
        if folder is None or not folder.is_dir():
            return
        cutoff = time.time() - STALE_SPOOL_SECONDS
        for entry in folder.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
            except FileNotFoundError:
                pass


class _Spool:
    """A context manager over a spooled put (its file, sha256 and size); the file is removed after, unless placed."""

    def __init__(self, file, digest: str, size: int, compression: str | None) -> None:
        self.file, self.digest, self.size, self.compression = file, digest, size, compression
        self.file.placed = False

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.file.close()
        if not self.file.placed:
            os.unlink(self.file.name)


class ChunkReader(io.RawIOBase):
    """An artifact stored in the database, read a chunk (one row, one short read) at a time."""

    def __init__(self, chunk: Callable[[int], bytes | None]) -> None:
        self._chunk, self._seq, self._buffer = chunk, 0, b""  # chunk(seq): its bytes, None past the last
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        if not self._buffer and not self._done:
            chunk = self._chunk(self._seq)
            self._seq += 1
            if chunk is None:
                self._done = True
            else:
                self._buffer = bytes(chunk)
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size
