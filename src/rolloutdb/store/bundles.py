"""Bundles: the rows of a selection of rollouts, with everything they hang on, as one portable file.

A bundle holds, for the selected rollouts, every row of theirs and every row they point at, ids as stored: their
attempts, turns, spans and status history; their runs (with the runs those descend from), the runs' steps, their
groups, tasks and the tasks' validators, the scripts they replay and the resources they name; the artifacts linked
from their turns, the steps and the rollouts, with the links and the content. It is a folder, or a tar of it
(``.tar``), of one JSONL file per table (``tables/<table>.jsonl``), one file per artifact content
(``blobs/<sha256>``) and ``manifest.json``: the schema revision, and each table's columns, row count and sha256.

Import checks the whole bundle first (the manifest, every file's checksum and row count, every content's sha256),
so a corrupted or truncated bundle is refused before anything is written. Then the artifacts' contents are put
(``store.artifacts.put``, which stores a content once) and every row goes in in one transaction: a row whose key is
present already is kept as it is, so importing twice changes nothing. Rows come from one project and go into the
store's. A bundle keeps what identifies a row across databases and leaves out what is the database's own: the
project id, the sequence numbers of status history (a history row is imported with the new row it belongs to), and
where an artifact's content is kept (storage, location, which the importing store chooses).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
from sqlalchemy import Column, Table, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import ConflictError, InvalidBundleError, InvalidInputError
from ..records import ArchiveSummary, BundleSummary, ImportSummary, Selection
from ..schema import (UTCDateTime, artifact_links, artifacts, attempts, groups, resources, rollouts, runs, scripts,
                      spans, status_changes, steps, tasks, turns, validators)
from ..states import RolloutStatus
from ._bulk import bulk_insert
from .base import KEYS_PER_QUERY, collector_paused, one_of
from .engine import head_revision
from .export import checked_model, selected_join, selection_conditions
from .retention import purge

if TYPE_CHECKING:
    from . import Store

FORMAT = "rolloutdb-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BATCH = 5_000  # rows per insert, and per lookup of the keys present already
CHUNK = 8 << 20  # bytes of a table file read at once
SHA256 = re.compile(r"[0-9a-f]{64}")
# In the order of import: a row's parents come before it (rollouts before scripts, which name their source).
TABLES: tuple[Table, ...] = (validators, tasks, runs, steps, groups, resources, rollouts, scripts, attempts, turns,
                             spans, artifacts, artifact_links, status_changes)
BY_NAME = {table.name: table for table in TABLES}
# Columns that are the database's own, not the row's: left out of a bundle.
LOCAL_COLUMNS = {"status_changes": {"seq"}, "artifacts": {"storage", "location"}}
# Selection fields about rows of training data, which a bundle (every row, every attempt) has no use for.
NOT_FOR_BUNDLES = ("latest_attempt", "per_task", "dedupe", "min_margin")
# The entities whose status history a bundle carries, by the table they are rows of.
HISTORY = {"runs": "run", "steps": "step", "groups": "group", "rollouts": "rollout", "attempts": "attempt"}
FINISHED = [RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.CANCELLED]

Progress = Callable[[str, int, int], None] | None  # (stage, done, in all)


def bundle_columns(table: Table) -> list[Column]:
    skipped = LOCAL_COLUMNS.get(table.name, set()) | {"project_id"}
    return [column for column in table.columns if column.name not in skipped]


def table_file(name: str) -> str:
    return f"tables/{name}.jsonl"


def blob_file(sha256: str) -> str:
    return f"blobs/{sha256}"


# -- writing -----------------------------------------------------------------------------------------------


class TableWriter:
    """One table's JSONL file, its rows counted and hashed as they are written."""

    def __init__(self, folder: Path, table: Table) -> None:
        self.table, self.columns = table, bundle_columns(table)
        self.path = folder / table_file(table.name)
        self.file = open(self.path, "wb")
        self.digest = hashlib.sha256()
        self.rows = 0

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        names = [str(column.name) for column in self.columns]
        data = b"".join(orjson.dumps({name: row[name] for name in names}) + b"\n" for row in rows)
        self.digest.update(data)
        self.file.write(data)
        self.rows += data.count(b"\n")

    def entry(self) -> dict[str, Any]:
        self.file.close()
        return {"file": table_file(self.table.name), "columns": [str(column.name) for column in self.columns],
                "rows": self.rows, "sha256": self.digest.hexdigest()}


class Collector:
    """Reads the rows of a selection's rollouts and what they hang on into the table files of a bundle."""

    def __init__(self, store: Store, folder: Path) -> None:
        self.store, self.folder = store, folder
        (folder / "tables").mkdir(parents=True)
        (folder / "blobs").mkdir()
        self.writers = {str(table.name): TableWriter(folder, table) for table in TABLES}
        self.run_ids: set[str] = set()
        self.group_ids: set[str] = set()
        self.task_ids: set[str] = set()
        self.script_ids: set[str] = set()
        self.resources_ids: set[str] = set()
        self.sha256s: set[str] = set()

    def rows(self, table: Table, *conditions: Any) -> list[dict[str, Any]]:
        """The project's rows of ``table`` that meet ``conditions``, in key order."""
        key = [column for column in table.primary_key.columns if column.name != "project_id"]
        with self.store.reading() as connection:
            return [dict(row) for row in connection.execute(
                select(*bundle_columns(table)).where(table.c.project_id == self.store.project_id, *conditions)
                .order_by(*key)).mappings()]

    def by_keys(self, table: Table, column: Column, keys: Iterable[Any], *conditions: Any) -> list[dict[str, Any]]:
        keys, found = sorted(set(keys)), []
        for first in range(0, len(keys), KEYS_PER_QUERY):
            found += self.rows(table, one_of(column, keys[first:first + KEYS_PER_QUERY], self.store.backend),
                               *conditions)
        return found

    def write(self, table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.writers[table.name].write(rows)
        return rows

    def history(self, entity: str, ids: Iterable[str]) -> None:
        self.write(status_changes, self.by_keys(status_changes, status_changes.c.entity_id, ids,
                                                status_changes.c.entity_type == entity))

    def links(self, owner: str, ids: Iterable[str]) -> None:
        found = self.write(artifact_links, self.by_keys(artifact_links, artifact_links.c.owner_id, ids,
                                                        artifact_links.c.owner_type == owner))
        self.sha256s.update(link["sha256"] for link in found)

    def rollouts(self, ids: list[str]) -> None:
        """The rollouts ``ids`` (at most KEYS_PER_QUERY) and the rows under them; what they point at is noted."""
        found = self.write(rollouts, self.rows(rollouts, one_of(rollouts.c.id, ids, self.store.backend)))
        for noted, column in ((self.run_ids, "run_id"), (self.group_ids, "group_id"), (self.task_ids, "task_id"),
                              (self.script_ids, "script_id"), (self.resources_ids, "resources_id")):
            noted.update(row[column] for row in found if row[column] is not None)
        attempt_ids = [row["id"] for row in self.write(attempts, self.by_keys(attempts, attempts.c.rollout_id, ids))]
        turn_ids = [row["id"] for row in self.write(turns, self.by_keys(turns, turns.c.rollout_id, ids))]
        self.write(spans, self.by_keys(spans, spans.c.rollout_id, ids))
        self.links("rollout", ids)
        self.links("turn", turn_ids)
        self.history("rollout", ids)
        self.history("attempt", attempt_ids)

    def the_rest(self) -> None:
        """What the rollouts point at: scripts, groups, runs (and their ancestors and steps), tasks, validators,
        resources; then the artifacts linked, with their contents."""
        found_scripts = self.by_keys(scripts, scripts.c.id, self.script_ids)
        found_groups = self.by_keys(groups, groups.c.id, self.group_ids)
        self.task_ids.update(row["task_id"] for row in found_scripts + found_groups if row["task_id"] is not None)
        self.run_ids.update(row["run_id"] for row in found_groups if row["run_id"] is not None)
        found_runs, wanted = [], set(self.run_ids)
        while wanted:  # the runs, then the runs they descend from, until none is missing
            found = self.by_keys(runs, runs.c.id, wanted)
            found_runs += found
            known = {row["id"] for row in found_runs}
            wanted = {row["parent_run_id"] for row in found if row["parent_run_id"] is not None} - known
        found_tasks = self.by_keys(tasks, tasks.c.id, self.task_ids)
        self.write(validators, self.by_keys(validators, validators.c.id,
                                            {row["validator_id"] for row in found_tasks if row["validator_id"]}))
        self.write(tasks, found_tasks)
        self.write(runs, parents_first(found_runs))
        found_steps = self.write(steps, self.by_keys(steps, steps.c.run_id, {row["id"] for row in found_runs}))
        self.write(groups, found_groups)
        self.write(resources, self.by_keys(resources, resources.c.id, self.resources_ids))
        self.write(scripts, found_scripts)
        self.links("step", [row["id"] for row in found_steps])
        self.history("run", [row["id"] for row in found_runs])
        self.history("step", [row["id"] for row in found_steps])
        self.history("group", [row["id"] for row in found_groups])
        for row in self.write(artifacts, self.by_keys(artifacts, artifacts.c.sha256, self.sha256s)):
            with self.store.artifacts.open(row["sha256"]) as source, \
                    open(self.folder / blob_file(row["sha256"]), "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)

    def manifest(self, selection: Selection) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "schema_revision": head_revision(),
                "project": self.store.project, "created_at": self.store.now().isoformat(),
                "selection": selection.model_dump(mode="json", exclude_defaults=True),
                "tables": {str(name): writer.entry() for name, writer in self.writers.items()},
                "blobs": sorted(self.sha256s)}


def parents_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs ordered so that a run's parent (when among them) comes before it."""
    by_id, placed, ordered = {row["id"]: row for row in rows}, set(), []

    def place(row: dict[str, Any]) -> None:
        if row["id"] in placed:
            return
        placed.add(row["id"])
        if row["parent_run_id"] in by_id:
            place(by_id[row["parent_run_id"]])
        ordered.append(row)

    for row in sorted(rows, key=lambda row: row["id"]):
        place(row)
    return ordered


def bundle_selection(selection: Selection | Mapping[str, Any] | None) -> Selection:
    chosen = checked_model(Selection, selection, "selection")
    unused = [name for name in NOT_FOR_BUNDLES if name in chosen.model_fields_set]
    if unused:
        raise InvalidInputError(f"a bundle holds every row of the selected rollouts, every attempt: "
                                f"{', '.join(unused)} do(es) not apply to it; fields: "
                                f"{', '.join(name for name in Selection.model_fields if name not in NOT_FOR_BUNDLES)}")
    return chosen


def bundle_target(out: Any) -> tuple[Path, bool]:
    """Where to write and whether as a tar: a ``.tar`` file, else a folder (new, or empty)."""
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInputError(f"out is the path of the bundle to write (.tar, or a folder), got {type(out).__name__}")
    path = Path(out)
    if not path.parent.is_dir():
        raise InvalidInputError(f"no folder {str(path.parent)!r:.200} to write {path.name!r:.80} in")
    as_tar = path.suffix == ".tar"
    if as_tar and path.exists() or not as_tar and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInputError(f"{str(path)!r:.200} is there already: a bundle is written to a new .tar file or to "
                                "a new (or empty) folder")
    return path, as_tar


def export_bundle(store: Store, selection: Selection | Mapping[str, Any] | None, out: str | os.PathLike, *,
                  on_progress: Progress = None) -> BundleSummary:
    """See ``Store.export_bundle``."""
    chosen = bundle_selection(selection)
    path, as_tar = bundle_target(out)
    ids = selected_rollouts(store, chosen)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        collector = Collector(store, staging)
        for first in range(0, len(ids), KEYS_PER_QUERY):
            with collector_paused():  # rows without cycles: see collector_paused
                collector.rollouts(ids[first:first + KEYS_PER_QUERY])
            if on_progress is not None:
                on_progress("export", min(first + KEYS_PER_QUERY, len(ids)), len(ids))
        collector.the_rest()
        manifest = collector.manifest(chosen)
        (staging / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        if as_tar:
            partial = staging / "bundle.tar"
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                for name in bundle_files(manifest):  # the manifest first: a reader finds it without a search
                    tar.add(staging / name, arcname=name, recursive=False)
            os.replace(partial, path)
            size = path.stat().st_size
        else:
            if path.exists():
                path.rmdir()  # empty (bundle_target): the folder becomes the bundle
            os.replace(staging, path)
            size = sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BundleSummary(path=str(path), schema_revision=manifest["schema_revision"],
                         rows={name: entry["rows"] for name, entry in manifest["tables"].items()},
                         blobs=len(manifest["blobs"]), bytes=size)


def selected_rollouts(store: Store, chosen: Selection) -> list[str]:
    """The ids of the selection's rollouts, in id order (tags checked here, as export does)."""
    with store.reading() as connection:
        found = connection.execute(select(rollouts.c.id, tasks.c.tags).select_from(selected_join())
                                   .where(*selection_conditions(store, chosen)).order_by(rollouts.c.id)).all()
    wanted = set(chosen.tags or ())
    return [id for id, tags in found if not wanted or wanted <= set(tags or ())]


def bundle_files(manifest: Mapping[str, Any]) -> list[str]:
    return [MANIFEST, *(entry["file"] for entry in manifest["tables"].values()),
            *(blob_file(sha256) for sha256 in manifest["blobs"])]


# -- reading -----------------------------------------------------------------------------------------------


class BundleReader:
    """A bundle's files, from a folder or a tar, every failure to read them an InvalidBundleError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        with self.reading(MANIFEST):
            if path.is_dir():
                pass
            elif path.is_file():
                self.tar = tarfile.open(path, "r:")
                self.members = {member.name: member for member in self.tar.getmembers() if member.isfile()}
            else:
                raise InvalidInputError(f"no bundle at {str(path)!r:.200}: name a .tar file or a folder")
            with self.open(MANIFEST) as file:
                manifest = file.read()
        try:
            self.manifest = orjson.loads(manifest)
        except orjson.JSONDecodeError:
            raise self.invalid(f"{MANIFEST} is not JSON") from None
        self.check_manifest()

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()

    def invalid(self, problem: str) -> InvalidBundleError:
        return InvalidBundleError(f"{str(self.path)!r:.200} is not a bundle that can be imported: {problem}; "
                                  "nothing was written")

    @contextmanager
    def reading(self, name: str) -> Iterator[None]:
        try:
            yield
        except (tarfile.TarError, EOFError, OSError, KeyError) as exc:
            reason = "missing" if isinstance(exc, (KeyError, FileNotFoundError)) else f"unreadable ({exc})"
            raise self.invalid(f"{name} {reason}: truncated or corrupted?") from None

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        with self.reading(name):
            if self.tar is None:
                file: IO[bytes] = open(self.path / name, "rb")
            else:
                extracted = self.tar.extractfile(self.members[name])
                assert extracted is not None  # a regular file (members)
                file = extracted
            with file:
                yield file

    def check_manifest(self) -> None:
        manifest = self.manifest
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise self.invalid(f"its {MANIFEST} is not that of a {FORMAT}")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise self.invalid(f"bundle format {manifest.get('format_version')!r:.40}, this release reads "
                               f"{FORMAT_VERSION}: upgrade rolloutdb")
        revision, head = str(manifest.get("schema_revision")), head_revision()
        if not revision.isdigit() or int(revision) > int(head):
            raise self.invalid(f"written at schema revision {revision:.40}, newer than this release's {head}: "
                               "upgrade rolloutdb (pip install -U rolloutdb) to import it")
        tables_ = manifest.get("tables")
        if not isinstance(tables_, dict) or set(tables_) - set(BY_NAME):
            raise self.invalid(f"{MANIFEST} names tables this release does not know")
        for name, entry in tables_.items():
            # A table's file is where the format puts it, whatever the manifest says: it names no other file.
            if not isinstance(entry, dict) or entry.get("file") != table_file(name):
                raise self.invalid(f"{MANIFEST}: {name} is not in {table_file(name)}")
            columns, known = entry.get("columns"), {column.name for column in bundle_columns(BY_NAME[name])}
            if not isinstance(columns, list) or not set(columns) <= known:
                raise self.invalid(f"{MANIFEST}: columns of {name} this release does not know")
            missing = [column.name for column in bundle_columns(BY_NAME[name])
                       if column.name not in columns and not column.nullable]
            if missing:
                raise self.invalid(f"{name} has no {', '.join(missing)}")
        blobs = manifest.get("blobs")
        if not isinstance(blobs, list) or not all(isinstance(sha, str) and SHA256.fullmatch(sha) for sha in blobs):
            raise self.invalid(f"{MANIFEST} does not list its blobs by sha256")

    def verify(self, on_progress: Progress = None) -> None:
        """Every file's checksum and row count against the manifest, every content's sha256 against its name."""
        entries = self.manifest["tables"]
        names = [entry["file"] for entry in entries.values()] + [blob_file(sha) for sha in self.manifest["blobs"]]
        # A re-encoded artifact's blob is its stored form, named by the original's sha256: checked by its size.
        stored_sizes = {row["sha256"]: row.get("stored_size") for batch in self.rows("artifacts") for row in batch
                        if row.get("original_media_type") is not None}
        for done, name in enumerate(names, 1):
            digest, lines, size = hashlib.sha256(), 0, 0
            with self.open(name) as file:
                with self.reading(name):
                    while chunk := file.read(1 << 20):
                        digest.update(chunk)
                        lines += chunk.count(b"\n")
                        size += len(chunk)
            if name.startswith("blobs/"):
                sha256 = name.removeprefix("blobs/")
                if (size != stored_sizes[sha256]) if sha256 in stored_sizes else (digest.hexdigest() != sha256):
                    raise self.invalid(f"{name}: content does not match its sha256")
            else:
                entry = next(entry for entry in entries.values() if entry["file"] == name)
                if digest.hexdigest() != entry.get("sha256") or lines != entry.get("rows"):
                    raise self.invalid(f"{name}: checksum or row count does not match {MANIFEST}")
            if on_progress is not None:
                on_progress("verify", done, len(names))
        listed = set(self.manifest["blobs"])
        for batch in self.rows("artifacts"):
            if any(row.get("sha256") not in listed for row in batch):
                raise self.invalid("an artifact without its content in blobs/")

    def rows(self, name: str) -> Iterator[list[dict[str, Any]]]:
        """A table's rows, about BATCH at a time (read in large chunks: line by line, a tar member is slow)."""
        entry = self.manifest["tables"].get(name)
        if entry is None:
            return
        with self.open(entry["file"]) as file:
            rest = b""
            while True:
                with self.reading(entry["file"]):
                    chunk = file.read(CHUNK)
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for first in range(0, len(lines), BATCH):
                    try:
                        yield [orjson.loads(line) for line in lines[first:first + BATCH]]
                    except orjson.JSONDecodeError as exc:
                        raise self.invalid(f"{entry['file']}: a row that is not JSON ({exc})") from None
                if not chunk:
                    return


@contextmanager
def opened_bundle(path: Any) -> Iterator[BundleReader]:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"path is a bundle's .tar file or folder, got {type(path).__name__}")
    reader = BundleReader(Path(path))
    try:
        yield reader
    finally:
        reader.close()


def verify_bundle(path: str | os.PathLike, on_progress: Progress = None) -> dict[str, Any]:
    """Read a bundle whole, checking it; its manifest."""
    with opened_bundle(path) as reader:
        reader.verify(on_progress)
        return reader.manifest


# -- importing ---------------------------------------------------------------------------------------------


class Importer:
    """The rows of a checked bundle into the store's project, in one transaction."""

    def __init__(self, store: Store, reader: BundleReader, connection) -> None:
        self.store, self.reader, self.connection = store, reader, connection
        self.inserted: dict[str, int] = {}
        self.kept: dict[str, int] = {}
        self.new: dict[str, set[str]] = {entity: set() for entity in HISTORY.values()}  # new rows, by entity
        self.rollout_ids: set[str] = set()  # in the bundle

    def table(self, table: Table) -> None:
        columns = bundle_columns(table)
        times = [column.name for column in columns if isinstance(column.type, UTCDateTime)]
        given = self.reader.manifest["tables"].get(table.name, {}).get("columns", [])
        missing = [column.name for column in columns if column.name not in given]  # a bundle of an older schema
        self.inserted[str(table.name)] = self.kept[str(table.name)] = 0
        project_id, parse = self.store.project_id, datetime.fromisoformat
        for rows in self.reader.rows(table.name):
            for row in rows:  # as read, changed in place: a new dict a row would cost as much as the insert
                row["project_id"] = project_id
                for name in missing:
                    row[name] = None
                for name in times:
                    if row[name] is not None:
                        row[name] = parse(row[name])
            new = self.new_rows(table, rows)
            if table is scripts:
                self.unlink_missing_sources(new)
                self.relink_sources([row for row in rows if row not in new])
            if new:
                bulk_insert(self.connection, table, new)
            if table is rollouts:
                self.rollout_ids.update(row["id"] for row in rows)
            if table.name in HISTORY:
                self.new[HISTORY[table.name]].update(row["id"] for row in new)
            self.inserted[str(table.name)] += len(new)
            self.kept[str(table.name)] += len(rows) - len(new)

    def new_rows(self, table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows not stored yet. A row whose id is another project's cannot be imported: ConflictError."""
        if table is status_changes:  # history comes with the row it is of, when that row is new
            return [row for row in rows if row["entity_id"] in self.new.get(row["entity_type"], ())]
        key = table.c.id
        keys = [row[key.name] for row in rows]
        present: dict[Any, str] = {}
        mine = table.c.project_id == self.store.project_id
        scope = [mine] if table is resources else []  # resource ids are per project
        # PostgreSQL takes the keys of a whole batch as one array parameter (one_of): a statement of a thousand
        # parameters costs more to build and parse than the lookup.
        per_query = len(keys) or 1 if self.store.backend == "postgresql" else KEYS_PER_QUERY
        for first in range(0, len(keys), per_query):
            present.update(self.connection.execute(select(key, table.c.project_id).where(
                one_of(key, keys[first:first + per_query], self.store.backend), *scope)).all())
        foreign = sorted(id for id, project in present.items() if project != self.store.project_id)
        if foreign:
            raise ConflictError(f"{table.name} {foreign[0]!r:.140} (and {len(foreign) - 1} more) of the bundle is "
                                f"stored in another project of this database: a bundle's rows keep their ids, so they "
                                f"can be imported into that project only; nothing was written")
        return [row for row in rows if row[key.name] not in present]

    def unlink_missing_sources(self, rows: list[dict[str, Any]]) -> None:
        """A script recorded from a rollout that is in neither the bundle nor the database names no source."""
        sources = {row["source_rollout_id"] for row in rows if row["source_rollout_id"] is not None} - self.rollout_ids
        if not sources:
            return
        stored = set(self.connection.execute(select(rollouts.c.id).where(
            rollouts.c.id.in_(sorted(sources)))).scalars())
        for row in rows:
            if row["source_rollout_id"] in sources - stored:
                row["source_rollout_id"] = None


    def relink_sources(self, kept: list[dict[str, Any]]) -> None:
        """A script kept whose source rollout was purged (which unlinked it) and is in the bundle names it again:
        an archive's import restores what the purge undid."""
        for row in kept:
            if row["source_rollout_id"] in self.rollout_ids:
                self.connection.execute(update(scripts).where(
                    scripts.c.id == row["id"], scripts.c.project_id == self.store.project_id,
                    scripts.c.source_rollout_id.is_(None)).values(source_rollout_id=row["source_rollout_id"]))


def import_bundle(store: Store, path: str | os.PathLike, *, on_progress: Progress = None) -> ImportSummary:
    """See ``Store.import_bundle``."""
    with opened_bundle(path) as reader:
        reader.verify(on_progress)
        blobs = put_contents(store, reader)
        try:
            with store.writing() as connection:
                importer = Importer(store, reader, connection)
                for done, table in enumerate(TABLES, 1):
                    if table is not artifacts:  # put before the rows (store.artifacts.put)
                        with collector_paused():  # batches of rows without cycles: see collector_paused
                            importer.table(table)
                    if on_progress is not None:
                        on_progress("import", done, len(TABLES))
        except IntegrityError as exc:
            raise ConflictError(f"the bundle's rows conflict with rows of this project (the same run or task name, "
                                f"step number, ... under another id): {str(exc.orig).splitlines()[0]:.300}; "
                                "nothing was written") from None
    importer.inserted["artifacts"] = blobs
    importer.kept["artifacts"] = reader.manifest["tables"].get("artifacts", {}).get("rows", 0) - blobs
    in_order = [str(table.name) for table in TABLES]
    return ImportSummary(path=str(path), inserted={name: importer.inserted[name] for name in in_order},
                         kept={name: importer.kept[name] for name in in_order}, blobs=blobs)


def put_contents(store: Store, reader: BundleReader) -> int:
    """Put the contents of the bundle's artifacts the project lacks; how many. (Should the import then fail, they
    are artifacts nothing links, which ``artifacts.gc`` removes.)"""
    put = 0
    for batch in reader.rows("artifacts"):
        with store.reading() as connection:
            present = set(connection.execute(select(artifacts.c.sha256).where(
                artifacts.c.project_id == store.project_id,
                artifacts.c.sha256.in_([row["sha256"] for row in batch]))).scalars())
        for row in batch:
            if row["sha256"] in present:
                continue
            with reader.open(blob_file(row["sha256"])) as content:
                if row.get("original_media_type") is not None:  # re-encoded: its stored form, kept as it was
                    stored = store.artifacts.put_stored_form(content, row)
                else:
                    stored = store.artifacts.put(content, row["media_type"], compression=row.get("compression"))
            if stored.sha256 != row["sha256"]:
                raise reader.invalid(f"{blob_file(row['sha256'])}: content does not match its sha256")
            put += 1
    return put


# -- archiving ---------------------------------------------------------------------------------------------


def archive(store: Store, older_than: timedelta, to: str | os.PathLike, *, on_progress: Progress = None) -> ArchiveSummary:
    """See ``Store.archive``."""
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidInputError(f"older_than must be a timedelta, not negative, got {older_than!r:.80}")
    if not isinstance(to, (str, os.PathLike)) or not Path(to).is_dir():
        raise InvalidInputError(f"to is the folder to write the archive in, got {to!r:.200}")
    cutoff = store.now() - older_than
    selection = Selection(status=FINISHED, ended_before=cutoff)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", store.project)  # any name a project may have, as a file's
    out = Path(to) / f"{name}-before-{cutoff:%Y%m%dT%H%M%S}Z.rdb.tar"
    if out.exists():
        raise InvalidInputError(f"{str(out)!r:.200} is there already: archive again in a moment, or elsewhere")
    written = export_bundle(store, selection, out, on_progress=on_progress)
    try:
        manifest = verify_bundle(out, on_progress)
    except InvalidBundleError as exc:
        raise ConflictError(f"the archive {out} did not read back as written ({exc}): nothing was purged") from None
    still = len(selected_rollouts(store, selection))
    if manifest["tables"]["rollouts"]["rows"] != written.rows["rollouts"] or still != written.rows["rollouts"]:
        raise ConflictError(f"the archive {out} holds {written.rows['rollouts']} rollouts, the database now has "
                            f"{still} finished before {cutoff}: nothing was purged")
    purged = purge(store, ended_before=cutoff,  # the bundle's cutoff: not one rollout more
                   on_progress=None if on_progress is None else lambda done, total: on_progress("purge", done, total))
    return ArchiveSummary(bundle=written, cutoff=cutoff, purged_rollouts=purged.rollouts,
                          purged_attempts=purged.attempts, purged_spans=purged.spans, purged_turns=purged.turns)

