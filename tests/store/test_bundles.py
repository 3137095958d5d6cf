"""Bundles: a selection's rows with everything they hang on, out of one database and into another, ids kept;
importing twice changes nothing; a damaged bundle changes nothing; archive bundles, checks, then purges."""

import io
import json
import tarfile
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

import rolloutdb
from rolloutdb.errors import ConflictError, InvalidBundleError, InvalidInputError
from rolloutdb.schema import (artifact_links, artifacts, attempts, groups, resources, rollouts, runs, scripts, spans,
                              status_changes, steps, tasks, turns, validators)

from conftest import BACKENDS, new_database_url

# Every table a bundle carries, and the columns that are a database's own (not compared): the project, the
# sequence number of a history row, where an artifact's content is kept and when this database got it.
TABLES = (validators, tasks, runs, steps, groups, resources, rollouts, scripts, attempts, turns, spans, artifacts,
          artifact_links, status_changes)
LOCAL = {"project_id", "seq", "storage", "location", "created_at", "touched_at"}
FINISHED = ["succeeded", "failed", "cancelled"]


def png(red: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (2, 2), (red, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def fill(store, prefix=""):
    """Every kind of row a bundle carries: a run with an eval child, steps, a group, a task with a validator,
    resources, a retried rollout with turns, spans, a screenshot and a compressed log, a script replayed."""
    task, other = store.tasks.save([
        {"external_id": f"{prefix}reach-5", "instruction": "Reach 5.", "input": {"target": 5}, "dataset": "arith",
         "tags": ["math"], "validator": {"name": f"{prefix}exact", "kind": "equals", "config": {"field": "v"}}},
        {"external_id": f"{prefix}reach-9", "instruction": "Reach 9.", "input": {"target": 9}}])
    train = store.runs.create(name=f"{prefix}train", config={"lr": 1e-5})
    evaluation = store.runs.create(name=f"{prefix}train-eval", kind="eval", parent_run_id=train.id)
    store.steps.create(run_id=train.id, number=1)
    group = store.groups.create(run_id=train.id, step=1, task_id=task.id)
    named = store.resources.add({"llm": {"model": "m1"}})
    retried = store.rollouts.start({"q": 1}, run_id=train.id, task_id=task.id, group_id=group.id, step=1,
                                   resources_id=named.id, config={"max_attempts": 2, "retry_condition": ["failed"]})
    store.turns.create(rollout_id=retried.rollout.id, attempt_id=retried.attempt.id, turn_index=0,
                       observation="first try", action={"type": "tap", "x": 1, "y": 2})
    store.attempts.update(retried.rollout.id, status="failed")
    second = store.attempts.start(retried.rollout.id)
    turn = store.turns.create(rollout_id=retried.rollout.id, attempt_id=second.attempt.id, turn_index=0,
                              observation={"screen": "home"}, thinking="tap it", action={"type": "tap", "x": 3, "y": 4},
                              reward=1.0, success=True)
    store.artifacts.put(png(10), "image/png", role="screenshot", turn_id=turn.id)
    store.artifacts.put(b"log line\n" * 50, "text/plain", role="attachment", rollout_id=retried.rollout.id,
                        compression="zstd")
    store.spans.add_many([{"rollout_id": retried.rollout.id, "attempt_id": second.attempt.id, "trace_id": "t",
                           "span_id": "s1", "name": "llm.call", "attributes": {"gen_ai.prompt.0.role": "user"},
                           "start_time": datetime(2026, 1, 1, tzinfo=timezone.utc)}])
    store.rollouts.update(retried.rollout.id, status="succeeded", reward=1.0, success=True)
    script = store.scripts.record(retried.rollout.id, name="reach")
    replay = store.rollouts.start({"replay": True}, run_id=evaluation.id, task_id=task.id, script_id=script.id,
                                  mode="val")
    store.rollouts.update(replay.rollout.id, status="failed", reward=0.0)
    plain = store.rollouts.start(None, run_id=train.id, task_id=other.id, step=2)
    store.rollouts.cancel(plain.rollout.id)
    return {"train": train, "evaluation": evaluation, "rollouts": [retried.rollout.id, replay.rollout.id,
                                                                   plain.rollout.id]}


def snapshot(store):
    """Every row of the project in the bundled tables, less the database's own columns, in a stable order."""
    found = {}
    with store.engine.connect() as connection:
        for table in TABLES:
            columns = [column for column in table.columns if column.name not in LOCAL or table is not artifacts
                       and column.name == "created_at"]
            rows = connection.execute(select(*columns).where(table.c.project_id == store.project_id)).mappings()
            found[table.name] = sorted((dict(row) for row in rows), key=lambda row: json.dumps(row, default=str,
                                                                                                 sort_keys=True))
    return found


def connected(url, project=None):
    return rolloutdb.connect(url, project=project or f"test-{uuid.uuid4().hex[:12]}")


@pytest.mark.postgresql
def test_a_round_trip_sqlite_postgresql_sqlite_leaves_every_table_identical(postgres_databases, tmp_path):
    urls = [new_database_url(backend, postgres_databases, tmp_path) for backend in ("sqlite", "postgresql", "sqlite")]
    with connected(urls[0]) as first:
        fill(first)
        before = snapshot(first)
        written = first.export_bundle({"status": FINISHED}, out=tmp_path / "one.rdb.tar")
    assert written.rows["rollouts"] == 3 and written.rows["attempts"] == 4 and written.blobs == 2
    assert all(before[name] for name in before if name != "resources") and before["resources"]
    with connected(urls[1]) as middle:
        imported = middle.import_bundle(tmp_path / "one.rdb.tar")
        assert imported.inserted == written.rows and imported.blobs == 2
        assert snapshot(middle) == before
        middle.export_bundle({"status": FINISHED}, out=tmp_path / "two")  # a folder this time
    with connected(urls[2]) as last:
        last.import_bundle(tmp_path / "two")
        assert snapshot(last) == before
        contents = {row["media_type"]: last.artifacts.read(row["sha256"]) for row in snapshot(last)["artifacts"]}
        assert contents == {"image/png": png(10), "text/plain": b"log line\n" * 50}


@pytest.mark.parametrize("backend", BACKENDS)
def test_importing_twice_changes_nothing_and_keeps_the_projects_other_data(backend, postgres_databases, tmp_path):
    source_url, target_url = (new_database_url(backend, postgres_databases, tmp_path) for _ in range(2))
    with connected(source_url) as source:
        made = fill(source)
        fill(source, prefix="other-")  # not selected: only the train run and its children
        written = source.export_bundle({"runs": ["train"], "include_children": True, "status": FINISHED},
                                       out=tmp_path / "b.tar")
        assert written.rows["rollouts"] == 3 and written.rows["runs"] == 2
    with connected(target_url) as target:
        mine = fill(target, prefix="mine-")
        first = target.import_bundle(tmp_path / "b.tar")
        after_first = snapshot(target)
        second = target.import_bundle(tmp_path / "b.tar")
        assert snapshot(target) == after_first
        assert sum(second.inserted.values()) == 0
        assert second.kept == {name: count + first.kept[name] for name, count in first.inserted.items()}
        assert {run.name for run in target.runs.query()} == {"mine-train", "mine-train-eval", "train", "train-eval"}
        assert {r.id for r in target.rollouts.query(limit=None)} == set(made["rollouts"]) | set(mine["rollouts"])
        assert target.rollouts.get(made["rollouts"][0]).attempt_count == 2


def test_bundle_rows_keep_their_ids_so_another_project_of_the_same_database_cannot_take_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    with connected(url) as source:
        fill(source)
        source.export_bundle({"status": FINISHED}, out=tmp_path / "b.tar")
    with connected(url) as elsewhere:
        with pytest.raises(ConflictError, match="another project of this database"):
            elsewhere.import_bundle(tmp_path / "b.tar")
        assert all(rows == [] for name, rows in snapshot(elsewhere).items() if name != "artifacts")


def test_the_history_of_a_rollout_comes_with_it(tmp_path):
    with connected(f"sqlite:///{tmp_path / 'a.db'}") as source:
        made = fill(source)
        history = [(c.old_status, c.new_status, c.changed_at) for c in source.history("rollout", made["rollouts"][0])]
        source.export_bundle({"status": FINISHED}, out=tmp_path / "b.tar")
    with connected(f"sqlite:///{tmp_path / 'b.db'}") as target:
        target.import_bundle(tmp_path / "b.tar")
        assert [(c.old_status, c.new_status, c.changed_at)
                for c in target.history("rollout", made["rollouts"][0])] == history
        assert len(history) >= 3


@pytest.fixture
def bundle(tmp_path):
    """A folder bundle and an empty SQLite store to import it into."""
    with connected(f"sqlite:///{tmp_path / 'a.db'}") as source:
        fill(source)
        source.export_bundle({"status": FINISHED}, out=tmp_path / "folder")
    with connected(f"sqlite:///{tmp_path / 'b.db'}") as target:
        yield tmp_path / "folder", target


def as_tar(folder, out):
    with tarfile.open(out, "w") as tar:
        for name in ["manifest.json", *sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                                              if p.is_file() and p.name != "manifest.json")]:
            tar.add(folder / name, arcname=name)
    return out


def nothing_written(store):
    return all(rows == [] for rows in snapshot(store).values())


def test_a_changed_byte_in_a_table_file_is_refused_before_anything_is_written(bundle):
    folder, target = bundle
    path = folder / "tables" / "turns.jsonl"
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidBundleError, match="tables/turns.jsonl: checksum or row count"):
        target.import_bundle(folder)
    assert nothing_written(target)


def test_a_changed_blob_is_refused_before_anything_is_written(bundle):
    folder, target = bundle
    blob = next((folder / "blobs").iterdir())
    blob.write_bytes(blob.read_bytes() + b"!")
    with pytest.raises(InvalidBundleError, match="does not match its sha256"):
        target.import_bundle(folder)
    assert nothing_written(target)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_a_truncated_tar_is_refused_before_anything_is_written(bundle, tmp_path, keep):
    folder, target = bundle
    tar = as_tar(folder, tmp_path / "whole.tar")
    cut = tmp_path / "cut.tar"
    data = tar.read_bytes()
    # a tar is padded with zero blocks at its end: cut within its content
    cut.write_bytes(data[:int(len(data.rstrip(b"\0")) * keep)])
    with pytest.raises(InvalidBundleError, match="nothing was written"):
        target.import_bundle(cut)
    assert nothing_written(target)
    target.import_bundle(tar)  # the whole one goes in
    assert not nothing_written(target)


def test_a_bundle_from_a_newer_schema_is_refused(bundle):
    folder, target = bundle
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["schema_revision"] = "9999"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidBundleError, match="schema revision 9999, newer than this release's .*upgrade rolloutdb"):
        target.import_bundle(folder)
    assert nothing_written(target)


@pytest.mark.parametrize("damage", ["no manifest", "not json", "not a bundle", "not a tar"])
def test_what_is_not_a_bundle_is_refused(bundle, tmp_path, damage):
    folder, target = bundle
    if damage == "no manifest":
        (folder / "manifest.json").unlink()
    elif damage == "not json":
        (folder / "manifest.json").write_text("{")
    elif damage == "not a bundle":
        (folder / "manifest.json").write_text('{"format": "something else"}')
    else:
        folder = tmp_path / "x.tar"
        folder.write_bytes(b"hello" * 1000)
    with pytest.raises(InvalidBundleError):
        target.import_bundle(folder)
    assert nothing_written(target)


def test_an_empty_selection_writes_an_empty_bundle_which_imports_as_nothing(tmp_path):
    with connected(f"sqlite:///{tmp_path / 'a.db'}") as store:
        fill(store)
        written = store.export_bundle({"dataset": "nothing-like-it"}, out=tmp_path / "empty.tar")
        assert set(written.rows.values()) == {0} and written.blobs == 0
        imported = store.import_bundle(tmp_path / "empty.tar")
        assert set(imported.inserted.values()) == {0}


@pytest.mark.parametrize(("selection", "message"), [
    ({"color": "red"}, "unknown selection field.*color.*fields: runs"),
    ({"per_task": 1}, "per_task do.* not apply to it; fields: runs"),
    ({"latest_attempt": False}, "latest_attempt"),
    ({"runs": ["ghost"]}, "ghost"),
])
def test_bad_selections_are_refused_with_what_would_do(tmp_path, selection, message):
    with connected(f"sqlite:///{tmp_path / 'a.db'}") as store:
        with pytest.raises(rolloutdb.RolloutDBError, match=message):
            store.export_bundle(selection, out=tmp_path / "b.tar")
        assert [path.name for path in tmp_path.iterdir() if "b.tar" in path.name] == []


def test_a_bundle_is_not_written_over_a_file_or_a_full_folder(tmp_path):
    with connected(f"sqlite:///{tmp_path / 'a.db'}") as store:
        (tmp_path / "there.tar").write_bytes(b"mine")
        with pytest.raises(InvalidInputError, match="is there already"):
            store.export_bundle(out=tmp_path / "there.tar")
        assert (tmp_path / "there.tar").read_bytes() == b"mine"
        with pytest.raises(InvalidInputError, match="no folder"):
            store.export_bundle(out=tmp_path / "missing" / "b.tar")


def test_an_interrupted_export_leaves_nothing_behind(tmp_path):
    with connected(f"sqlite:///{tmp_path / 'a.db'}") as store:
        fill(store)

        def interrupt(stage, done, total):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.export_bundle({"status": FINISHED}, out=tmp_path / "b.tar", on_progress=interrupt)
        assert [path.name for path in tmp_path.iterdir() if not path.name.startswith("a.db")] == []


# -- archive -------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(params=BACKENDS)
def clocked(request, postgres_databases, tmp_path):
    clock = Clock()
    with rolloutdb.connect(new_database_url(request.param, postgres_databases, tmp_path), project="archive",
                           clock=lambda: clock.now) as store:
        yield store, clock


def test_archive_bundles_what_ended_before_the_cutoff_checks_it_purges_it_and_import_restores_it(clocked, tmp_path):
    store, clock = clocked
    old = fill(store, prefix="old-")
    before = snapshot(store)
    clock.now += timedelta(days=40)
    recent = store.rollouts.start("recent")
    store.attempts.update(recent.rollout.id, status="succeeded")
    running = store.rollouts.start("running").rollout
    archive = tmp_path / "archive"
    archive.mkdir()
    done = store.archive(older_than=timedelta(days=30), to=archive)
    assert done.bundle.rows["rollouts"] == 3 and done.purged_rollouts == 3 and done.purged_attempts == 4
    assert {r.id for r in store.rollouts.query(limit=None)} == {recent.rollout.id, running.id}
    assert [path.name for path in archive.iterdir()] == [done.bundle.path.rsplit("/", 1)[1]]
    store.import_bundle(done.bundle.path)
    assert {r.id for r in store.rollouts.query(limit=None)} == {recent.rollout.id, running.id, *old["rollouts"]}
    restored = snapshot(store)
    for name in before:
        assert [row for row in restored[name] if row in before[name]] == before[name], name


@pytest.mark.parametrize("stage", ["export", "verify"])
def test_an_archive_interrupted_before_its_check_passes_purges_nothing(clocked, tmp_path, stage):
    store, clock = clocked
    fill(store)
    clock.now += timedelta(days=40)
    before = snapshot(store)

    def interrupt(at, done, total):
        if at == stage:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.archive(older_than=timedelta(days=30), to=tmp_path, on_progress=interrupt)
    assert snapshot(store) == before


def test_archive_refuses_a_folder_that_is_not_there(tmp_path):
    with connected(f"sqlite:///{tmp_path / 'a.db'}") as store:
        with pytest.raises(InvalidInputError, match="folder"):
            store.archive(older_than=timedelta(days=30), to=tmp_path / "missing")
        with pytest.raises(InvalidInputError, match="timedelta"):
            store.archive(older_than="30d", to=tmp_path)


def test_bundles_are_local_only_a_remote_store_says_so(store, tmp_path):
    if not isinstance(store, rolloutdb.Store):
        with pytest.raises(NotImplementedError, match="export_bundle.*call it on a store connected to the database"):
            store.export_bundle(out=tmp_path / "b.tar")
        with pytest.raises(NotImplementedError, match="import_bundle"):
            store.import_bundle(tmp_path / "b.tar")
    else:
        assert store.export_bundle(out=tmp_path / "b.tar").rows["rollouts"] == 0


def test_a_script_whose_source_rollout_stays_behind_names_none_once_imported(tmp_path):
    with connected(f"sqlite:///{tmp_path / 'a.db'}") as source:
        made = fill(source)
        written = source.export_bundle({"runs": ["train-eval"], "status": FINISHED}, out=tmp_path / "b.tar")
        assert (written.rows["rollouts"], written.rows["scripts"], written.rows["runs"]) == (1, 1, 2)  # and its parent
        (script,) = source.scripts.list()
        assert script.source_rollout_id == made["rollouts"][0]
    with connected(f"sqlite:///{tmp_path / 'b.db'}") as target:
        target.import_bundle(tmp_path / "b.tar")
        (imported,) = target.scripts.list()
        assert imported.id == script.id and imported.source_rollout_id is None
        assert target.rollouts.get(made["rollouts"][1]).script_id == script.id


def test_a_manifest_naming_another_file_is_refused(bundle, tmp_path):
    folder, target = bundle
    (tmp_path / "elsewhere.jsonl").write_text("")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["tables"]["turns"]["file"] = "../elsewhere.jsonl"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidBundleError, match="turns is not in tables/turns.jsonl"):
        target.import_bundle(folder)
    assert nothing_written(target)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_name_the_project_uses_under_another_id_is_a_conflict_and_nothing_is_written(backend,
                                                                                          postgres_databases,
                                                                                          tmp_path):
    source_url, target_url = (new_database_url(backend, postgres_databases, tmp_path) for _ in range(2))
    with connected(source_url) as source:
        fill(source)
        source.export_bundle({"status": FINISHED}, out=tmp_path / "b.tar")
    with connected(target_url) as target:
        fill(target)  # the same names, other ids
        before = snapshot(target)
        with pytest.raises(ConflictError, match="conflict with rows of this project.*nothing was written"):
            target.import_bundle(tmp_path / "b.tar")
        assert snapshot(target) == before


def test_a_re_encoded_screenshot_travels_in_its_stored_form_and_keeps_its_record(tmp_path):
    """A screenshot stored as WebP (artifacts.put(..., reencode="webp")) is bundled as its stored bytes under the
    original's sha256, and imported as the same record: re-encoded, the original's sha256, size and media type."""
    from store.test_artifacts import screen_png

    drawn = screen_png()
    with connected(f"sqlite:///{tmp_path / 'from.db'}") as source:
        claim = source.rollouts.start()
        turn = source.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=0)
        shot = source.artifacts.put(drawn, "image/png", reencode="webp", turn_id=turn.id, role="screenshot")
        source.rollouts.update(claim.rollout.id, status="succeeded")
        before, stored = snapshot(source), source.artifacts.read(shot)
        assert source.export_bundle({"status": FINISHED}, out=tmp_path / "shots").blobs == 1
    for changed in (False, True):
        with connected(f"sqlite:///{tmp_path / f'to-{changed}.db'}") as target:
            if changed:  # a blob of another size than the stored form's is refused before anything is written
                blob = tmp_path / "shots" / "blobs" / shot.sha256
                blob.write_bytes(blob.read_bytes() + b"x")
                with pytest.raises(InvalidBundleError, match="content does not match its sha256"):
                    target.import_bundle(tmp_path / "shots")
                assert nothing_written(target)
                continue
            assert target.import_bundle(tmp_path / "shots").blobs == 1
            assert snapshot(target) == before
            copied = target.artifacts.get(shot.sha256)
            assert (copied.media_type, copied.original_media_type, copied.size, copied.stored_size) == (
                "image/webp", "image/png", len(drawn), shot.stored_size)
            assert target.artifacts.read(copied) == stored and stored[8:12] == b"WEBP"
