"""The change feed on PostgreSQL, where ids are handed out before commit: a follower waits at a hole in the ids
only for transactions that may still fill it (those writing events of this database), never for the rest of
the cluster's transactions (another database's, a long report's), however long they run."""

import json
import threading

import psycopg
import pytest

import rolloutdb
from conftest import postgres_connection

pytestmark = pytest.mark.postgresql


def bystanders(url: str) -> list[psycopg.Connection]:
    """Two open transactions that hold a transaction id and write no event: one in another database of the
    cluster, one in this database."""
    opened = [postgres_connection(url, database="postgres"), postgres_connection(url)]
    for connection in opened:
        connection.execute("SELECT pg_current_xact_id()")  # takes an id, as any write would
    return opened


def in_a_thread(call, seconds: float):
    """``call()``'s result, or AssertionError when it has not returned within ``seconds``."""
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still waiting after {seconds} s"
    return outcome[0]


def test_an_event_committed_late_is_waited_for_and_bystanders_are_not(postgres_databases):
    url = postgres_databases.new()
    with rolloutdb.connect(url, project="p") as store, rolloutdb.connect(url, project="q") as other:
        after = store.events.latest_id()
        idle = bystanders(url)
        late = postgres_connection(url)  # holds the next id of the feed, committed only later
        late.execute("INSERT INTO events (project_id, topic, time, data) VALUES (%s, 'log', now(), %s)",
                     (store.project_id, json.dumps({"message": "late"})))
        try:
            with other.jobs.start("elsewhere") as job:  # ids of another project: a hole in p's view
                job.log("of q")
            with store.jobs.start("here") as job:
                job.log("of p")
            assert list(store.events.follow(after, timeout=0.5)) == []  # the late one may come: it waits
            late.commit()
            followed = in_a_thread(lambda: list(store.events.follow(after, timeout=1.0)), 20)
            messages = [event.data.get("message") for event in followed if event.topic == "log"]
            assert messages == ["late", "started", "of p", "completed"]
            assert [event.id for event in followed] == sorted(event.id for event in followed)
            assert in_a_thread(store.events.latest_id, 5) == followed[-1].id
        finally:
            for connection in (late, *idle):
                connection.close()
