"""API tokens over a real `rolloutdb serve --auth` on SQLite and on PostgreSQL: every route of the route table is
tried with a token of another project (nothing of project A is read, changed, paused or purged), with a reader's
token (every write refused), and with a revoked and an expired token (refused at once)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import sqlalchemy

import rolloutdb
from rolloutdb.server import ROUTES, Operation
from server.servers import error, ok, server_environment

MARKER = "secret-of-project-a"  # in project A's rows; never sent by a test as another project: must never come back


@dataclass
class ProjectA:
    """Project A's rows (each kind the routes reach), named by what paths and bodies take; and tokens."""

    name: str
    keys: dict[str, str]
    tokens: dict[str, rolloutdb.IssuedToken]


def fill_project(url: str) -> ProjectA:
    name = f"a-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(url, project=name) as store:
        resources = store.resources.add({"prompt": MARKER})
        run = store.runs.create(name=f"{MARKER}-{uuid.uuid4().hex[:6]}", kind="job", status="running",
                                config={"note": MARKER})
        step = store.steps.create(run_id=run.id, number=0, metrics={"note": MARKER})
        validator = store.validators.create(name=f"{MARKER}-v", kind="equals", config={"note": MARKER})
        task = store.tasks.create(external_id=f"{MARKER}-task", input={"note": MARKER}, validator_id=validator.id,
                                  dataset="arith", split="train")
        group = store.groups.create(run_id=run.id, step=0, task_id=task.id, size=2, metadata={"note": MARKER})
        queued = store.rollouts.enqueue({"note": MARKER}, run_id=run.id, metadata={"note": MARKER})
        claim = store.rollouts.start({"note": MARKER}, worker_id=f"w-{uuid.uuid4().hex[:8]}", run_id=run.id)
        done = store.rollouts.start({"note": MARKER}, run_id=run.id)
        store.attempts.update(done.rollout.id, "latest", status="succeeded")
        store.spans.add(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s",
                        name="llm.call", attributes={"note": MARKER})
        span = store.spans.query(claim.rollout.id)[0]
        turn = store.turns.create(rollout_id=claim.rollout.id, turn_index=0, action=MARKER)
        shot = store.artifacts.put(MARKER.encode(), "image/png", turn_id=turn.id, role="screenshot")
        store.workers.update(claim.attempt.worker_id, metadata={"note": MARKER})
        store.jobs.request_pause(run.id, reason=MARKER)
        decision = store.decisions.log("memory", f"{MARKER}-memory", "insert", reason=MARKER, state={"note": MARKER},
                                       at=datetime.now(timezone.utc) - timedelta(days=30))
        signal = store.signals.add(f"{MARKER}-memory", "hit", data={"note": MARKER})
        tokens = {role: store.tokens.create(role, name=f"{MARKER}-{role}") for role in ("reader", "writer", "admin")}
    keys = {
        "runs": run.id, "steps": step.id, "groups": group.id, "validators": validator.id, "tasks": task.id,
        "rollouts": queued.id, "attempts": claim.attempt.id, "spans": span.id, "turns": turn.id,
        "resources": resources.id, "workers": claim.attempt.worker_id, "jobs": run.id,
        "tokens": tokens["admin"].token.id,
        "rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "worker_id": claim.attempt.worker_id,
        "name_or_id": run.id, "entity_id": claim.rollout.id, "entity_type": "rollout", "finished": done.rollout.id,
        "sha256": shot.sha256, "artifact": shot.sha256, "decisions": decision.id, "signals": signal.id,
    }
    return ProjectA(name, keys, tokens)


def snapshot(url: str, project: str) -> dict[str, Any]:
    """Everything of project A that a request could change, as plain data."""
    with rolloutdb.connect(url, project=project, create=False) as store:
        rows: dict[str, Any] = {
            area: [row.model_dump() for row in getattr(store, area).query(limit=None)]
            for area in ("runs", "steps", "groups", "validators", "tasks", "rollouts", "attempts", "turns",
                         "resources", "workers", "decisions", "signals")}
        rows["spans"] = [span.model_dump() for span in store.spans.query(attempt_id=None, limit=None)]
        rows["tokens"] = [token.model_dump(exclude={"last_used_at"}) for token in store.tokens.query(limit=None)]
        rows["logs"] = [event.model_dump() for run in rows["runs"] for event in store.jobs.logs(run["id"], limit=1000)]
        rows["history"] = [change.model_dump() for rollout in rows["rollouts"]
                           for change in store.history("rollout", rollout["id"])]
        rows["artifact links"] = [link.model_dump() for turn in rows["turns"]
                                  for link in store.artifacts.links(turn_id=turn["id"])]
    return rows


def path_of(operation: Operation, keys: dict[str, str]) -> str:
    """The route's path naming project A's rows: ``{id}`` by the area's first word, others by their name."""
    area = operation.path.split("/")[1]
    return re.sub(r"{([^}:]+)(:path)?}", lambda match: keys.get(match[1], keys.get(area, "x")), operation.path)


def body_of(operation: Operation, keys: dict[str, str]) -> Any:
    """A valid body for the route, aimed at project A's rows wherever the body names rows."""
    now = datetime.now(timezone.utc).isoformat()
    rollout, attempt, run = keys["rollout_id"], keys["attempt_id"], keys["runs"]
    bodies: dict[str, Any] = {
        "runs.create": {"name": f"b-{uuid.uuid4().hex[:8]}"},
        "runs.update": {"status": "completed"},
        "steps.create": {"run_id": run, "number": 1},
        "steps.update": {"status": "completed"},
        "groups.create": {"run_id": run, "step": 0},
        "groups.update": {"status": "completed"},
        "validators.save": {"name": f"b-{uuid.uuid4().hex[:8]}", "kind": "equals"},
        "validators.create": {"name": f"b-{uuid.uuid4().hex[:8]}", "kind": "equals"},
        "validators.update": {"config": {}},
        "tasks.save": [{"external_id": f"b-{uuid.uuid4().hex[:8]}", "validator_id": keys["validators"]}],
        "tasks.create": {"external_id": f"b-{uuid.uuid4().hex[:8]}", "validator_id": keys["validators"]},
        "tasks.update": {"split": "test"},
        "rollouts.enqueue_many": [{"run_id": run, "group_id": keys["groups"]}],
        "rollouts.dequeue_many": {"limit": 100},
        "rollouts.start": {"run_id": run},
        "rollouts.start_many": [{"run_id": run}],
        "rollouts.wait": {"rollout_ids": [rollout, keys["finished"], keys["rollouts"]], "timeout": 0},
        "rollouts.cancel": {"reason": "b"},
        "attempts.start": {},
        "attempts.update": {"status": "failed"},
        "attempts.update_many": [{"rollout_id": rollout, "attempt_id": attempt, "status": "failed"}],
        "rollouts.create": {"run_id": run, "task_id": keys["tasks"]},
        "rollouts.update": {"status": "cancelled"},
        "spans.add_many": [{"rollout_id": rollout, "attempt_id": attempt, "trace_id": "t", "span_id": "b",
                            "name": "b"}],
        "spans.next_sequence_ids": {"pairs": [[rollout, attempt]]},
        "turns.create": {"rollout_id": rollout, "turn_index": 1},
        "turns.update": {"reward": 1.0},
        "resources.add": {"named_resources": {"prompt": "b"}, "id": keys["resources"]},
        "resources.update": {"named_resources": {"prompt": "b"}},
        "workers.heartbeat": {"stats": {"b": 1}},
        "workers.update": {"metadata": {}},
        "jobs.request_pause": {"reason": "b"}, "jobs.request_resume": {}, "jobs.request_cancel": {},
        "jobs.begin": {"name": f"b-{uuid.uuid4().hex[:8]}"}, "jobs.write": {"progress": 1.0},
        "spans.next_sequence_ids_across_attempts": {"pairs": [[rollout, attempt]]},
        "recording.apply": [{"op": "rollout.end", "id": rollout, "status": "succeeded"},
                            {"op": "run.end", "session": "s", "run": run, "status": "completed"},
                            {"op": "turn", "id": uuid.uuid4().hex, "rollout_id": rollout, "turn_index": 9,
                             "created_at": now}],
        "purge": {"keep_last": 0},
        "tokens.create": {"role": "admin"},
        "artifacts.link": {"turn_id": keys["turns"], "role": "before"},
        "artifacts.link_many": [{"artifact": keys["sha256"], "turn_id": keys["turns"], "role": "before"}],
        "artifacts.gc": {"grace": 0},
        "scripts.record": {"rollout_id": keys["finished"], "name": "b"},
        "scripts.report": {"success": True, "seconds": 1.0},
        "decisions.declare": {"domain": "retrieval", "actions": ["keep"], "signals": ["click"]},
        "decisions.log": {"domain": "memory", "subject_id": "b", "action": "insert"},
        "decisions.log_many": [{"domain": "memory", "subject_id": "b", "action": "insert"}],
        "signals.add": {"subject_id": "b", "kind": "hit"},
        "signals.add_many": [{"subject_id": "b", "kind": "hit"}],
        "rewards.evaluate": {"domain": "memory"},
        "run_flywheel": {"domain": "memory"},
        "advise": {"domain": "memory", "state": {"kind": "fact"}},
        "policies.activate": {"domain": "memory", "version": 1},
        "policies.rollback": {"domain": "memory"},
    }
    return bodies.get(operation.call)


def params_of(operation: Operation, keys: dict[str, str]) -> dict[str, Any]:
    return {"compare_runs": {"a": keys["runs"], "b": keys["runs"]},
            "tasks.load": {"dataset": "arith", "split": "train"},
            "spans.query": {"rollout_id": keys["rollout_id"], "attempt_id": "all"},
            "events.query": {"run": keys["runs"]},
            "artifacts.links": {"turn_id": keys["turns"]},
            "scripts.best": {"task": keys["tasks"]}}.get(operation.call, {})


def request(client: httpx.Client, operation: Operation, keys: dict[str, str], token: str) -> httpx.Response:
    body = body_of(operation, keys)
    return client.request(operation.method, path_of(operation, keys), params=params_of(operation, keys),
                          headers={"Authorization": f"Bearer {token}"},
                          **({"json": body} if body is not None else {}))


def test_a_token_of_another_project_reaches_none_of_its_rows_on_any_route(auth_server):
    a = fill_project(auth_server.url)
    with rolloutdb.connect(auth_server.url, project=f"b-{uuid.uuid4().hex[:8]}") as b_store:
        b_admin = b_store.tokens.create("admin").secret  # B's own admin: no role keeps it from any route
    before = snapshot(auth_server.url, a.name)
    answers = {}
    with auth_server.client() as client:
        for operation in ROUTES:
            response = request(client, operation, a.keys, b_admin)
            answers[f"{operation.method} {operation.path}"] = response.status_code
            assert response.status_code < 500, response.text
            assert MARKER not in response.text, f"{operation.method} {operation.path} leaked: {response.text[:500]}"
            for secret in (issued.secret for issued in a.tokens.values()):
                assert secret not in response.text
    assert snapshot(auth_server.url, a.name) == before, "a request with project B's token changed project A"
    # The requests were valid ones: answered as B's own (200, 201, 204) or as rows B does not have (404), not
    # refused for their form, which would prove nothing.
    refused = {route: status for route, status in answers.items() if status not in (200, 201, 204, 404, 409)}
    assert not refused, refused
    assert sum(status == 404 for status in answers.values()) >= 30  # most routes named one of A's rows


def test_a_reader_can_write_nothing(auth_server):
    a = fill_project(auth_server.url)
    before = snapshot(auth_server.url, a.name)
    reader, writer = a.tokens["reader"].secret, a.tokens["writer"].secret
    with auth_server.client() as client:
        for operation in ROUTES:
            response = request(client, operation, a.keys, reader)
            if operation.required_role == "reader":
                assert response.status_code != 403, f"{operation.method} {operation.path}: {response.text}"
                continue
            message = error(response, 403, "PermissionDeniedError")
            assert f"role is reader: this needs {operation.required_role}" in message
        assert snapshot(auth_server.url, a.name)["rollouts"] == before["rollouts"]  # the reads changed nothing
        admin_only = [operation for operation in ROUTES if operation.required_role == "admin"]
        assert {operation.call for operation in admin_only} >= {"tokens.create", "tokens.revoke", "tokens.query",
                                                                  "purge"}
        for operation in admin_only:
            error(request(client, operation, a.keys, writer), 403, "PermissionDeniedError")
    after = snapshot(auth_server.url, a.name)
    assert {area: rows for area, rows in after.items() if area != "tokens"} == \
           {area: rows for area, rows in before.items() if area != "tokens"}
    assert after["tokens"] == before["tokens"]


def test_revoked_and_expired_tokens_are_refused_at_once_on_every_route(auth_server):
    a = fill_project(auth_server.url)
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    with rolloutdb.connect(auth_server.url, project=a.name, clock=lambda: past) as earlier:
        expired = earlier.tokens.create("admin", expires=timedelta(minutes=5))  # expired 55 minutes ago
    with rolloutdb.connect(auth_server.url, project=a.name) as store, auth_server.client() as client:
        revoked = store.tokens.create("admin")
        assert ok(client.get("/runs", headers={"Authorization": f"Bearer {revoked.secret}"}))["total"] == 1
        store.tokens.revoke(revoked.token.id)  # straight in the database: the server holds no copy
        refusals = {"revoked": revoked.secret, "expired": expired.secret, "unknown": revoked.secret[:-4] + "AAAA",
                    "malformed": "not-a-token"}
        before = snapshot(auth_server.url, a.name)
        for operation in ROUTES:
            for why, secret in refusals.items():
                message = error(request(client, operation, a.keys, secret), 401, "AuthenticationError")
                assert why in message or why in ("unknown", "malformed"), message
            response = client.request(operation.method, path_of(operation, a.keys))
            assert error(response, 401, "AuthenticationError").startswith("this server requires an API token")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert snapshot(auth_server.url, a.name) == before
        # Refused before the body is read: a stranger's malformed JSON is not the server's business.
        response = client.post("/runs", content=b"{not json", headers={"Content-Type": "application/json"})
        error(response, 401, "AuthenticationError")
    assert ok(httpx.get(auth_server.base + "/healthz")) == {"status": "ok"}
    assert ok(httpx.get(auth_server.base + "/readyz")) == {"status": "ok"}
    schema = ok(httpx.get(auth_server.base + "/openapi.json"))  # /docs offers to send a token
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/api/v1/runs"]["get"]["security"] == [{"HTTPBearer": []}]


def test_the_token_chooses_the_project_and_a_header_naming_another_is_refused(auth_server):
    a = fill_project(auth_server.url)
    writer = {"Authorization": f"Bearer {a.tokens['writer'].secret}"}
    with auth_server.client() as client:
        assert ok(client.get("/project", headers=writer))["name"] == a.name
        assert ok(client.get("/project", headers={**writer, "RolloutDB-Project": a.name}))["name"] == a.name
        message = error(client.get("/runs", headers={**writer, "RolloutDB-Project": "other"}), 403,
                        "PermissionDeniedError")
        assert message == f"this API token is for project {a.name!r}, not 'other'"


def test_the_secret_is_shown_once_and_never_stored_or_listed(auth_server, tmp_path):
    a = fill_project(auth_server.url)
    admin = {"Authorization": f"Bearer {a.tokens['admin'].secret}"}
    with auth_server.client() as client:
        issued = ok(client.post("/tokens", headers=admin, json={"role": "reader", "name": "ci", "expires": 3600}), 201)
        secret = issued["secret"]
        assert ok(client.get("/project", headers={"Authorization": f"Bearer {secret}"}))["name"] == a.name
        listed = client.get("/tokens", headers=admin, params={"limit": 1000})
        found = client.get(f"/tokens/{issued['token']['id']}", headers=admin)
    hashes = []
    engine = sqlalchemy.create_engine(rolloutdb.config.resolve_url(auth_server.url))
    try:
        with engine.connect() as connection:
            for table in ("api_tokens",):
                for row in connection.execute(sqlalchemy.text(f"SELECT * FROM {table}")).mappings():
                    assert secret not in json.dumps({k: str(v) for k, v in row.items()})
                    hashes.append(row["token_hash"])
    finally:
        engine.dispose()
    cli = subprocess.run([sys.executable, "-m", "rolloutdb.cli", "tokens", "ls", "--url", auth_server.url,
                          "--project", a.name, "--json"], capture_output=True, text=True, env=server_environment(),
                         timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert {json.loads(line)["id"] for line in cli.stdout.splitlines()} >= {issued["token"]["id"]}
    for shown in (listed.text, found.text, cli.stdout):
        assert secret not in shown and not any(digest in shown for digest in hashes) and "token_hash" not in shown
    assert len(hashes) >= 4 and all(re.fullmatch("[0-9a-f]{64}", digest) for digest in hashes)


def test_the_remote_client_sends_its_token(auth_server, monkeypatch):
    a = fill_project(auth_server.url)
    with pytest.raises(rolloutdb.AuthenticationError, match="requires an API token"):
        rolloutdb.connect(auth_server.base)
    with rolloutdb.connect(auth_server.base, token=a.tokens["reader"].secret) as store:
        assert (store.project, store.runs.get(a.keys["runs"]).id) == (a.name, a.keys["runs"])
        with pytest.raises(rolloutdb.PermissionDeniedError, match="role is reader"):
            store.runs.create(name="nope")
    monkeypatch.setenv("ROLLOUTDB_TOKEN", a.tokens["admin"].secret)
    with rolloutdb.connect(auth_server.base) as store:
        made = store.tokens.create("writer", name="from-the-client", expires=timedelta(days=1))
        assert store.tokens.get(made.token.id).name == "from-the-client"
        assert store.tokens.revoke(made.token.id).revoked_at is not None
    with pytest.raises(rolloutdb.AuthenticationError, match="revoked"):
        rolloutdb.connect(auth_server.base, token=made.secret)
    with pytest.raises(rolloutdb.PermissionDeniedError, match="for project"):
        rolloutdb.connect(auth_server.base, project="someone-else")


def test_the_cli_through_a_server_with_a_token(auth_server, tmp_path):
    a = fill_project(auth_server.url)

    def cli(*arguments: str, **environment: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rolloutdb.cli", *arguments], capture_output=True, text=True,
                              env={**server_environment(), **environment}, timeout=60, cwd=tmp_path)

    listed = cli("runs", "ls", "--url", auth_server.base, "--token", a.tokens["reader"].secret, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [a.keys["runs"]]
    from_env = cli("runs", "ls", "--url", auth_server.base, "--json", ROLLOUTDB_TOKEN=a.tokens["reader"].secret)
    assert from_env.stdout == listed.stdout
    refused = cli("runs", "ls", "--url", auth_server.base)
    assert refused.returncode == 1 and "requires an API token" in refused.stderr and "Traceback" not in refused.stderr
    made = cli("tokens", "create", "--role", "reader", "--url", auth_server.base, "--token", a.tokens["admin"].secret,
               "--json")
    assert made.returncode == 0, made.stderr
    secret = json.loads(made.stdout)["secret"]
    token_id = json.loads(made.stdout)["token"]["id"]
    revoked = cli("tokens", "revoke", token_id, "--url", auth_server.base, "--token", a.tokens["admin"].secret)
    assert revoked.returncode == 0 and f"Revoked token {token_id}" in revoked.stdout, revoked.stderr
    assert "revoked" in cli("runs", "ls", "--url", auth_server.base, "--token", secret).stderr


def test_the_event_stream_takes_the_token_and_its_project(auth_server):
    """``GET /events`` is not in the route table: its token and project are checked when it opens."""
    a = fill_project(auth_server.url)
    with rolloutdb.connect(auth_server.url, project=f"b-{uuid.uuid4().hex[:8]}") as b_store:
        b_reader = {"Authorization": f"Bearer {b_store.tokens.create('reader').secret}"}
    a_reader = {"Authorization": f"Bearer {a.tokens['reader'].secret}"}
    with auth_server.client() as client:
        error(client.get("/events", params={"timeout": 1}), 401, "AuthenticationError")
        error(client.get("/events", params={"run": a.keys["runs"]}, headers=b_reader), 404, "NotFoundError")
        seen_by_b = client.get("/events", params={"after": 0, "timeout": 1}, headers=b_reader)
        assert seen_by_b.status_code == 200 and MARKER not in seen_by_b.text and a.keys["runs"] not in seen_by_b.text
        seen_by_a = client.get("/events", params={"after": 0, "timeout": 1, "topic": "run"}, headers=a_reader)
        assert seen_by_a.status_code == 200 and a.keys["runs"] in seen_by_a.text


def test_an_open_event_stream_ends_once_its_token_is_revoked_or_expires(auth_server):
    a = fill_project(auth_server.url)

    def expiring_soon():  # made just before its stream opens: on a busy machine the revoked case takes a while
        soon = datetime.now(timezone.utc) - timedelta(minutes=5) + timedelta(seconds=4)
        with rolloutdb.connect(auth_server.url, project=a.name, clock=lambda: soon) as earlier:
            return earlier.tokens.create("reader", expires=timedelta(minutes=5))  # expires 4 s from now

    with rolloutdb.connect(auth_server.url, project=a.name) as store, auth_server.client() as client:
        for make_token, why in ((lambda: store.tokens.create("reader"), "revoked"), (expiring_soon, "expired")):
            token = make_token()
            headers = {"Authorization": f"Bearer {token.secret}"}
            with client.stream("GET", "/events", params={"timeout": 30}, headers=headers) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                assert next(lines).startswith(": connected")
                if why == "revoked":
                    store.tokens.revoke(token.token.id)  # straight in the database
                began = time.monotonic()
                rest = list(lines)  # the stream ends by itself, long before its 30 s
            assert time.monotonic() - began < 15
            assert "event: error" in rest, rest
            body = json.loads(rest[rest.index("event: error") + 1].removeprefix("data: "))  # the last event
            assert body["error"]["type"] == "AuthenticationError" and why in body["error"]["message"]


def test_the_remote_follow_raises_once_its_token_is_revoked(auth_server):
    a = fill_project(auth_server.url)
    with rolloutdb.connect(auth_server.url, project=a.name) as store:
        reader = store.tokens.create("reader")
        with rolloutdb.connect(auth_server.base, token=reader.secret) as remote:
            follower = remote.events.follow(topics=["rollout"], timeout=30)
            store.rollouts.enqueue("x")
            assert next(follower).topic == "rollout"  # the stream is open
            store.tokens.revoke(reader.token.id)
            began = time.monotonic()
            with pytest.raises(rolloutdb.AuthenticationError, match="revoked"):
                list(follower)
            assert time.monotonic() - began < 15


def test_the_project_answer_names_the_tokens_role(auth_server, server):
    a = fill_project(auth_server.url)
    with auth_server.client() as client:
        for role, issued in a.tokens.items():
            assert ok(client.get("/project", headers={"Authorization": f"Bearer {issued.secret}"}))["role"] == role
    with server.client() as client:
        assert ok(client.get("/project"))["role"] is None  # without --auth: no token, nothing refused


def test_the_dashboard_cookie_carries_a_token_for_reads_only(auth_server):
    """The dashboard's browser sends its token as a cookie where it cannot set a header (images, the event
    stream): taken for GET, never for a write (a page elsewhere could make the browser send it), and a header
    wins over it."""
    a = fill_project(auth_server.url)
    reader, writer = a.tokens["reader"].secret, a.tokens["writer"].secret
    with rolloutdb.connect(auth_server.url, project=a.name) as store:
        before = store.runs.get(a.keys["runs"])
    with httpx.Client(base_url=auth_server.base + "/api/v1", timeout=30) as client:
        assert ok(client.get("/project", cookies={"rolloutdb_token": reader}))["role"] == "reader"
        with client.stream("GET", "/events", params={"timeout": 1}, cookies={"rolloutdb_token": reader}) as events:
            assert events.status_code == 200
        error(client.post(f"/jobs/{a.keys['runs']}/resume", json={}, cookies={"rolloutdb_token": writer}), 401,
              "AuthenticationError")
        error(client.get("/runs", cookies={"rolloutdb_token": "rdb_nobody_x"}), 401, "AuthenticationError")
        answer = client.get("/project", cookies={"rolloutdb_token": reader},
                            headers={"Authorization": f"Bearer {a.tokens['admin'].secret}"})
        assert ok(answer)["role"] == "admin"
    with rolloutdb.connect(auth_server.url, project=a.name) as store:
        assert store.runs.get(a.keys["runs"]) == before  # the cookie's write changed nothing
