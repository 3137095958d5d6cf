"""The decision logger: decisions and signals queued without waiting, written in batches by the recorder's writer,
kept through an outage and written once when the database is back; refusals reported, not raised."""

import logging
import time
import uuid
from datetime import datetime, timezone

import pytest

import rolloutdb

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture
def project():
    return f"dec-{uuid.uuid4().hex[:8]}"


def test_decisions_and_signals_are_written_in_batches_and_read_back(session_database_url, project, tmp_path):
    with rolloutdb.DecisionLogger(session_database_url, project=project, flush_interval=0.05,
                                  journal_dir=tmp_path) as logger:
        ids = [logger.log("memory", f"m{n}", "insert", reason="new fact", state={"n": n}, propensity=0.5,
                          policy_version="rules", at=T0) for n in range(200)]
        signal = logger.signal("m0", "hit", at=T0)
        assert logger.flush(timeout=30)
    health = logger.health()
    assert (health.recorded, health.written, health.failed, health.spilled) == (201, 201, 0, 0)
    with rolloutdb.connect(session_database_url, project=project) as store:
        assert store.decisions.count() == 200
        first = store.decisions.get(ids[0])
        assert (first.subject_id, first.action, first.reason, first.state, first.propensity, first.created_at) == (
            "m0", "insert", "new fact", {"n": 0}, 0.5, T0)
        assert store.signals.get(signal).kind == "hit"


def test_a_bad_value_is_refused_at_the_call_and_an_undeclared_action_is_reported(session_database_url, project,
                                                                                 tmp_path):
    with rolloutdb.DecisionLogger(session_database_url, project=project, flush_interval=0.05,
                                  journal_dir=tmp_path) as logger:
        with pytest.raises(rolloutdb.InvalidInputError, match="propensity"):
            logger.log("memory", "m", "insert", propensity=2.0)
        with pytest.raises(rolloutdb.InvalidInputError, match="state"):
            logger.log("memory", "m", "insert", state={"x": float("nan")})
        with pytest.raises(rolloutdb.InvalidInputError, match="at must be a timezone-aware datetime"):
            logger.signal("m", "hit", at="2026-11-01T00:00:00+00:00")
        logger.log("memory", "m", "upsert")
        kept = logger.log("memory", "m", "insert")
        result = logger.flush(timeout=30)
        assert not result and len(result.rejected) == 1
        assert "unknown action 'upsert'" in result.rejected[0] and "insert, update, ignore, delete" in result.rejected[0]
    with rolloutdb.connect(session_database_url, project=project) as store:
        assert [d.id for d in store.decisions.query()] == [kept]


def test_logging_goes_on_while_the_database_is_away_and_every_decision_arrives_once(
        proxied_postgres, tmp_path, caplog):
    direct, proxied, proxy = proxied_postgres
    project = f"dec-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING, logger="rolloutdb.recorder"):
        logger = rolloutdb.DecisionLogger(proxied, project=project, flush_interval=0.05, max_pending=50,
                                          journal_dir=tmp_path)
        logger.log("memory", "before", "insert")
        assert logger.flush(timeout=30)
        proxy.cut()
        started = time.monotonic()
        for n in range(300):  # never raises, never waits for the database
            logger.log("memory", f"m{n}", "update", state={"n": n})
            logger.signal(f"m{n}", "hit")
        assert time.monotonic() - started < 5
        assert not logger.flush(timeout=1)
        health = logger.health()
        assert not health.connected and health.spilled > 0  # beyond max_pending: in the journal
        proxy.restore()
        assert logger.flush(timeout=60)
        logger.close()
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1
    with rolloutdb.connect(direct, project=project) as store:
        assert store.decisions.count() == 301 and store.signals.count() == 300
        assert sorted(d.state["n"] for d in store.decisions.query(action="update", limit=None)) == list(range(300))
    assert logger.health().failed == 0 and not list(tmp_path.rglob("*.jsonl"))


def test_what_a_closed_logger_left_in_the_journal_is_written_by_the_next_one(tmp_path):
    away = tmp_path / "not-yet"
    url = f"sqlite:///{away / 'd.db'}"
    logger = rolloutdb.DecisionLogger(url, journal_dir=tmp_path / "j", timeout=2, start_timeout=0.5,
                                      flush_interval=0.05)
    ids = [logger.log("memory", f"m{n}", "delete") for n in range(20)]
    logger.close(timeout=1)
    assert logger.health().spilled == 20
    infos = rolloutdb.recorder.list_journals(tmp_path / "j")
    assert [(info.run, info.records) for info in infos] == [("(decision log)", 20)]
    away.mkdir()
    with rolloutdb.DecisionLogger(url, journal_dir=tmp_path / "j", flush_interval=0.05) as next_one:
        next_one.log("memory", "later", "ignore")
        assert next_one.flush(timeout=30)
    assert next_one.health().replayed == 20
    with rolloutdb.connect(url) as store:
        assert sorted(d.id for d in store.decisions.query(action="delete", limit=None)) == sorted(ids)
        assert store.decisions.count() == 21


def test_a_logger_writes_through_a_server(session_backends, project, tmp_path):
    server = session_backends.server_url("sqlite")
    with rolloutdb.DecisionLogger(server, project=project, flush_interval=0.05, journal_dir=tmp_path) as logger:
        decided = logger.log("memory", "m", "update", state={"quality": 0.2}, at=T0)
        logger.signal("m", "quality", 0.8, at=T0)
        logger.log("memory", "m", "merge")
        result = logger.flush(timeout=30)
        assert not result and "unknown action 'merge'" in result.rejected[0]
    with rolloutdb.connect(server, project=project) as store:
        assert [d.id for d in store.decisions.list()] == [decided]
        assert store.signals.query()[0].value == 0.8
