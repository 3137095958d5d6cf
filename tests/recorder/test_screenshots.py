"""Screenshots recorded with turns: stored once by content, linked from their turn with their role; kept in the
journal while the database is away and linked once it is back; bad ones refused at the call."""

import hashlib
import os
import time
import uuid

import pytest

import rolloutdb
from rolloutdb.errors import InvalidInputError
from rolloutdb.recorder import _pump


def png(size: int) -> bytes:
    """A PNG's signature and ``size`` bytes that hold every byte value (newlines and NULs among them)."""
    return b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + os.urandom(size)


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def links_by_turn(store, rollout_id: str) -> list[list[tuple[str, str]]]:
    """Each turn's links, in turn order, as (role, sha256)."""
    return [sorted((link.role, link.sha256) for link in store.artifacts.links(turn_id=turn.id))
            for turn in store.turns.query(rollout_id=rollout_id)]


def record_screens(recorder, screens: list[bytes], *, task: str = "mail") -> None:
    """One rollout of a GUI agent: a turn per screen, with the screen before it and the one after it."""
    with recorder.step(0) as step, step.group(task=task).rollout() as rollout:
        rollout.turn(kind="screenshot", screenshot=screens[0])
        for index in range(1, len(screens)):
            rollout.turn(kind="action", action={"type": "tap", "x": 10 * index, "y": 20},
                         screenshots={"before": screens[index - 1], "after": screens[index]}, success=True)
        rollout.finish(reward=1.0, success=True)


def expected_links(screens: list[bytes]) -> list[list[tuple[str, str]]]:
    return [[("screenshot", digest(screens[0]))]] + [
        sorted([("before", digest(screens[index - 1])), ("after", digest(screens[index]))])
        for index in range(1, len(screens))]


def test_screenshots_are_stored_once_and_linked_with_their_roles(session_database_url, tmp_path):
    project = f"shots-{uuid.uuid4().hex[:8]}"
    screens = [png(200_000), png(3_000), png(3_000)]
    with rolloutdb.Recorder(session_database_url, run="gui", project=project, journal_dir=tmp_path,
                            flush_interval=0.05) as recorder:
        record_screens(recorder, screens)
        assert recorder.flush(timeout=60)
    with rolloutdb.connect(session_database_url, project=project) as store:
        [rollout] = store.rollouts.query()
        assert links_by_turn(store, rollout.id) == expected_links(screens)
        assert [turn.kind for turn in store.turns.query(rollout_id=rollout.id)] == ["screenshot", "action", "action"]
        for screen in screens:  # each stored once, however many turns link it
            artifact = store.artifacts.get(digest(screen))
            assert (artifact.size, artifact.media_type) == (len(screen), "image/png")
            assert store.artifacts.read(artifact) == screen
        with store.engine.connect() as connection:
            from sqlalchemy import func, select
            from rolloutdb.schema import artifacts
            assert connection.execute(select(func.count()).select_from(artifacts)
                                      .where(artifacts.c.project_id == store.project_id)).scalar_one() == 3


def test_bad_screenshots_and_actions_are_refused_at_the_call_and_nothing_is_recorded(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with rolloutdb.Recorder(url, run="gui", journal_dir=tmp_path / "j", flush_interval=0.05) as recorder:
        with recorder.step(0) as step, step.group(task="t").rollout() as rollout:
            refused = [
                ({"screenshot": "not bytes"}, "screenshots.screenshot: Input should be a valid bytes, got str"),
                ({"screenshot": bytearray(b"mutable")}, "screenshots.screenshot: .*got bytearray"),
                ({"screenshots": {"thumbnail": b"x"}}, r"screenshots.thumbnail.\[key\]: "),
                ({"screenshot": b"a", "screenshots": {"screenshot": b"b"}}, "screenshot is given twice"),
                ({"action": {"type": "tap", "x": -3, "y": 1}, "screenshot": b"x"}, "action.x: "),
                ({"action": {"type": "tap", "x": 1}}, "action.y: "),
                ({"kind": "nap"}, "kind: "),
            ]
            for arguments, message in refused:
                with pytest.raises(InvalidInputError, match=message):
                    rollout.turn(**arguments)
            rollout.turn(action={"type": "tap", "x": 1, "y": 2}, screenshot=b"fine")
            rollout.finish(reward=1.0)
        assert recorder.flush(timeout=60)
    with rolloutdb.connect(url) as store:
        [turn] = store.turns.query()
        assert turn.turn_index == 0 and store.artifacts.read(digest(b"fine")) == b"fine"
        assert store.artifacts.get(digest(b"fine")).media_type == "application/octet-stream"


@pytest.mark.postgresql
def test_screenshots_recorded_while_the_database_is_away_arrive_when_it_is_back(proxied_postgres, tmp_path):
    direct, proxied, proxy = proxied_postgres
    screens = [png(200_000 + n) for n in range(6)]
    recorder = rolloutdb.Recorder(proxied, run="gui", journal_dir=tmp_path, flush_interval=0.05, max_pending=5,
                                  max_lag=0.2)
    assert recorder.flush(timeout=30)
    proxy.cut()
    record_screens(recorder, screens)
    pending = recorder.flush(timeout=1)
    away = recorder.health()
    proxy.restore()
    recorder.close(timeout=60)  # writes everything once the database is back
    assert not pending and not away.connected and away.spilled > 0  # screenshots went to the journal meanwhile
    done = recorder.health()
    assert (done.written, done.failed, done.spilled) == (done.recorded, 0, 0)
    with rolloutdb.connect(direct) as store:
        [rollout] = store.rollouts.query()
        assert links_by_turn(store, rollout.id) == expected_links(screens)
        assert all(store.artifacts.read(digest(screen)) == screen for screen in screens)
    assert not list(tmp_path.rglob("*.jsonl"))


def test_screenshots_whose_folder_cannot_be_written_wait_like_an_outage_and_arrive_once_it_can(tmp_path, monkeypatch):
    """A blob folder that cannot be written (read-only, full, a file in its place) is the store being away: what
    was recorded waits, and nothing of it is refused and lost."""
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the blob folder should be")
    monkeypatch.setenv("ROLLOUTDB_ARTIFACTS", str(blocker / "blobs"))  # the writer process's setting too
    url = f"sqlite:///{tmp_path / 'shots.db'}"
    screens = [png(1_000 + n) for n in range(3)]
    recorder = rolloutdb.Recorder(url, run="gui", journal_dir=tmp_path / "j", flush_interval=0.05)
    record_screens(recorder, screens)
    waiting = recorder.flush(timeout=2)
    assert not waiting.complete and waiting.rejected == [] and "cannot write artifacts" in recorder.health().last_error
    blocker.unlink()
    recorder.close(timeout=60)
    done = recorder.health()
    assert (done.written, done.failed, done.spilled) == (done.recorded, 0, 0)
    with rolloutdb.connect(url) as store:
        [rollout] = store.rollouts.query()
        assert rollout.status == "succeeded" and links_by_turn(store, rollout.id) == expected_links(screens)
        assert all(store.artifacts.read(digest(screen)) == screen for screen in screens)


def test_screenshots_left_in_the_journal_are_replayed_with_their_links(tmp_path):
    away = tmp_path / "not-yet"  # its folder does not exist: the database is away
    url = f"sqlite:///{away / 'r.db'}"
    screens = [png(50_000), png(50_000), png(100)]
    recorder = rolloutdb.Recorder(url, run="gui", journal_dir=tmp_path / "j", timeout=2, start_timeout=0.5)
    record_screens(recorder, screens)
    recorder.close(timeout=0.5)  # the database is away: what is left goes to the journal
    [kept] = rolloutdb.recorder.list_journals(tmp_path / "j")
    assert kept.records == recorder.health().recorded  # a frame counts as one record, whatever its bytes hold
    away.mkdir()
    with rolloutdb.connect(url) as store:
        result = rolloutdb.recorder.replay_journals(store, tmp_path / "j")
        assert (result.written, result.rejected) == (kept.records, [])
        [rollout] = store.rollouts.query()
        assert links_by_turn(store, rollout.id) == expected_links(screens)
        assert store.artifacts.read(digest(screens[1])) == screens[1]


def test_screenshots_beyond_what_memory_holds_go_to_the_journal(tmp_path, monkeypatch):
    monkeypatch.setattr(_pump, "MAX_PENDING_BYTES", 300_000)  # a test's size: 64 MB by default
    away = tmp_path / "not-yet"
    recorder = rolloutdb.Recorder(f"sqlite:///{away / 'r.db'}", run="gui", journal_dir=tmp_path / "j", timeout=2,
                                  start_timeout=0.5, max_lag=600, flush_interval=0.05)
    screens = [png(100_000 + n) for n in range(4)]
    record_screens(recorder, screens)  # neither too many records nor too old: too many bytes
    deadline = time.monotonic() + 30
    while recorder.health().spilled == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorder.health().spilled > 0 and recorder.health().dropped == 0
    away.mkdir()
    recorder.close(timeout=60)
    with rolloutdb.connect(f"sqlite:///{away / 'r.db'}") as store:
        [rollout] = store.rollouts.query()
        assert links_by_turn(store, rollout.id) == expected_links(screens)


def test_screenshots_re_encoded_by_the_writer_when_asked(session_database_url, tmp_path):
    """screenshot_reencode="webp": a screenshot Pillow reads is stored as WebP under its own sha256; one it does not
    read is stored as given (the turn is not refused for it)."""
    from store.test_artifacts import screen_png

    project = f"webp-{uuid.uuid4().hex[:8]}"
    drawn, not_an_image = screen_png(), png(3_000)
    with rolloutdb.Recorder(session_database_url, run="gui", project=project, journal_dir=tmp_path,
                            flush_interval=0.05, screenshot_reencode="webp", screenshot_quality=60) as recorder:
        record_screens(recorder, [drawn, not_an_image])
        assert recorder.flush(timeout=60)
    with rolloutdb.connect(session_database_url, project=project) as store:
        [rollout] = store.rollouts.query()
        assert links_by_turn(store, rollout.id) == expected_links([drawn, not_an_image])
        shot = store.artifacts.get(digest(drawn))
        assert (shot.size, shot.media_type, shot.original_media_type) == (len(drawn), "image/webp", "image/png")
        assert store.artifacts.read(shot)[8:12] == b"WEBP" and shot.stored_size < len(drawn)
        kept = store.artifacts.get(digest(not_an_image))
        assert (kept.media_type, kept.original_media_type) == ("image/png", None)
        assert store.artifacts.read(kept) == not_an_image
    for bad in ({"screenshot_reencode": "gif"}, {"screenshot_reencode": "webp", "screenshot_quality": 200}):
        with pytest.raises(InvalidInputError):
            rolloutdb.Recorder(session_database_url, run="gui-2", project=project, journal_dir=tmp_path, **bad)
