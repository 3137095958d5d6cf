"""Artifacts: content stored once by its sha256, streamed back, linked from turns, steps and rollouts, and
collected when nothing links it; in a folder or in the database, from several processes at once."""

import hashlib
import importlib.util
import io
import multiprocessing
import os
import time
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import func, select

import rolloutdb
from rolloutdb.errors import InvalidInputError, NotFoundError, StoreUnavailableError
from rolloutdb.schema import artifact_chunks, artifact_links, artifacts
from rolloutdb.store.artifacts import CHUNK_BYTES
from rolloutdb.store.maintenance import artifact_figures



@pytest.fixture
def local(store):
    """The store under test: on a database, or through a server."""
    return store


@pytest.fixture
def database(local, request, session_backends):
    """A store on the database under ``local`` (the server's, through a server), for what the tests look at there:
    its tables and its blob folder."""
    if local.backend != "http":
        yield local
        return
    backend = request.node.callspec.params["store"].removeprefix("http-")
    with rolloutdb.connect(session_backends.database_url(backend), project=local.project) as direct:
        yield direct


def rows(store, table) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)
                                  .where(table.c.project_id == store.project_id)).scalar_one()


def blobs(store) -> list[Path]:
    home = store.artifacts.home
    if home is None:
        return []
    return sorted(path for path in (home / store.project_id).rglob("*") if path.is_file() and path.parent.name != "tmp")


def test_put_stores_content_once_and_reads_it_back(local, database):
    data = b"\x89PNG fake screenshot" * 100
    first = local.artifacts.put(data, media_type="image/png")
    assert (first.sha256, first.size, first.media_type) == (hashlib.sha256(data).hexdigest(), len(data), "image/png")
    again = local.artifacts.put(io.BytesIO(data), media_type="image/png")
    assert again.sha256 == first.sha256 and again.created_at == first.created_at
    assert local.artifacts.get(first.sha256).sha256 == first.sha256
    assert local.artifacts.read(first.sha256) == data
    with local.artifacts.open(first) as file:
        assert file.read(4) == b"\x89PNG" and file.read() == data[4:]
    assert local.artifacts.exists(first.sha256) and not local.artifacts.exists("0" * 64)
    assert rows(database, artifacts) == 1
    assert len(blobs(database)) == (1 if first.storage == "file" else 0)
    empty = local.artifacts.put(b"")
    assert empty.size == 0 and local.artifacts.read(empty.sha256) == b""


def test_compressed_content_keeps_its_hash_and_size_and_reads_back_as_given(local, database):
    text = b"".join(b'{"step": %d, "loss": 0.25, "log": "the same line again"}\n' % n for n in range(20_000))
    stored = local.artifacts.put(text, media_type="application/jsonl", compression="zstd")
    assert (stored.sha256, stored.size, stored.compression) == (hashlib.sha256(text).hexdigest(), len(text), "zstd")
    assert local.artifacts.read(stored) == text
    with local.artifacts.open(stored.sha256) as file:
        assert file.read(10) == text[:10] and file.read() == text[10:]
    if stored.storage == "file":
        assert Path(stored.location).stat().st_size < len(text) / 10  # what lies on disk is the compressed form
    else:
        with database.engine.connect() as connection:
            kept = connection.execute(select(func.sum(func.length(artifact_chunks.c.data))).where(
                artifact_chunks.c.project_id == database.project_id,
                artifact_chunks.c.sha256 == stored.sha256)).scalar_one()
        assert kept < len(text) / 10
    # The same content put again, compressed or not, is the stored one.
    again = local.artifacts.put(text, media_type="application/jsonl")
    assert (again.sha256, again.compression, again.created_at) == (stored.sha256, "zstd", stored.created_at)
    assert local.artifacts.read(again) == text
    with pytest.raises(InvalidInputError, match="unknown compression 'lz4'"):
        local.artifacts.put(b"other", compression="lz4")
    assert not local.artifacts.exists(hashlib.sha256(b"other").hexdigest())


def test_where_content_lives_by_default(local, database):
    artifact = local.artifacts.put(b"where am I")
    if database.backend == "sqlite":
        database_file = Path(database.engine.url.database)
        assert artifact.storage == "file"
        assert Path(artifact.location) == (Path(str(database_file) + ".artifacts").absolute() / local.project_id
                                           / artifact.sha256[:2] / artifact.sha256[2:])
        assert Path(artifact.location).read_bytes() == b"where am I"
    else:
        assert (artifact.storage, artifact.location) == ("database", None)
        assert rows(database, artifact_chunks) == 1


@pytest.mark.parametrize("setting", ["database", "folder", "file-url"])
def test_content_goes_where_connect_says(fresh_database_url, tmp_path, setting):
    folder = tmp_path / "shared blobs"
    chosen = {"database": "database", "folder": folder, "file-url": folder.as_uri()}[setting]
    with rolloutdb.connect(fresh_database_url, artifacts=chosen) as store:
        artifact = store.artifacts.put(b"x" * (CHUNK_BYTES + 10))
        assert store.artifacts.read(artifact.sha256) == b"x" * (CHUNK_BYTES + 10)
        if setting == "database":
            assert artifact.storage == "database" and rows(store, artifact_chunks) == 2
        else:
            assert artifact.storage == "file" and Path(artifact.location).parent.parent.parent == folder
    # An artifact is read from where it went, whatever the store reading it is set to.
    with rolloutdb.connect(fresh_database_url, artifacts="database" if setting != "database" else folder) as store:
        assert store.artifacts.read(artifact.sha256) == b"x" * (CHUNK_BYTES + 10)


def test_rolloutdb_artifacts_chooses_where_content_goes_unless_connect_says(fresh_database_url, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("ROLLOUTDB_ARTIFACTS", str(tmp_path / "from-env"))
    with rolloutdb.connect(fresh_database_url) as store:
        assert store.artifacts.put(b"env").location.startswith(str(tmp_path / "from-env"))
    with rolloutdb.connect(fresh_database_url, artifacts="database") as store:
        assert store.artifacts.put(b"argument").storage == "database"


def test_bad_artifacts_settings_are_refused(fresh_database_url):
    for bad in ("", 3, "file://otherhost/blobs", "memory://", "s3:///"):
        with pytest.raises(InvalidInputError, match="artifacts"):
            rolloutdb.connect(fresh_database_url, artifacts=bad)
    with pytest.raises(InvalidInputError, match=r"artifacts: nosuchfs:// is no filesystem fsspec knows"):
        rolloutdb.connect(fresh_database_url, artifacts="nosuchfs://bucket/blobs")
    if importlib.util.find_spec("s3fs") is None:  # s3:// is fsspec's, but its package is missing: said so, with what
        with pytest.raises(InvalidInputError, match=r"artifacts: s3:// needs a package .*rolloutdb\[s3\]"):
            rolloutdb.connect(fresh_database_url, artifacts="s3://bucket/blobs")  # to install


def test_content_goes_to_a_folder_given_by_url(fresh_database_url):
    """A folder fsspec reaches by URL (here its in-memory filesystem, as an object store would be: not a local
    path): put, read, stream, dedupe, links, gc and a missing blob, as with a local folder."""
    import fsspec

    memory = fsspec.filesystem("memory")
    home = f"memory://blobs-{os.urandom(6).hex()}"
    data = os.urandom(CHUNK_BYTES + 100)
    with rolloutdb.connect(fresh_database_url, artifacts=home + "/") as store:
        assert store.artifacts.home is None  # no local folder
        artifact = store.artifacts.put(data, "image/png")
        assert (artifact.storage, artifact.location) == (
            "url", f"{home}/{store.project_id}/{artifact.sha256[:2]}/{artifact.sha256[2:]}")
        assert memory.cat_file(artifact.location) == data
        assert store.artifacts.read(artifact) == data
        with store.artifacts.open(artifact.sha256) as file:
            assert file.read(10) == data[:10] and file.read() == data[10:]
        assert store.artifacts.put(data).created_at == artifact.created_at  # stored once
        assert rows(store, artifact_chunks) == 0 and memory.find(home) == [memory._strip_protocol(artifact.location)]
        packed = store.artifacts.put(b"log line\n" * 10_000, "text/plain", compression="zstd")
        assert store.artifacts.read(packed) == b"log line\n" * 10_000
        assert memory.info(packed.location)["size"] < 10_000
        rollout = store.rollouts.create()
        store.artifacts.link(artifact, rollout_id=rollout.id, role="attachment")
        assert store.artifacts.gc(grace=0).artifacts == 1  # the unlinked one
        assert not memory.exists(packed.location) and memory.exists(artifact.location)
    # Read from where it went, whatever the reading store is set to.
    with rolloutdb.connect(fresh_database_url, artifacts="database") as store:
        assert store.artifacts.read(artifact.sha256) == data
        with store.engine.connect() as connection:
            figures = artifact_figures(connection, store.project)
        assert (figures.in_files, figures.file_bytes, figures.missing_count) == (1, len(data), 0)
        memory.rm_file(artifact.location)
        with pytest.raises(NotFoundError, match="is missing from memory://"):
            store.artifacts.read(artifact.sha256)
        with store.engine.connect() as connection:  # what doctor reports
            assert artifact_figures(connection, store.project).missing == [f"{artifact.sha256} {artifact.location}"]


def test_put_refuses_what_is_not_content(local, tmp_path, database):
    for bad in (None, 3, "no such file", tmp_path, io.StringIO("text")):
        with pytest.raises(InvalidInputError):
            local.artifacts.put(bad)
    with pytest.raises(InvalidInputError, match="media_type"):
        local.artifacts.put(b"x", media_type="")
    with pytest.raises(InvalidInputError, match="sha256"):
        local.artifacts.get("abc")
    with pytest.raises(NotFoundError, match="not found"):
        local.artifacts.get("0" * 64)
    with pytest.raises(NotFoundError):
        local.artifacts.open("0" * 64)
    assert rows(database, artifacts) == 0 and blobs(database) == []


class BrokenSource(io.RawIOBase):
    """A source that fails after its first chunk, as a crashing producer would."""

    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise OSError("the camera went away")
        return b"half a screenshot" * 1000


def test_a_put_that_fails_midway_leaves_no_row_no_blob_and_no_spool(local, database):
    with pytest.raises(OSError, match="camera"):
        local.artifacts.put(BrokenSource())
    # Through a server, the client gives up at once; the server sees the upload break a moment later.
    deadline = time.monotonic() + (10 if local.backend == "http" else 0)
    while spools(database) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spools(database) == []
    assert rows(database, artifacts) == rows(database, artifact_chunks) == 0 and blobs(database) == []


def test_a_blob_folder_that_cannot_be_written_is_store_unavailable_and_nothing_is_stored(fresh_database_url,
                                                                                          tmp_path):
    """The folder is the store's, not the caller's input: a folder that cannot be written (read-only, full, a file
    in its place) is an outage of the store, said in its words, as the database's own would be."""
    (tmp_path / "taken").write_text("a file where the blob folder should be")
    with rolloutdb.connect(fresh_database_url, artifacts=tmp_path / "taken" / "blobs") as store:
        for content in (b"small", b"x" * (CHUNK_BYTES + 10)):
            with pytest.raises(StoreUnavailableError, match=r"cannot write artifacts to .*/taken/blobs: Not a directory"):
                store.artifacts.put(content)
        assert rows(store, artifacts) == rows(store, artifact_links) == 0


def spools(store) -> list[Path]:
    folder = None if store.artifacts.home is None else store.artifacts.home / store.project_id / "tmp"
    return list(folder.iterdir()) if folder is not None and folder.is_dir() else []


def test_put_takes_a_path_and_a_file_object(local, tmp_path, database):
    source = tmp_path / "screen.png"
    source.write_bytes(b"pixels")
    by_path = local.artifacts.put(source, media_type="image/png")
    by_name = local.artifacts.put(str(source))
    with source.open("rb") as file:
        by_file = local.artifacts.put(file)
        assert not file.closed  # the caller's file is the caller's to close
    assert by_path.sha256 == by_name.sha256 == by_file.sha256 and rows(database, artifacts) == 1
    assert by_file.media_type == "image/png"  # the first put's


@pytest.mark.parametrize("storage", ["file", "database"])
def test_large_content_is_streamed_not_held_in_memory(fresh_database_url, tmp_path, storage):
    size = 24 * CHUNK_BYTES + 123
    source = tmp_path / "big.bin"
    with source.open("wb") as file:
        for i in range(size // CHUNK_BYTES + 1):
            file.write(bytes([i % 251]) * min(CHUNK_BYTES, size - i * CHUNK_BYTES))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    with rolloutdb.connect(fresh_database_url, artifacts=tmp_path / "blobs" if storage == "file" else "database") as store:
        tracemalloc.start()
        try:
            artifact = store.artifacts.put(source)
            _, put_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            digest = hashlib.sha256()
            with store.artifacts.open(artifact) as file:
                while chunk := file.read(64 * 1024):
                    digest.update(chunk)
            _, read_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert artifact.sha256 == expected == digest.hexdigest() and artifact.size == size
    print(f"{storage}: {size / 2 ** 20:.0f} MiB blob, put peak {put_peak / 2 ** 20:.1f} MiB, "
          f"read peak {read_peak / 2 ** 20:.1f} MiB")
    assert put_peak < size / 4 and read_peak < size / 4


def test_links_from_turns_steps_and_rollouts(local):
    rollout = local.rollouts.create()
    turn = local.turns.create(rollout_id=rollout.id, turn_index=0)
    run = local.runs.create(name="r")
    step = local.steps.create(run_id=run.id, number=0)
    before, after = local.artifacts.put(b"before", "image/png"), local.artifacts.put(b"after", "image/png")
    first = local.artifacts.link(before, turn_id=turn.id, role="before")
    local.artifacts.link(after.sha256, turn_id=turn.id, role="after")
    assert local.artifacts.link(before, turn_id=turn.id, role="before") == first  # linked once
    local.artifacts.link(after, step_id=step.id)
    local.artifacts.link(before, rollout_id=rollout.id, role="screenshot")
    assert [(link.sha256, link.role) for link in local.artifacts.links(turn_id=turn.id)] == [
        (before.sha256, "before"), (after.sha256, "after")]
    assert [(link.owner_type, link.role) for link in local.artifacts.links(step_id=step.id)] == [("step", "attachment")]
    assert [link.role for link in local.artifacts.links(rollout_id=rollout.id)] == ["screenshot"]
    put_linked = local.artifacts.put(b"at once", "image/png", turn_id=turn.id, role="screenshot")
    assert local.artifacts.links(turn_id=turn.id)[-1].sha256 == put_linked.sha256
    assert local.artifacts.links(turn_id="no-such-turn") == []


def test_bad_links_are_refused_and_write_nothing(local, database):
    turn = local.turns.create(rollout_id=local.rollouts.create().id, turn_index=0)
    artifact = local.artifacts.put(b"shot")
    with pytest.raises(InvalidInputError, match="unknown artifact role 'thumbnail'"):
        local.artifacts.link(artifact, turn_id=turn.id, role="thumbnail")
    with pytest.raises(NotFoundError, match="turn 'missing' not found"):
        local.artifacts.link(artifact, turn_id="missing")
    with pytest.raises(NotFoundError, match="artifact 0{64} not found"):
        local.artifacts.link("0" * 64, turn_id=turn.id)
    with pytest.raises(InvalidInputError, match="exactly one owner"):
        local.artifacts.link(artifact)
    with pytest.raises(InvalidInputError, match="exactly one owner"):
        local.artifacts.link(artifact, turn_id=turn.id, rollout_id="x")
    with pytest.raises(InvalidInputError):
        local.artifacts.link(artifact, turn_id=7)
    with pytest.raises(InvalidInputError, match="sha256"):
        local.artifacts.link(b"shot", turn_id=turn.id)
    with pytest.raises(InvalidInputError):
        local.artifacts.link(artifact, turn_id=turn.id, role=None)
    with pytest.raises(NotFoundError, match="rollout 'missing' not found"):
        local.artifacts.put(b"new content", rollout_id="missing")
    with pytest.raises(InvalidInputError, match="unknown artifact role"):
        local.artifacts.put(b"new content", turn_id=turn.id, role="thumbnail")
    assert rows(database, artifact_links) == 0 and rows(database, artifacts) == 1
    assert len(blobs(database)) == (1 if artifact.storage == "file" else 0)


def test_gc_removes_what_no_link_refers_to_after_the_grace_period(local, database):
    turn = local.turns.create(rollout_id=local.rollouts.create().id, turn_index=0)
    kept = local.artifacts.put(b"linked")
    local.artifacts.link(kept, turn_id=turn.id, role="screenshot")
    orphan = local.artifacts.put(b"orphan" * 1000)
    assert local.artifacts.gc().artifacts == 0  # put a moment ago: within the default hour
    result = local.artifacts.gc(grace=0)
    assert (result.artifacts, result.bytes) == (1, 6000)
    assert not local.artifacts.exists(orphan.sha256) and local.artifacts.read(kept.sha256) == b"linked"
    assert rows(database, artifacts) == 1 and len(blobs(database)) == (1 if kept.storage == "file" else 0)
    assert rows(database, artifact_chunks) == (0 if kept.storage == "file" else 1)
    again = local.artifacts.put(b"orphan" * 1000)  # collected content can be put again
    assert local.artifacts.read(again.sha256) == b"orphan" * 1000
    with pytest.raises(InvalidInputError, match="grace"):
        local.artifacts.gc(grace=-1)


def test_gc_drops_links_whose_owner_is_gone(local):
    rollout = local.rollouts.create()
    turn = local.turns.create(rollout_id=rollout.id, turn_index=0)
    artifact = local.artifacts.put(b"shot")
    local.artifacts.link(artifact, turn_id=turn.id)
    local.rollouts.update(rollout.id, status="cancelled")
    assert local.purge(keep_last=0).rollouts == 1
    result = local.artifacts.gc(grace=0)
    assert (result.links, result.artifacts) == (1, 1) and not local.artifacts.exists(artifact.sha256)


# -- several processes ----------------------------------------------------------------------------------------

def put_same(url: str, folder: str, data: bytes, start, results) -> None:
    start.wait()
    try:
        with rolloutdb.connect(url, project="shared", artifacts=folder) as store:
            results.put(store.artifacts.put(data).sha256)
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("storage", ["file", "database"])
def test_concurrent_puts_of_the_same_content_store_it_once(fresh_database_url, tmp_path, storage):
    folder = str(tmp_path / "blobs") if storage == "file" else "database"
    data = os.urandom(3 * CHUNK_BYTES)
    with rolloutdb.connect(fresh_database_url, project="shared", artifacts=folder):
        pass  # migrated and project made before the race
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    writers = [context.Process(target=put_same, args=(fresh_database_url, folder, data, start, results))
               for _ in range(4)]
    for process in writers:
        process.start()
    start.set()
    for process in writers:
        process.join(timeout=120)
    answers = {results.get(timeout=5) for _ in writers}
    assert answers == {hashlib.sha256(data).hexdigest()}
    with rolloutdb.connect(fresh_database_url, project="shared", artifacts=folder) as store:
        assert rows(store, artifacts) == 1
        assert len(blobs(store)) == (1 if storage == "file" else 0)
        assert rows(store, artifact_chunks) == (0 if storage == "file" else 3)
        assert store.artifacts.read(answers.pop()) == data


def put_and_link(url: str, folder: str | None, rounds: int, at_once: bool, start, results, label: str = "") -> None:
    """A writer of ``rounds`` turns, each with a screenshot put and linked (at once, or by a later call) and scratch
    content linked by nothing; ``label`` starts its content (writers with their own content)."""
    start.wait()
    try:
        with rolloutdb.connect(url, project="gc", artifacts=folder) as store:
            rollout = store.rollouts.create()
            for i in range(rounds):
                turn = store.turns.create(rollout_id=rollout.id, turn_index=i)
                store.artifacts.put(f"{label}scratch {i}".encode())  # never linked: gc's to take
                if at_once:
                    store.artifacts.put(f"{label}screenshot {i}".encode(), turn_id=turn.id, role="screenshot")
                else:
                    shot = store.artifacts.put(f"{label}screenshot {i}".encode())
                    store.artifacts.link(shot, turn_id=turn.id, role="screenshot")
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("storage", ["file", "database"])
@pytest.mark.parametrize("at_once", [True, False], ids=["put-linking", "put-then-link"])
def test_gc_never_takes_what_a_concurrent_writer_is_linking(fresh_database_url, tmp_path, storage, at_once):
    """gc runs over and over while another process puts and links: a put that links is safe from any gc; a
    put linked by a later call is safe within the grace period."""
    folder = str(tmp_path / "blobs") if storage == "file" else "database"
    rounds, grace = 40, (0 if at_once else 60)
    with rolloutdb.connect(fresh_database_url, project="gc", artifacts=folder) as store:
        context = multiprocessing.get_context("spawn")
        start, results = context.Event(), context.Queue()
        writer = context.Process(target=put_and_link,
                                 args=(fresh_database_url, folder, rounds, at_once, start, results))
        writer.start()
        # One sweep first, then the writer begins: it is alive when that sweep ends, so at least one more runs
        # beside its writes, however fast they are (a sweep may last the writer's whole life otherwise).
        collected, sweeps = store.artifacts.gc(grace=grace).artifacts, 1
        start.set()
        while writer.is_alive():
            collected += store.artifacts.gc(grace=grace).artifacts
            sweeps += 1
        writer.join(timeout=120)
        assert results.get(timeout=5) == "ok"
        if not at_once:
            assert collected == 0  # everything was put within the grace period
        collected += store.artifacts.gc(grace=0).artifacts
        assert collected == rounds and sweeps > 1  # every scratch artifact, and nothing else
        rollout = store.rollouts.query()[0]
        for turn in store.turns.query(rollout_id=rollout.id, limit=None):
            (link,) = store.artifacts.links(turn_id=turn.id)
            assert store.artifacts.read(link.sha256) == f"screenshot {turn.turn_index}".encode()
        assert rows(store, artifacts) == rounds and len(blobs(store)) == (rounds if storage == "file" else 0)


def test_content_over_the_size_limit_is_refused_and_nothing_written(fresh_database_url):
    with rolloutdb.connect(fresh_database_url, max_artifact_bytes=CHUNK_BYTES + 10) as store:
        assert store.artifacts.put(b"x" * (CHUNK_BYTES + 10)).size == CHUNK_BYTES + 10  # the limit itself is taken
        for too_large in (b"y" * (CHUNK_BYTES + 11), io.BytesIO(b"z" * (3 * CHUNK_BYTES))):
            with pytest.raises(InvalidInputError, match=r"over the limit of 1,048,586 bytes \(max_artifact_bytes\)"):
                store.artifacts.put(too_large)
        assert rows(store, artifacts) == 1 and len(blobs(store)) == (1 if store.artifacts.home else 0)
        assert spools(store) == []
    for bad in (-1, 1.5, "50MB", None):
        with pytest.raises(InvalidInputError, match="max_artifact_bytes"):
            rolloutdb.connect(fresh_database_url, max_artifact_bytes=bad)
    with pytest.raises(InvalidInputError, match="max_artifact_bytes= are for a database"):
        rolloutdb.connect("http://127.0.0.1:9", max_artifact_bytes=10)


def screen_png(width: int = 360, height: int = 640, seed: int = 0) -> bytes:
    """A phone screen as a PNG, drawn as the phone agent example draws one: bars, buttons and text."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (245, 245, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 48), fill=(30 + seed, 90, 200))
    for row in range(8):
        top = 70 + row * 64
        draw.rounded_rectangle((16, top, width - 16, top + 52), radius=10, fill=(255, 255, 255),
                               outline=(200, 200, 210))
        draw.text((32, top + 18), f"Setting {row} — Wi-Fi, Bluetooth, Display {seed}", fill=(20, 20, 20))
    for x in range(0, width, 3):  # a photo-like strip: what PNG keeps losslessly and WebP does not
        draw.line((x, height - 80, x, height), fill=((x * 7 + seed) % 256, (x * 13) % 256, (x * 29) % 256))
    encoded = io.BytesIO()
    image.save(encoded, format="PNG")
    return encoded.getvalue()


def test_a_screenshot_re_encoded_keeps_the_originals_hash_and_reads_back_in_its_stored_form(local, database):
    from PIL import Image

    png = screen_png()
    shot = local.artifacts.put(png, "image/png", reencode="webp", quality=80)
    assert (shot.sha256, shot.size) == (hashlib.sha256(png).hexdigest(), len(png))  # the original's: for dedupe
    assert (shot.media_type, shot.original_media_type) == ("image/webp", "image/png")
    assert shot.stored_size < len(png) and shot.content_size == shot.stored_size
    stored = local.artifacts.read(shot)
    assert len(stored) == shot.stored_size and stored[:4] == b"RIFF" and stored[8:12] == b"WEBP"
    with Image.open(io.BytesIO(stored)) as image:
        assert (image.format, image.size) == ("WEBP", (360, 640))
    assert local.artifacts.get(shot.sha256).model_dump(exclude={"touched_at"}) == shot.model_dump(exclude={"touched_at"})
    # The same screenshot again, re-encoded or not, is the stored one.
    for again in (local.artifacts.put(png, "image/png"), local.artifacts.put(png, "image/png", reencode="webp")):
        assert again.model_dump(exclude={"touched_at"}) == shot.model_dump(exclude={"touched_at"})
    if shot.storage == "file":
        assert Path(shot.location).stat().st_size == shot.stored_size
    # A lower quality is smaller still; as given, a put's stored size is its size.
    other = screen_png(seed=1)
    assert local.artifacts.put(other, "image/png", reencode="webp", quality=20).stored_size < shot.stored_size
    plain = local.artifacts.put(b"as given", "text/plain")
    assert (plain.stored_size, plain.content_size, plain.original_media_type) == (8, 8, None)
    # A trajectory lists a re-encoded screenshot by its stored form's media type.
    claim = local.rollouts.start()
    turn = local.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=0)
    local.artifacts.link(shot, turn_id=turn.id, role="screenshot")
    (listed,) = local.trajectory(claim.rollout.id).turns[0].artifacts
    assert (listed.sha256, listed.media_type) == (shot.sha256, "image/webp")


def test_re_encoding_refuses_what_is_no_image_and_bad_settings_writing_nothing(local, database):
    for bad, message in ((dict(reencode="avif"), "unknown reencode 'avif'"),
                         (dict(reencode="webp", quality=101), "quality must be a whole number from 0 to 100"),
                         (dict(reencode="webp", quality=True), "quality must be a whole number"),
                         (dict(reencode="webp", compression="zstd"), "reencode and compression do not go together")):
        with pytest.raises(InvalidInputError, match=message):
            local.artifacts.put(screen_png(), "image/png", **bad)
    with pytest.raises(InvalidInputError, match="cannot re-encode the content as webp: it is no image Pillow reads"):
        local.artifacts.put(b"\x89PNG but not really", "image/png", reencode="webp")
    assert rows(database, artifacts) == 0 and blobs(database) == [] and spools(database) == []


def test_link_many_links_many_artifacts_to_many_owners_at_once(local, database):
    claim = local.rollouts.start()
    turns = [local.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=n)
             for n in range(3)]
    shot, log = local.artifacts.put(b"a screenshot", "image/png"), local.artifacts.put(b"a log", "text/plain")
    asked = [{"artifact": shot, "turn_id": turn.id, "role": "screenshot"} for turn in turns] + [
        {"artifact": log.sha256, "rollout_id": claim.rollout.id},  # role: attachment
        {"artifact": shot.sha256, "turn_id": turns[0].id, "role": "screenshot"}]  # twice in the batch
    links = local.artifacts.link_many(asked)
    assert [(link.sha256, link.owner_type, link.owner_id, link.role) for link in links] == [
        *((shot.sha256, "turn", turn.id, "screenshot") for turn in turns),
        (log.sha256, "rollout", claim.rollout.id, "attachment"), (shot.sha256, "turn", turns[0].id, "screenshot")]
    assert links[0] == links[-1] and rows(database, artifact_links) == 4
    assert local.artifacts.links(turn_id=turns[1].id) == [links[1]]
    assert [link.id for link in local.artifacts.link_many(asked)] == [link.id for link in links]  # again: the same
    assert local.artifacts.link_many([]) == []
    assert [turn.artifacts[0].sha256 for turn in local.trajectory(claim.rollout.id).turns] == [shot.sha256] * 3


def test_link_many_refuses_a_bad_link_and_links_none(local, database):
    claim = local.rollouts.start()
    turn = local.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=0)
    shot = local.artifacts.put(b"pixels", "image/png")
    good = {"artifact": shot.sha256, "turn_id": turn.id, "role": "screenshot"}
    for bad, error, message in (
            ({"artifact": "0" * 64, "turn_id": turn.id}, NotFoundError, f"artifact {'0' * 64} not found"),
            ({"artifact": shot.sha256, "turn_id": "no-such-turn"}, NotFoundError, "turn 'no-such-turn' not found"),
            ({"artifact": shot.sha256, "turn_id": turn.id, "role": "thumbnail"}, InvalidInputError,
             "link #1: unknown artifact role 'thumbnail'"),
            ({"artifact": shot.sha256, "turn_id": turn.id, "rollout_id": claim.rollout.id}, InvalidInputError,
             "link #1: name exactly one owner"),
            ({"artifact": "not a digest", "turn_id": turn.id}, InvalidInputError, "link #1: an artifact is named by"),
            ({"turn_id": turn.id}, InvalidInputError, "link #1: a link has an artifact, a role and one owner"),
            ({"artifact": shot.sha256, "turn_id": turn.id, "colour": "red"}, InvalidInputError,
             "link #1: a link has an artifact")):
        with pytest.raises(error, match=message):
            local.artifacts.link_many([good, bad])
    for not_links in ({"artifact": shot.sha256}, "links", [3]):
        with pytest.raises(InvalidInputError, match="links are given as a list of mappings|link #0 is not a mapping"):
            local.artifacts.link_many(not_links)
    assert rows(database, artifact_links) == 0


def test_link_many_takes_the_same_statements_for_two_links_as_for_sixty(tmp_path):
    with rolloutdb.connect(f"sqlite:///{tmp_path / 'count.db'}") as store:
        statements: list[str] = []
        from sqlalchemy import event
        event.listen(store.engine, "checkout", lambda connection, *_: connection.set_trace_callback(statements.append))
        counts = []
        for turns in (2, 60):
            rollout = store.rollouts.create()
            owners = [store.turns.create(rollout_id=rollout.id, turn_index=n) for n in range(turns)]
            shots = [store.artifacts.put(f"shot {n}".encode()) for n in range(turns)]
            statements.clear()
            store.artifacts.link_many([{"artifact": shot, "turn_id": turn.id, "role": "screenshot"}
                                       for shot, turn in zip(shots, owners)])
            counts.append(len([sql for sql in statements if sql.lstrip().split()[0].upper() in
                               ("SELECT", "INSERT", "UPDATE")]))
        assert counts[0] == counts[1] <= 5
