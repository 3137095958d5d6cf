"""Artifacts: content (screenshots, files, a policy's weights) stored once per project by its SHA-256, and linked
with a role from turns, steps, rollouts and checkpoints.

Where the content lives is chosen by ``connect(..., artifacts=...)``: ``"database"`` (in ``artifact_chunks``,
a chunk a row), a folder (a path or ``file:///dir``), or a folder fsspec reaches by URL (``s3://bucket/prefix``):
see ``blobs``. Default: a SQLite file's folder ``<db>.artifacts`` beside it; the database itself otherwise. An
artifact remembers where its content went, so a store opened with another setting still reads it.

Content is always spooled first (hashing it), then written under the hash in the put's transaction: a blob whole
or not at all (see ``blobs``), so a crash never leaves half a blob under its hash; chunks in that transaction.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, NamedTuple

import zstandard
from sqlalchemy import Connection, delete, exists, select, update

from ..config import ARTIFACTS_VAR, MAX_ARTIFACT_BYTES
from ..errors import InvalidInputError, NotFoundError
from ..records import Artifact, ArtifactLink
from ..schema import artifact_chunks, artifact_links, artifacts, checkpoints, rollouts, steps, turns
from ._bulk import bulk_insert
from .base import build_record, check_key, insert_ignoring_conflicts, mappings, one_of, seconds, whole_number
from .blobs import Folder, UrlFolder, blob_exists, blob_home, open_blob, place_blob, remove_blob, writing_blobs

CHUNK_BYTES = 1 << 20  # content is copied, written and read this much at a time
ROLES = ("screenshot", "before", "after", "attachment")
ZSTD = "zstd"
COMPRESSIONS = (None, ZSTD)  # how put may store content
WEBP = "webp"
REENCODINGS = (None, WEBP)  # what put may re-encode images as
DEFAULT_QUALITY = 80
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


def check_reencoding(reencode: Any, quality: Any, compression: str | None) -> None:
    if reencode not in REENCODINGS:
        raise InvalidInputError(f"unknown reencode {reencode!r:.80}; re-encodings: None, "
                                f"{', '.join(repr(name) for name in REENCODINGS if name)}")
    whole_number("quality", quality, 0, 100)
    if reencode is not None and compression is not None:
        raise InvalidInputError("reencode and compression do not go together: an image re-encoded is compressed")


def reencoded(data: bytes, quality: int) -> bytes:
    """The image ``data`` as WebP at ``quality`` (0-100, Pillow's scale); InvalidInputError when it is no image
    Pillow reads, or Pillow is not installed."""
    try:
        from PIL import Image
    except ImportError:
        raise InvalidInputError("artifacts.put: reencode needs Pillow: pip install 'rolloutdb[images]'") from None
    encoded = io.BytesIO()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.save(encoded, format="WEBP", quality=quality)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # not an image: UnidentifiedImageError
        raise InvalidInputError(f"artifacts.put: cannot re-encode the content as webp: it is no image Pillow reads "
                                f"({exc})") from None
    return encoded.getvalue()


def check_role(role: Any) -> str:
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidInputError(f"unknown artifact role {role!r:.80}; roles: {', '.join(ROLES)}")
    return role


class Screenshot(NamedTuple):
    """A turn's screenshot as the recorder hands it to the store (``Artifacts.put_screenshots_in``)."""

    content: bytes
    turn_id: str
    role: str
    reencode: str | None = None
    quality: int = DEFAULT_QUALITY


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


def artifacts_home(setting: str | os.PathLike | None, database_file: str | None) -> Folder | UrlFolder | None:
    """Where blobs go for ``connect(..., artifacts=setting)``; None: the database holds them."""
    setting = os.environ.get(ARTIFACTS_VAR) or None if setting is None else setting
    if setting is None:
        return None if database_file is None else Folder(Path(database_file + ".artifacts").absolute())
    if not isinstance(setting, (str, os.PathLike)) or not setting:
        raise InvalidInputError(f'artifacts must be "database", a folder or a URL (file://, s3://, ...), got '
                                f'{setting!r:.80}')
    if setting == DATABASE:
        return None
    return blob_home(setting, "artifacts")


class Artifacts:
    """``store.artifacts``: put content, read it back, link it, collect what nothing links."""

    def __init__(self, store, blobs: Folder | UrlFolder | None, max_bytes: int = MAX_ARTIFACT_BYTES) -> None:
        self._store = store
        self.blobs = blobs  # where new content goes; None: in the database
        self.max_bytes = max_bytes  # a put of more is refused

    @property
    def home(self) -> Path | None:
        """The local folder new content goes to; None when it goes to the database or to a URL."""
        return self.blobs.path if isinstance(self.blobs, Folder) else None

    # -- writing -----------------------------------------------------------------------------------

    def put(self, data: bytes | str | os.PathLike | IO[bytes], media_type: str = "application/octet-stream", *,
            role: str = "attachment", turn_id: str | None = None, step_id: str | None = None,
            rollout_id: str | None = None, checkpoint_id: str | None = None, compression: str | None = None,
            reencode: str | None = None, quality: int = DEFAULT_QUALITY) -> Artifact:
        """Store ``data`` (bytes, a file's path, or a binary file object read to its end) and return its
        record; content stored already (in this project) is not stored again, and its record is returned.
        Given a turn, step or rollout, it is linked from there with ``role`` in the same transaction (which
        gc cannot come between, whatever its grace period). ``compression="zstd"`` stores it compressed (for
        text-like content: logs, JSON, HTML); its sha256 and size stay the original's, and it reads back as given.
        ``reencode="webp"`` stores an image (a screenshot) as WebP at ``quality`` (0-100) when that is smaller:
        the record keeps the original's sha256, size and media type (``original_media_type``; the same image put
        again is this artifact), its ``media_type`` and ``stored_size`` are the stored form's, and it reads back
        in that form."""
        check_media_type(media_type)
        check_compression(compression)
        check_reencoding(reencode, quality, compression)
        owner = None
        if (turn_id, step_id, rollout_id, checkpoint_id) != (None, None, None, None):
            owner = self._owner(turn_id=turn_id, step_id=step_id, rollout_id=rollout_id, checkpoint_id=checkpoint_id)
            check_role(role)
        with content_source(data) as source, self._spooled(source, compression, reencode, quality) as spooled:
            with self._store.writing() as connection:
                return self._store_spooled(connection, spooled, media_type, owner, role)

    def put_screenshots_in(self, connection: Connection, screenshots: list[Screenshot]) -> None:
        """``put(content, turn_id=..., role=..., reencode=..., quality=...)`` for each screenshot, in the caller's
        write transaction (the recorder's batch: turns and their screenshots are written together or not at all),
        each media type told by the content's first bytes: content not stored yet is stored (re-encoded if asked
        and Pillow reads it; else as given: a turn is not refused for its screenshot), then all are linked at once
        (``_link_many``)."""
        if not screenshots:
            return
        digests = [hashlib.sha256(shot.content).hexdigest() for shot in screenshots]
        stored = {row["sha256"]: row for row in connection.execute(
            select(artifacts).where(artifacts.c.project_id == self._store.project_id,
                                    one_of(artifacts.c.sha256, sorted(set(digests)), self._store.backend))
            .with_for_update()).mappings()}
        placed: set[str] = set()  # the same content twice in the batch: stored once
        for shot, digest in zip(screenshots, digests):
            row = stored.get(digest)
            if digest not in placed and (row is None or (
                    row["storage"] != DATABASE and not blob_exists(row["storage"], row["location"]))):
                try:
                    spooled = self._spooled(io.BytesIO(shot.content), None, shot.reencode, shot.quality)
                except InvalidInputError:  # no image Pillow reads (or no Pillow): stored as given
                    spooled = self._spooled(io.BytesIO(shot.content))
                with spooled:
                    self._store_spooled(connection, spooled, media_type_of(shot.content), None, "")
                placed.add(digest)
        self._link_many(connection, [(digest, "turn_id", shot.turn_id, shot.role)
                                     for digest, shot in zip(digests, screenshots)], self._store.now())

    def put_stored_form(self, data: IO[bytes], record: Mapping[str, Any]) -> Artifact:
        """A re-encoded artifact put again from its stored form (a bundle's, whose ``record`` it is): kept under the
        original's sha256, size and media type, as where it came from. Content of another size than the record's
        stored size is refused."""
        with self._spooled(data) as spooled:
            if spooled.size != record["stored_size"]:
                raise InvalidInputError(f"the stored form of artifact {record['sha256']} has {spooled.size:,} bytes, "
                                        f"not {record['stored_size']!r}")
            spooled.digest, spooled.size = record["sha256"], record["size"]
            spooled.stored_media_type = record["media_type"]
            with self._store.writing() as connection:
                return self._store_spooled(connection, spooled, record["original_media_type"], None, "")

    def _store_spooled(self, connection: Connection, spooled: _Spool, media_type: str,
                       owner: tuple[str, str] | None, role: str) -> Artifact:
        spool, digest, size = spooled.file, spooled.digest, spooled.size
        now = self._store.now()  # in the transaction: gc's grace counts from when the row is touched
        found = self._row(connection, digest, lock=True)
        inserted = found is None and connection.execute(
            insert_ignoring_conflicts(connection, artifacts).returning(artifacts.c.sha256),
            {"sha256": digest, "project_id": self._store.project_id, "size": size,
             "media_type": spooled.stored_media_type or media_type, "stored_size": spooled.stored_size,
             "original_media_type": media_type if spooled.stored_media_type else None,
             "compression": spooled.compression, "storage": DATABASE if self.blobs is None else self.blobs.storage,
             "location": None if self.blobs is None else self.blobs.location(self._store.project_id, digest),
             "created_at": now, "touched_at": now}).first() is not None
        if not inserted:  # stored already (or meanwhile, by another process): keep it from gc
            self._touch(connection, digest, now)
        row = self._row(connection, digest)
        if owner is not None:
            self._link_many(connection, [(digest, *owner, role)], now)
        if row["storage"] == DATABASE:
            if inserted:
                self._write_chunks(connection, digest, spool)
        elif spooled.is_form_of(row):  # (stored otherwise, the spool is not its blob)
            spool.placed = place_blob(row["storage"], row["location"], spool)  # again, should a crash have lost it
        return self._record(row)

    def link(self, artifact: Artifact | str, *, role: str = "attachment", turn_id: str | None = None,
             step_id: str | None = None, rollout_id: str | None = None, checkpoint_id: str | None = None
             ) -> ArtifactLink:
        """Link an artifact (its record or sha256) from one turn, step or rollout, with ``role`` (one of
        ``ROLES``). Linking it again with the same owner and role returns the link there is. An artifact not
        linked within gc's grace period of its put may be collected meanwhile (NotFoundError): ``put(...,
        turn_id=...)`` puts and links at once."""
        wanted = (artifact_digest(artifact), *self._owner(turn_id=turn_id, step_id=step_id, rollout_id=rollout_id,
                                                          checkpoint_id=checkpoint_id), check_role(role))
        with self._store.writing() as connection:
            return self._link_many(connection, [wanted], self._store.now())[0]

    def link_many(self, links: Iterable[Mapping[str, Any]]) -> list[ArtifactLink]:
        """``link`` for many artifacts and owners in one transaction and a few statements, however many links: each
        a mapping of ``artifact`` (a record or sha256), ``role`` (default ``"attachment"``) and one of ``turn_id``,
        ``step_id``, ``rollout_id``, ``checkpoint_id``. Returns the links in the order given (one linked already: the link there is).
        A bad one (an unknown artifact or owner among them) links none."""
        wanted = []
        for position, item in enumerate(mappings("link", links)):
            unknown = set(item) - {"artifact", "role", *OWNERS}
            try:
                if unknown or "artifact" not in item:
                    raise InvalidInputError(f"a link has an artifact, a role and one owner ({', '.join(OWNERS)}), "
                                            f"got {', '.join(sorted(map(str, item)))}")
                wanted.append((artifact_digest(item["artifact"]),
                               *self._owner(**{field: item.get(field) for field in OWNERS}),
                               check_role(item.get("role", "attachment"))))
            except InvalidInputError as exc:
                raise InvalidInputError(f"link #{position}: {exc}") from None
        if not wanted:
            return []
        with self._store.writing() as connection:
            return self._link_many(connection, wanted, self._store.now())

    def _link_many(self, connection: Connection, wanted: list[tuple[str, str, str, str]], now) -> list[ArtifactLink]:
        """Link each (sha256, owner field, owner id, role): the artifacts locked (gc keeps off them until commit)
        and touched, their owners found, the links not there yet inserted, in a statement each."""
        project, backend = self._store.project_id, self._store.backend
        digests = sorted({digest for digest, *_ in wanted})
        found = set(connection.execute(select(artifacts.c.sha256).where(
            artifacts.c.project_id == project, one_of(artifacts.c.sha256, digests, backend))
            .with_for_update()).scalars())
        if missing := [digest for digest, *_ in wanted if digest not in found]:
            raise self.not_found(missing[0])
        for field in sorted({field for _, field, _, _ in wanted}):
            owner_type, table = OWNERS[field]
            ids = sorted({owner_id for _, named, owner_id, _ in wanted if named == field})
            present = set(connection.execute(select(table.c.id).where(
                table.c.project_id == project, one_of(table.c.id, ids, backend))).scalars())
            if absent := [owner_id for owner_id in ids if owner_id not in present]:
                raise NotFoundError(f"{owner_type} {absent[0]!r} not found in project {self._store.project!r}")
        connection.execute(update(artifacts).where(artifacts.c.project_id == project,
                                                   one_of(artifacts.c.sha256, digests, backend))
                           .values(touched_at=now))

        def key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
            return row["sha256"], row["owner_type"], row["owner_id"], row["role"]

        there = {key(row): ArtifactLink.model_validate(dict(row)) for row in connection.execute(
            select(artifact_links).where(artifact_links.c.project_id == project,
                                         one_of(artifact_links.c.sha256, digests, backend),
                                         one_of(artifact_links.c.owner_id,
                                                sorted({owner_id for _, _, owner_id, _ in wanted}), backend)))
            .mappings()}
        result, new = [], []
        for digest, field, owner_id, role in wanted:
            values = {"project_id": project, "sha256": digest, "owner_type": OWNERS[field][0], "owner_id": owner_id,
                      "role": role, "created_at": now}
            link = there.get(key(values))
            if link is None:
                link = there[key(values)] = build_record(ArtifactLink, values, "artifact link")
                new.append(link.model_dump())
            result.append(link)
        if new:
            bulk_insert(connection, artifact_links, new)
        return result

    def gc(self, grace: timedelta | float = GC_GRACE) -> GcResult:
        """Delete the links whose turn, step or rollout is gone, then the artifacts (rows and content) no link
        refers to that were not put or linked in the last ``grace`` (a timedelta or seconds; default an hour:
        a writer links what it put within it)."""
        grace_seconds = grace.total_seconds() if isinstance(grace, timedelta) else grace
        cutoff = self._store.now() - timedelta(seconds=seconds("grace", grace_seconds))
        project = self._store.project_id
        linked = exists().where(artifact_links.c.project_id == project, artifact_links.c.sha256 == artifacts.c.sha256)
        with self._store.writing() as connection:
            dangling = 0
            for owner_type, table in OWNERS.values():
                dangling += connection.execute(delete(artifact_links).where(
                    artifact_links.c.project_id == project, artifact_links.c.owner_type == owner_type,
                    ~exists().where(table.c.project_id == project, table.c.id == artifact_links.c.owner_id))
                ).rowcount
            candidates = connection.execute(
                select(artifacts.c.sha256, artifacts.c.size, artifacts.c.storage, artifacts.c.location)
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
                if row.storage != DATABASE and row.location is not None:
                    remove_blob(row.storage, row.location)
        self._remove_stale_spools()
        return GcResult(artifacts=len(doomed), bytes=sum(row.size for row in doomed), links=dangling)

    # -- reading -----------------------------------------------------------------------------------

    def get(self, sha256: Artifact | str) -> Artifact:
        """The artifact with this sha256 (or this record's, read again), or NotFoundError."""
        digest = artifact_digest(sha256)
        with self._store.reading() as connection:
            row = self._row(connection, digest)
        if row is None:
            raise self.not_found(digest)
        return self._record(row)

    def exists(self, sha256: str) -> bool:
        """Whether this project has an artifact with this sha256."""
        digest = artifact_digest(sha256)
        with self._store.reading() as connection:
            return self._row(connection, digest) is not None

    def open(self, artifact: Artifact | str) -> IO[bytes]:
        """The content as a binary file object, read as it is consumed (never all at once)."""
        record = self.get(artifact)
        if record.storage == DATABASE:
            stored = io.BufferedReader(ChunkReader(functools.partial(self._chunk, record.sha256)), CHUNK_BYTES)
        else:
            try:
                stored = open_blob(record.storage, record.location)
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
        with self._store.reading() as connection:
            return [ArtifactLink.model_validate(dict(row)) for row in connection.execute(statement).mappings()]

    def _chunk(self, digest: str, seq: int) -> bytes | None:
        with self._store.reading() as connection:
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

    def not_found(self, digest: str) -> NotFoundError:
        return NotFoundError(f"artifact {digest} not found in project {self._store.project!r}")

    @staticmethod
    def _owner(**owners: str | None) -> tuple[str, str]:
        given = [(field, value) for field, value in owners.items() if value is not None]
        if len(given) != 1:
            raise InvalidInputError(f"name exactly one owner ({', '.join(OWNERS)}), got "
                                    f"{', '.join(field for field, _ in given) or 'none'}")
        field, value = given[0]
        return field, check_key(OWNERS[field][0], value)

    def _spool_folder(self) -> Path | None:
        """Where puts spool content: beside a local folder's blobs (placing one is a rename); else a temp folder."""
        return None if self.blobs is None else self.blobs.spool_folder(self._store.project_id)

    def _spooled(self, source: IO[bytes], compression: str | None = None, reencode: str | None = None,
                  quality: int = DEFAULT_QUALITY):
        """Copy ``source`` to a temporary file (beside the blobs, for the rename), hashing it (as given) and
        compressing it if asked, or re-encoding it (read whole: an image is decoded whole) when that is smaller;
        fsynced."""
        folder = self._spool_folder()
        # Errors of the spool are the store's (StoreUnavailableError); those of reading ``source``, the caller's.
        spooling = functools.partial(writing_blobs, folder.parent.parent if folder is not None else "a temp file")
        with spooling():
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
            spool = tempfile.NamedTemporaryFile(dir=folder, prefix="put-", delete=False)
        digest, size, stored_size, stored_media_type = hashlib.sha256(), 0, 0, None
        compressor = zstandard.ZstdCompressor().compressobj() if compression == ZSTD else None

        def write(content: bytes) -> int:
            with spooling():
                return spool.write(content)

        try:
            if reencode is not None:
                original = b"".join(content_chunks(source, self.max_bytes))
                digest.update(original)
                size = len(original)
                stored = reencoded(original, quality)
                if len(stored) < size:
                    stored_media_type = f"image/{reencode}"
                else:
                    stored = original
                stored_size = write(stored)
            else:
                for chunk in content_chunks(source, self.max_bytes):
                    digest.update(chunk)
                    size += len(chunk)
                    stored_size += write(chunk if compressor is None else compressor.compress(chunk))
                if compressor is not None:
                    stored_size += write(compressor.flush())
            with spooling():
                spool.flush()
                os.fsync(spool.fileno())
            spool.seek(0)
        except BaseException:
            spool.close()
            os.unlink(spool.name)
            raise
        return _Spool(spool, digest.hexdigest(), size, compression, stored_size, stored_media_type)

    def _write_chunks(self, connection: Connection, digest: str, spool: IO[bytes]) -> None:
        seq = 0
        while chunk := spool.read(CHUNK_BYTES):
            connection.execute(artifact_chunks.insert(), {"project_id": self._store.project_id, "sha256": digest,
                                                         "seq": seq, "data": chunk})
            seq += 1

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
    """A context manager over a spooled put: its file, the sha256 and size of the content put, and the form it is
    stored in (compressed, or re-encoded as ``stored_media_type``, ``stored_size`` bytes); the file is removed
    after, unless placed."""

    def __init__(self, file, digest: str, size: int, compression: str | None, stored_size: int,
                 stored_media_type: str | None) -> None:
        self.file, self.digest, self.size, self.compression = file, digest, size, compression
        self.stored_size, self.stored_media_type = stored_size, stored_media_type
        self.file.placed = False

    def is_form_of(self, row) -> bool:
        """Whether the spool holds the stored form of the artifact ``row`` (its blob, should that be lost): stored
        as put, compressed or re-encoded alike (a row from before stored sizes were kept: by its compression)."""
        return (row["compression"] == self.compression
                and (row["original_media_type"] is None) == (self.stored_media_type is None)
                and row["stored_size"] in (None, self.stored_size))

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
