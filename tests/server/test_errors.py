"""The error table over a real server: each mistake gets its status and the body
``{"error": {"type", "message"}}`` naming what was wrong, the same on SQLite and PostgreSQL, and changes nothing;
an internal failure answers 500 without a traceback; a database that goes away makes /readyz answer 503."""

from __future__ import annotations

import shutil
import threading
import time
import uuid

import httpx
import pytest
from sqlalchemy.engine import make_url

import rolloutdb
from conftest import postgres_connection
from netproxy import Proxy
from server.servers import TEST_MAX_BODY_BYTES, error, ok, running_server, unique


def test_unknown_ids_and_routes_are_404(api):
    assert "'nope'" in error(api.get("/runs/nope"), 404, "NotFoundError")
    error(api.patch("/rollouts/nope", json={"reward": 1.0}), 404, "NotFoundError")
    error(api.post("/rollouts/wait", json={"rollout_ids": ["nope"], "timeout": 0}), 404, "NotFoundError")
    assert "see /docs" in error(api.get("/no-such-route"), 404, "NotFoundError")


def test_conflicts_and_illegal_transitions_are_409(api):
    name = unique("taken")
    ok(api.post("/runs", json={"name": name}), 201)
    assert "already exists" in error(api.post("/runs", json={"name": name}), 409, "ConflictError")
    rollout = ok(api.post("/rollouts", json={"status": "succeeded"}), 201)
    message = error(api.patch(f"/rollouts/{rollout['id']}", json={"status": "running"}), 409, "InvalidTransitionError")
    assert "'succeeded' is final" in message
    assert ok(api.get(f"/rollouts/{rollout['id']}"))["status"] == "succeeded"  # unchanged
    assert "cannot pause" in error(api.post(f"/jobs/{name}/pause", json={}), 409, "InvalidTransitionError")


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/runs", {"name": "x", "colour": "red"}, "invalid run: colour: Extra inputs are not permitted"),
    ("POST", "/runs", {"name": "x", "total_steps": "many"}, "total_steps: Input should be a valid integer, got str"),
    ("POST", "/runs", {"name": "x", "total_steps": 2 ** 40}, "total_steps: Input should be less than or equal to"),
    ("POST", "/runs", {"config": {}}, "name: Field required"),  # the store's own check, by field
    ("PATCH", "/runs/x", {"name": "renamed"}, "cannot update run field(s) name"),  # not updatable
    ("POST", "/rollouts/dequeue", {"limit": 5, "worker": "w"}, "body.worker"),
    ("POST", "/rollouts/dequeue", {"limit": 5000}, "limit (rollouts claimed at once) must be a whole number"),
    ("POST", "/rollouts/wait", {"rollout_ids": [], "timeout": 3600}, "body.timeout"),
    ("POST", "/spans", [{"rollout_id": "r", "attempt_id": "a", "sequence_id": "one"}], "span #0: sequence_id"),
    ("POST", "/purge", {}, "purge needs older_than, keep_last or both"),
    ("POST", "/runs", {"name": "x", "config": {"text": "a\u0000b"}}, "config.text: a string holds a NUL character"),
])
def test_bad_bodies_are_422_naming_the_field(api, method, path, body, field):
    assert field in error(api.request(method, path, json=body), 422, "InvalidInputError")
    assert ok(api.get("/runs", params={"name": "renamed"}))["total"] == 0


def test_malformed_json_is_422(api):
    message = error(api.post("/runs", content=b'{"name": "x",', headers={"content-type": "application/json"}),
                    422, "InvalidInputError")
    assert "JSON" in message


@pytest.mark.parametrize(("params", "said"), [
    ({"colour": "red"}, "cannot filter runs by 'colour'; filterable fields:"),
    ({"sort": "name; DROP TABLE runs"}, "cannot sort runs by 'name; DROP TABLE runs'"),
    ({"limit": 10_001}, "limit must be a whole number from 0 to 10,000"),
    ({"limit": "all"}, "query.limit"),
    ({"offset": -1}, "offset must be a whole number"),
    ({"offset": 10 ** 30}, "offset must be a whole number"),
    ({"status": "sleeping"}, "unknown run status 'sleeping'"),  # the store's own words
    ({"name__like": "x%"}, "unknown filter operator 'like'"),
    ({"created_at__gt": "yesterday"}, "query parameter 'created_at__gt'"),
    ({"order": "sideways"}, "order must be 'asc' or 'desc'"),
])
def test_bad_listings_are_422(api, params, said):
    assert said in error(api.get("/runs", params=params), 422, "InvalidInputError")


def test_a_short_id_that_several_ids_start_with_is_422(api):
    start = unique("amb")
    for end in "ab":
        ok(api.post("/validators", json={"id": f"{start}-{end}", "name": f"{start}-{end}", "kind": "k"}), 201)
    assert f"{start}-a" in error(api.get(f"/validators/{start}"), 422, "AmbiguousIdError")
    assert ok(api.get(f"/validators/{start}-b"))["name"] == f"{start}-b"


def test_pagination_counts_every_match(api):
    prefix = unique("page")
    for i in range(7):
        ok(api.post("/validators", json={"name": f"{prefix}-{i}", "kind": "k"}), 201)
    pages = [ok(api.get("/validators", params={"name__contains": prefix, "sort": "name", "limit": 3, "offset": offset}))
             for offset in (0, 3, 6, 9)]
    assert [(page["total"], page["limit"], page["offset"]) for page in pages] == [(7, 3, 0), (7, 3, 3), (7, 3, 6),
                                                                               (7, 3, 9)]
    assert [item["name"] for page in pages for item in page["items"]] == [f"{prefix}-{i}" for i in range(7)]
    assert ok(api.get("/validators", params={"name__contains": prefix, "limit": 0})) == {
        "items": [], "total": 7, "limit": 0, "offset": 0}
    either = ok(api.get("/validators", params={"name": [f"{prefix}-1", f"{prefix}-5"]}))
    assert sorted(item["name"] for item in either["items"]) == [f"{prefix}-1", f"{prefix}-5"]


def test_large_and_unusual_values_are_kept_as_given(api):
    text = "ünïcødé ✓ 🚀 " + "x" * (TEST_MAX_BODY_BYTES // 2)
    run = ok(api.post("/runs", json={"name": unique("big") + " ✓", "config": {"text": text, "deep": [[[1.5]]]}}), 201)
    assert ok(api.get(f"/runs/{run['id']}"))["config"] == {"text": text, "deep": [[[1.5]]]}


def test_a_body_over_the_limit_is_413(api):
    name = unique("huge")
    body = {"name": name, "config": {"text": "x" * TEST_MAX_BODY_BYTES}}
    assert "limit" in error(api.post("/runs", json=body), 413, "InvalidInputError")

    def chunks():  # no Content-Length: the server counts what arrives
        yield b'{"name": "' + name.encode() + b'", "config": {"text": "'
        for _ in range(TEST_MAX_BODY_BYTES // 65536 + 1):
            yield b"x" * 65536
        yield b'"}}'

    error(api.post("/runs", content=chunks(), headers={"content-type": "application/json"}), 413, "InvalidInputError")
    assert ok(api.get("/runs", params={"name": name}))["total"] == 0


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_an_internal_failure_is_500_without_a_traceback(server, api):
    """A failure the server does not expect: here PostgreSQL itself refuses an insert (a trigger of the test's
    raises), which no rule of the store knows. SQLite's triggers can only abort as a constraint, which the store
    reports as a conflict, so this runs on PostgreSQL only."""
    name = unique("explode")
    with postgres_connection(server.url, autocommit=True) as connection:
        connection.execute(
            "CREATE OR REPLACE FUNCTION explode() RETURNS trigger AS $$ BEGIN IF NEW.name LIKE 'explode-%' THEN "
            "RAISE EXCEPTION 'secret detail of the failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
        connection.execute("CREATE OR REPLACE TRIGGER explode BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION "
                           "explode()")
    response = api.post("/runs", json={"name": name})
    assert response.status_code == 500
    assert response.json() == {"error": {"type": "InternalError", "message": "internal error; see the server log"}}
    assert "secret detail" not in response.text
    log = server.log.read_text()
    assert "Traceback" in log and "secret detail of the failure" in log  # the whole story is in the log


@pytest.mark.postgresql
def test_readyz_follows_the_database(postgres_databases, tmp_path):
    """PostgreSQL behind a proxy that the test cuts: /readyz and every route answer 503 with Retry-After while
    the database is away, /healthz 200 (the process is up); all is well again once it is back."""
    database = make_url(postgres_databases.new())
    proxy = Proxy(database.host, database.port or 5432)
    try:
        url = database.set(port=proxy.port).render_as_string(hide_password=False)
        with running_server(url, tmp_path, f"ready-{uuid.uuid4().hex[:6]}") as server:
            assert ok(httpx.get(server.base + "/readyz")) == {"status": "ok"}
            proxy.cut()
            away = httpx.get(server.base + "/readyz")
            assert "cannot reach the database" in error(away, 503, "StoreUnavailableError")
            assert away.headers["retry-after"] == "5"
            with server.client() as api:
                assert error(api.get("/runs"), 503, "StoreUnavailableError")
                assert api.get("/runs").headers["retry-after"] == "5"
            assert ok(httpx.get(server.base + "/healthz")) == {"status": "ok"}
            proxy.restore()
            assert ok(httpx.get(server.base + "/readyz")) == {"status": "ok"}
    finally:
        proxy.close()


def test_readyz_answers_503_once_the_sqlite_file_is_gone(tmp_path):
    """SQLite's open connections go on using a database file removed under them, so a query alone would still
    answer: /readyz also looks whether the file it opened is still at its path."""
    directory = tmp_path / "data"
    directory.mkdir()
    with running_server(f"sqlite:///{directory / 'ready.db'}", tmp_path, "ready") as server:
        assert ok(httpx.get(server.base + "/readyz")) == {"status": "ok"}
        shutil.rmtree(directory)
        gone = httpx.get(server.base + "/readyz")
        assert "ready.db' is gone" in error(gone, 503, "StoreUnavailableError")
        assert gone.headers["retry-after"] == "5"
        assert ok(httpx.get(server.base + "/healthz")) == {"status": "ok"}  # the process is up


def test_writes_beyond_the_limit_are_503_at_once(tmp_path):
    """One write in flight at most: while a wait holds it, another write is answered 503 with Retry-After at once
    (not queued), reads still answer, and writes are taken again once it is done."""
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    with running_server(url, tmp_path, "busy", "--max-writes-in-flight", "1") as server, server.client() as api:
        rollout = ok(api.post("/rollouts/enqueue", json=[{"input": 1}]), 201)[0]
        done = threading.Event()

        def wait_holding_the_slot() -> None:
            # A probe below may hold the only slot when the wait arrives: the wait is refused then, and sent again
            # until it is taken. Once it is, it holds the slot until its rollout finishes, and a probe is refused.
            while api.post("/rollouts/wait", json={"rollout_ids": [rollout["id"]], "timeout": 60}).status_code == 503:
                if done.is_set():
                    return

        waiting = threading.Thread(target=wait_holding_the_slot)
        waiting.start()
        try:
            deadline = time.monotonic() + 60  # a guard against a hang, not a timing assumption
            while (busy := api.post("/runs", json={"name": unique("busy")})).status_code != 503:
                assert time.monotonic() < deadline, "no write was refused while the wait held the only slot"
            assert "the server is busy" in error(busy, 503, "StoreUnavailableError")
            assert busy.headers["retry-after"] == "1"
            assert ok(api.get(f"/rollouts/{rollout['id']}"))["status"] == "queuing"  # reads are not held back
        finally:
            done.set()
            with rolloutdb.connect(url, project="busy") as store:  # ends the wait: its rollout finishes
                store.rollouts.cancel(rollout["id"])
            waiting.join()
        ok(api.post("/runs", json={"name": unique("free")}), 201)
