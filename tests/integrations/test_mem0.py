"""mem0's history database imported as memory decisions: a database written by mem0's own SQLiteManager (when the
mem0ai package is installed) and one of its documented layout; imported again, nothing doubles."""

import sqlite3

import pytest

from rolloutdb.errors import InvalidInputError
from rolloutdb.integrations.mem0 import decision_id, import_mem0_history


def write_with_mem0(path):
    storage = pytest.importorskip("mem0.memory.storage")
    manager = storage.SQLiteManager(str(path))
    manager.add_history("mem-1", None, "Likes green tea", "ADD", created_at="2026-11-01T09:00:00+00:00",
                        updated_at="2026-11-01T09:00:00+00:00", actor_id="alice", role="user")
    manager.add_history("mem-1", "Likes green tea", "Likes green and jasmine tea", "UPDATE",
                        created_at="2026-11-01T09:00:00+00:00", updated_at="2026-11-03T10:30:00+00:00",
                        actor_id="alice", role="user")
    manager.batch_add_history([{"memory_id": "mem-2", "new_memory": "Lives in Lyon", "event": "ADD",
                                "created_at": "2026-11-02T08:00:00+00:00"}])
    manager.add_history("mem-2", "Lives in Lyon", None, "DELETE", created_at="2026-11-02T08:00:00+00:00",
                        updated_at="2026-11-05T12:00:00", is_deleted=1)  # mem0 writes zone-less times too
    manager.add_history("mem-3", "Likes tea", "Likes tea", "NONE", created_at="2026-11-06T08:00:00+00:00")
    manager.close()


def write_documented_layout(path, rows):
    """A history database of mem0's documented layout (its SQLiteManager's table), with these rows."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE history (id TEXT PRIMARY KEY, memory_id TEXT, old_memory TEXT, "
                           "new_memory TEXT, event TEXT, created_at DATETIME, updated_at DATETIME, is_deleted INTEGER, "
                           "actor_id TEXT, role TEXT)")
        connection.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    connection.close()
    return path


def test_a_history_written_by_mem0_becomes_memory_decisions_once(store, tmp_path):
    path = tmp_path / "history.db"
    write_with_mem0(path)
    result = import_mem0_history(store, path)
    assert (result.read, result.imported, result.skipped) == (5, 5, [])
    decisions = sorted(store.decisions.list("memory"), key=lambda d: d.created_at)
    assert [(d.subject_id, d.action) for d in decisions] == [
        ("mem-1", "insert"), ("mem-2", "insert"), ("mem-1", "update"), ("mem-2", "delete"), ("mem-3", "ignore")]
    update = decisions[2]
    assert update.created_at.isoformat() == "2026-11-03T10:30:00+00:00"
    assert (update.context["old_memory"], update.context["new_memory"], update.context["actor_id"]) == (
        "Likes green tea", "Likes green and jasmine tea", "alice")
    assert update.state == {"old_length": 15, "new_length": 27} and update.policy_version == "mem0"
    assert decisions[3].created_at.isoformat() == "2026-11-05T12:00:00+00:00" and decisions[3].context["is_deleted"]
    again = import_mem0_history(store, path)
    assert (again.read, again.imported) == (5, 0)
    assert store.decisions.count() == 5


def test_the_documented_layout_imports_and_bad_rows_are_skipped_saying_why(store, tmp_path):
    path = write_documented_layout(tmp_path / "history.db", [
        ("h1", "m1", None, "fact", "ADD", "2026-11-01T00:00:00Z", None, 0, None, None),
        ("h2", "m1", "fact", "fact", "MERGE", "2026-11-01T00:00:00Z", None, 0, None, None),
        ("h3", "m1", "fact", None, "DELETE", None, "not a time", 1, None, None),
    ])
    result = import_mem0_history(store, path, batch_size=1)
    assert (result.read, result.imported) == (3, 1)
    assert "unknown event 'MERGE'" in result.skipped[0] and "no readable time" in result.skipped[1]
    (decision,) = store.decisions.list()
    assert (decision.id, decision.action, decision.created_at.isoformat()) == (
        decision_id(store.project, "h1"), "insert", "2026-11-01T00:00:00+00:00")


def test_a_file_that_is_not_a_mem0_history_is_refused(store, tmp_path):
    with pytest.raises(InvalidInputError, match="no mem0 history database"):
        import_mem0_history(store, tmp_path / "missing.db")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE memories (id TEXT)")
    with pytest.raises(InvalidInputError, match="not a mem0 history database"):
        import_mem0_history(store, other)
    text = tmp_path / "notes.txt"
    text.write_text("hello " * 200)
    with pytest.raises(InvalidInputError, match="not a SQLite database"):
        import_mem0_history(store, text)
    assert store.decisions.count() == 0
