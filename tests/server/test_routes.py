"""Every route of /api/v1 answers its happy path, over a real server on SQLite and on PostgreSQL; the last test
checks that the tests above called every route of the route table."""

from __future__ import annotations

import re
from collections import defaultdict

import httpx
import pytest

from rolloutdb.server import ROUTES
from server.servers import error, ok, unique

called: dict[str, set[tuple[str, str]]] = defaultdict(set)  # server base -> (method, path) requested


@pytest.fixture
def api(server):
    def remember(request: httpx.Request) -> None:
        called[server.base].add((request.method, request.url.path))

    with httpx.Client(base_url=server.base + "/api/v1", timeout=30, event_hooks={"request": [remember]}) as client:
        yield client


def test_health_and_docs(server):
    assert ok(httpx.get(server.base + "/healthz")) == {"status": "ok"}
    assert ok(httpx.get(server.base + "/readyz")) == {"status": "ok"}
    schema = ok(httpx.get(server.base + "/openapi.json"))
    assert {"/api/v1/runs", "/api/v1/rollouts/dequeue", "/api/v1/spans"} <= set(schema["paths"])
    # The records are the schema's: a run's fields are documented as the record has them.
    assert "name" in schema["components"]["schemas"]["Run"]["properties"]
    assert httpx.get(server.base + "/docs").status_code == 200


def test_runs_steps_groups_history_compare(api):
    name = unique("train") + "/eval@1"  # a slash in a run name, as eval runs have
    run = ok(api.post("/runs", json={"name": name, "config": {"lr": 0.1}, "total_steps": 2}), 201)
    assert ok(api.get(f"/runs/{name}"))["id"] == run["id"]
    assert ok(api.get(f"/runs/{run['id'][:-4]}"))["id"] == run["id"]  # a unique start of the id
    assert ok(api.patch(f"/runs/{name}", json={"status": "running", "reason": "go"}))["status"] == "running"
    page = ok(api.get("/runs", params={"name": name}))
    assert (page["total"], [item["id"] for item in page["items"]]) == (1, [run["id"]])

    step = ok(api.post("/steps", json={"run_id": run["id"], "number": 0}), 201)
    assert ok(api.get(f"/steps/{step['id']}"))["number"] == 0
    assert ok(api.patch(f"/steps/{step['id']}", json={"status": "running"}))["status"] == "running"
    assert ok(api.get("/steps", params={"run_id": run["id"]}))["total"] == 1

    validator = ok(api.post("/validators", json={"name": unique("exact"), "kind": "equals"}), 201)
    assert ok(api.get(f"/validators/{validator['id']}"))["kind"] == "equals"
    assert ok(api.patch(f"/validators/{validator['id']}", json={"config": {"strict": True}}))["config"] == {"strict": True}
    assert ok(api.get("/validators", params={"name": validator["name"]}))["total"] == 1
    task = ok(api.post("/tasks", json={"external_id": unique("add-7"), "input": {"target": 7},
                                       "validator_id": validator["id"], "tags": ["easy"]}), 201)
    assert ok(api.get(f"/tasks/{task['id']}"))["tags"] == ["easy"]
    assert ok(api.patch(f"/tasks/{task['id']}", json={"split": "train"}))["split"] == "train"
    assert ok(api.get("/tasks", params={"external_id": task["external_id"]}))["total"] == 1

    group = ok(api.post("/groups", json={"run_id": run["id"], "step": 0, "task_id": task["id"], "size": 2}), 201)
    assert ok(api.get(f"/groups/{group['id']}"))["size"] == 2
    assert ok(api.patch(f"/groups/{group['id']}", json={"status": "running"}))["status"] == "running"
    assert ok(api.get("/groups", params={"run_id": run["id"]}))["total"] == 1
    for reward in (1.0, 0.0):
        rollout = ok(api.post("/rollouts", json={"run_id": run["id"], "step": 0, "group_id": group["id"],
                                                 "task_id": task["id"], "status": "running"}), 201)
        ok(api.patch(f"/rollouts/{rollout['id']}", json={"status": "succeeded", "reward": reward,
                                                          "success": reward > 0}))
        turn = ok(api.post("/turns", json={"rollout_id": rollout["id"], "turn_index": 0, "action": "+7"}), 201)
        assert ok(api.patch(f"/turns/{turn['id']}", json={"reward": reward}))["reward"] == reward
        assert ok(api.get(f"/turns/{turn['id']}"))["action"] == "+7"
    assert ok(api.get("/turns", params={"rollout_id": rollout["id"]}))["total"] == 1
    assert ok(api.get(f"/groups/{group['id']}"))["success_count"] == 1  # the store's statistics
    rewards = ok(api.get("/rollouts", params={"group_id": group["id"], "sort": "reward", "order": "desc"}))
    assert [rollout["reward"] for rollout in rewards["items"]] == [1.0, 0.0]

    history = ok(api.get(f"/history/run/{name}"))
    assert [(change["old_status"], change["new_status"]) for change in history] == [(None, "pending"),
                                                                                 ("pending", "running")]
    other = ok(api.post("/runs", json={"name": unique("baseline")}), 201)
    comparison = ok(api.get("/compare", params={"a": other["name"], "b": name}))
    assert comparison["overall"]["b"]["success_rate"] == 0.5


def test_queue_attempts_spans_workers_resources(api):
    resources = ok(api.post("/resources", json={"named_resources": {"prompt": "be careful"}}), 201)
    assert ok(api.get("/resources/latest"))["id"] == resources["id"]
    assert ok(api.put(f"/resources/{resources['id']}", json={"named_resources": {"prompt": "v2"}}))["version"] == 2
    assert ok(api.get(f"/resources/{resources['id']}"))["resources"] == {"prompt": "v2"}
    assert ok(api.get("/resources", params={"id": resources["id"]}))["total"] == 1

    run = ok(api.post("/runs", json={"name": unique("queue")}), 201)
    enqueued = ok(api.post("/rollouts/enqueue", json=[
        {"run_id": run["id"], "input": {"question": i},
         "config": {"max_attempts": 2, "retry_condition": ["failed"]}} for i in range(3)]), 201)
    assert [rollout["status"] for rollout in enqueued] == ["queuing"] * 3
    assert enqueued[0]["resources_id"] == resources["id"]  # the latest resources
    worker = unique("gpu")
    claims = []
    while len(claims) < 3:  # other tests share the queue: take until ours are all claimed
        batch = ok(api.post("/rollouts/dequeue", json={"limit": 3, "worker_id": worker}))
        assert batch, "the queue ran dry before our rollouts were claimed"
        claims += [claim for claim in batch if claim["rollout"]["run_id"] == run["id"]]
    first = claims[0]
    rollout_id, attempt_id = first["rollout"]["id"], first["attempt"]["id"]
    assert ok(api.post(f"/rollouts/{rollout_id}/attempts/latest/heartbeat"))["status"] == "running"
    spans = ok(api.post("/spans", json=[{"rollout_id": rollout_id, "attempt_id": attempt_id, "trace_id": "t",
                                         "span_id": f"s{i}", "name": "llm.call", "attributes": {"tokens": i}}
                                        for i in range(3)]), 201)
    assert [span["sequence_id"] for span in spans] == [1, 2, 3]
    page = ok(api.get("/spans", params={"rollout_id": rollout_id, "limit": 2, "sort": "sequence_id",
                                        "order": "desc"}))
    assert (page["total"], [span["span_id"] for span in page["items"]]) == (3, ["s2", "s1"])
    assert ok(api.get(f"/spans/{spans[0]['id']}"))["name"] == "llm.call"
    failed = ok(api.patch(f"/rollouts/{rollout_id}/attempts/{attempt_id}", json={"status": "failed",
                                                                                "reason": "tool crashed"}))
    assert failed["status"] == "failed"
    assert ok(api.get(f"/rollouts/{rollout_id}"))["status"] == "requeuing"  # retried: failed is in its condition
    second = ok(api.post(f"/rollouts/{rollout_id}/attempts", json={"worker_id": worker}), 201)
    assert second["attempt"]["sequence"] == 2
    assert ok(api.get("/attempts", params={"rollout_id": rollout_id}))["total"] == 2
    assert ok(api.get(f"/attempts/{attempt_id}"))["status"] == "failed"
    assert ok(api.get("/spans", params={"rollout_id": rollout_id, "attempt_id": "all"}))["total"] == 3
    assert ok(api.get("/spans", params={"rollout_id": rollout_id}))["total"] == 0  # the latest attempt's

    assert ok(api.post(f"/rollouts/{claims[1]['rollout']['id']}/cancel", json={"reason": "enough"}))["status"] \
        == "cancelled"
    ok(api.patch(f"/rollouts/{claims[2]['rollout']['id']}/attempts/latest", json={"status": "succeeded"}))
    finished = ok(api.post("/rollouts/wait", json={"rollout_ids": [c["rollout"]["id"] for c in claims[1:]],
                                                   "timeout": 5}))
    assert sorted(rollout["status"] for rollout in finished) == ["cancelled", "succeeded"]
    started = ok(api.post("/rollouts/start", json={"input": "direct", "worker_id": worker}), 201)
    assert (started["rollout"]["status"], started["attempt"]["worker_id"]) == ("preparing", worker)
    several = ok(api.post("/rollouts/start-many", params={"worker_id": worker}, json=[{"input": 1}, {"input": 2}]),
                 201)
    assert [(c["rollout"]["input"], c["attempt"]["worker_id"]) for c in several] == [(1, worker), (2, worker)]
    changed = ok(api.post("/attempts/update-many", params={"reason": "both"}, json=[
        {"rollout_id": several[0]["rollout"]["id"], "attempt_id": several[0]["attempt"]["id"], "status": "running"},
        {"rollout_id": several[1]["rollout"]["id"], "status": "running", "last_heartbeat_at": "2026-01-02T03:04:05Z"}]))
    assert [(a["id"], a["status"]) for a in changed] == [(c["attempt"]["id"], "running") for c in several]
    assert changed[1]["last_heartbeat_at"].startswith("2026-01-02T03:04:05")

    beat = ok(api.post(f"/workers/{worker}/heartbeat", json={"stats": {"gpu": 0.5}}))
    assert beat["heartbeat_stats"] == {"gpu": 0.5}
    assert ok(api.patch(f"/workers/{worker}", json={"metadata": {"host": "a"}}))["metadata"] == {"host": "a"}
    assert ok(api.get(f"/workers/{worker}"))["last_heartbeat_at"] == beat["last_heartbeat_at"]
    assert ok(api.get("/workers", params={"id": worker}))["total"] == 1
    summary = ok(api.get("/queue"))
    assert worker in [activity["worker"]["id"] for activity in summary["workers"]]
    assert ok(api.post("/purge", json={"older_than": 3600, "dry_run": True})) == {
        "rollouts": 0, "attempts": 0, "spans": 0, "turns": 0, "events": 0}


def test_a_span_batch_that_prefers_a_minimal_answer_gets_only_what_the_store_made(api):
    """Prefer: return=minimal (RFC 7240), as the remote client sends it for a batch of spans: for each new span, in
    the order of the full answer, its place in the batch and the fields the store made; a duplicate is left out.
    Without the header the answer is the spans whole."""
    claim = ok(api.post("/rollouts/start", json={"input": "x"}), 201)
    fields = {"rollout_id": claim["rollout"]["id"], "attempt_id": "latest", "trace_id": "t", "name": "llm.call"}
    own_id = unique("span")
    whole = ok(api.post("/spans", json=[{**fields, "span_id": "s1", "sequence_id": 1}]), 201)
    response = api.post("/spans", json=[{**fields, "span_id": "again", "sequence_id": 1},
                                        {**fields, "span_id": "s2", "attributes": {"tokens": 2}},
                                        {**fields, "span_id": "s3", "id": own_id}],
                        headers={"Prefer": "return=minimal"})
    made = ok(response, 201)
    assert response.headers["Preference-Applied"] == "return=minimal"
    assert made["made"] == ["id", "project_id", "attempt_id", "sequence_id", "created_at"]
    assert [(place, attempt_id, sequence_id) for place, _, _, attempt_id, sequence_id, _ in made["rows"]] == [
        (1, claim["attempt"]["id"], 2), (2, claim["attempt"]["id"], 3)]
    assert made["rows"][1][1] == own_id
    stored = ok(api.get("/spans", params={"rollout_id": claim["rollout"]["id"], "sort": "sequence_id"}))["items"]
    assert [[span[name] for name in made["made"]] for span in stored[1:]] == [row[1:] for row in made["rows"]]
    assert stored[0] == whole[0] and stored[1]["attributes"] == {"tokens": 2}


def test_jobs(api):
    name = unique("job")
    run = ok(api.post("/runs", json={"name": name, "kind": "job", "status": "running"}), 201)
    ok(api.patch(f"/runs/{run['id']}", json={"heartbeat_at": run["created_at"]}))  # a live job: just heard of
    job = ok(api.get(f"/jobs/{name}", params={"stale_after": 3600}))
    assert (job["run"]["id"], job["stale"]) == (run["id"], False)
    assert name in [item["name"] for item in ok(api.get("/jobs", params={"kind": "job", "limit": 1000}))["items"]]
    assert ok(api.post(f"/jobs/{name}/pause", json={"reason": "lunch"}))["control"] == "pause"
    assert [row["message"] for row in ok(api.get(f"/jobs/{name}/logs"))] == ["pause requested: lunch"]
    ok(api.patch(f"/runs/{name}", json={"status": "paused", "control": None}))  # what the job does at a checkpoint
    assert ok(api.post(f"/jobs/{name}/resume", json={}))["control"] == "resume"
    assert ok(api.post(f"/jobs/{name}/cancel", json={}))["status"] == "cancelled"
    assert ok(api.delete(f"/jobs/{name}"), 204) is None
    error(api.get(f"/jobs/{name}"), 404, "NotFoundError")

    # A job's own side, as Job sends it: start, writes (answered with what it must do), its end.
    after = ok(api.get("/events/latest"))
    started = ok(api.post("/jobs/start", json={"name": unique("job"), "stages": [["only", 100]]}))
    name = started["run"]["name"]
    assert (started["resumed"], started["run"]["status"]) == (False, "running")
    assert ok(api.post(f"/jobs/{name}/write", json={"progress": 50.0, "stage": "only", "logs": [
        {"time": "2026-12-04T10:00:00Z", "level": "info", "message": "half"}]})) is None
    ok(api.post(f"/jobs/{name}/pause", json={}))
    assert ok(api.post(f"/jobs/{name}/write", json={"progress": 60.0, "stage": "only"})) == "pause"
    assert ok(api.post(f"/jobs/{name}/write", json={"progress": 60.0, "stage": "only", "status": "paused"})) is None
    assert ok(api.get(f"/jobs/{name}"))["run"]["status"] == "paused"
    error(api.post(f"/jobs/{name}/write", json={"progress": 60.0, "status": "exploded"}), 422, "InvalidInputError")
    events = ok(api.get("/events/past", params={"after": after, "run": name, "topics": ["log", "job"]}))
    assert [event["data"]["message"] for event in events if event["topic"] == "log"] == [
        "started", "half", "pause requested"]
    assert events[-1]["topic"] == "job" and events[-1]["data"]["status"] == "paused"


def test_catalog_sequence_ids_recording_and_health(api):
    dataset = unique("arith")
    validator = ok(api.post("/validators/save", json={"name": unique("equals"), "kind": "equals"}))
    assert ok(api.post("/validators/save", json={"name": validator["name"], "kind": "other"}))["id"] == validator["id"]
    tasks = [{"external_id": unique("task"), "dataset": dataset, "tags": tags,
              "validator": {"name": validator["name"], "kind": "equals"}} for tags in (["easy"], ["hard"])]
    saved = ok(api.post("/tasks/save", json=tasks))
    assert ok(api.post("/tasks/save", json=tasks)) == saved  # saving again changes nothing
    assert {task["validator_id"] for task in saved} == {validator["id"]}
    assert [task["id"] for task in ok(api.get("/tasks/load", params={"dataset": dataset, "tags": "easy"}))] == [
        saved[0]["id"]]

    claim = ok(api.post("/rollouts/start", json={"input": "by hand"}), 201)
    rollout_id = claim["rollout"]["id"]
    assert ok(api.get(f"/rollouts/{rollout_id}/attempts/latest"))["id"] == claim["attempt"]["id"]
    assert ok(api.post("/spans/sequence-ids", json={"pairs": [[rollout_id, "latest"]] * 2})) == [1, 2]
    assert ok(api.post("/spans/sequence-ids/across-attempts", json={"pairs": [[rollout_id, "latest"]]})) == [3]
    assert isinstance(ok(api.post("/check-health")), int)

    name, session = unique("recorded"), unique("session")
    result = ok(api.post("/recording", params={"heartbeat": "false"}, json=[
        {"op": "run.start", "id": unique("run-id"), "name": name, "session": session,
         "started_at": "2026-01-01T00:00:00Z"},
        {"op": "no.such.operation"}]))
    assert result["applied"] == 1 and [rejection["index"] for rejection in result["rejected"]] == [1]
    assert ok(api.get(f"/runs/{name}"))["status"] == "running"


def test_tokens(api):
    # Without --auth the server takes no token, but its project's tokens are managed through it all the same.
    name = unique("ci")
    issued = ok(api.post("/tokens", json={"role": "writer", "name": name, "expires": "P30D"}), 201)
    token = issued["token"]
    assert issued["secret"].startswith("rdb_") and (token["role"], token["name"]) == ("writer", name)
    assert "token_hash" not in token and issued["secret"] not in str(ok(api.get("/tokens")))
    assert ok(api.get("/tokens", params={"name": name}))["items"] == [token]
    assert ok(api.get(f"/tokens/{token['id']}")) == token
    revoked = ok(api.post(f"/tokens/{token['id']}/revoke"))
    assert revoked["revoked_at"] is not None and revoked["id"] == token["id"]
    assert ok(api.post(f"/tokens/{token['id']}/revoke")) == revoked  # revoking again changes nothing


def test_scripts_and_summary(api):
    task = ok(api.post("/tasks", json={"external_id": unique("wifi-on")}), 201)
    rollout_id = ok(api.post("/rollouts/start", json={"task_id": task["id"]}), 201)["rollout"]["id"]
    ok(api.post("/turns", json={"rollout_id": rollout_id, "turn_index": 0, "action": {"type": "tap", "x": 1, "y": 2}}), 201)
    ok(api.patch(f"/rollouts/{rollout_id}/attempts/latest", json={"status": "succeeded"}))
    script = ok(api.post("/scripts/record", json={"rollout_id": rollout_id, "name": "main", "device": "pixel"}), 201)
    assert (script["actions"], script["version"], script["active"]) == ([{"type": "tap", "x": 1, "y": 2}], 1, True)
    assert ok(api.post("/scripts/record", json={"rollout_id": rollout_id, "name": "main"}), 201) == script
    assert ok(api.post(f"/scripts/{script['id']}/activate"))["active"] is True
    reported = ok(api.post(f"/scripts/{script['id']}/report", json={"success": True, "seconds": 2.5}))
    assert (reported["replay_count"], reported["success_count"], reported["mean_execution_seconds"]) == (1, 1, 2.5)
    assert ok(api.get("/scripts/best", params={"task": task["external_id"]}))["id"] == script["id"]
    assert [s["id"] for s in ok(api.get("/scripts/list", params={"task": task["id"], "active": "true"}))] == [
        script["id"]]
    assert ok(api.get("/scripts", params={"task_id": task["id"]}))["total"] == 1
    assert ok(api.get(f"/scripts/{script['id'][:-4]}"))["id"] == script["id"]
    assert "success" in error(api.post(f"/scripts/{script['id']}/report", json={"success": 1, "seconds": 1}),
                              422, "InvalidInputError")
    rows = ok(api.get("/summary", params={"by": "task"}))
    assert {"key": task["external_id"], "rollouts": 1, "finished": 1, "success_rate": 1.0}.items() <= next(
        row for row in rows if row["key"] == task["external_id"]).items()


def test_decisions_signals_and_rewards(api):
    domain = unique("retrieval").replace("/", "-")
    declared = ok(api.post("/decisions/domains", json={"domain": domain, "actions": ["keep", "drop"],
                                                       "signals": ["click"]}))
    assert declared == {"name": domain, "actions": ["keep", "drop"], "signals": ["click"]}
    assert domain in [d["name"] for d in ok(api.get("/decisions/domains"))]
    subject = unique("mem")
    logged = ok(api.post("/decisions/log", json={"domain": "memory", "subject_id": subject, "action": "insert",
                                                 "state": {"length": 3}, "propensity": 0.5,
                                                 "at": "2026-11-01T00:00:00+00:00"}), 201)
    assert (logged["action"], logged["created_at"]) == ("insert", "2026-11-01T00:00:00Z")
    batch = ok(api.post("/decisions/batch", json=[{"domain": "memory", "subject_id": subject, "action": "delete",
                                                   "at": "2026-11-02T00:00:00+00:00"}]), 201)
    assert [d["action"] for d in batch] == ["delete"]
    assert "unknown action 'merge'" in error(api.post("/decisions/log", json={
        "domain": "memory", "subject_id": subject, "action": "merge"}), 422, "NotDeclaredError")
    assert [d["action"] for d in ok(api.get("/decisions/list", params={"subject_id": subject}))] == ["delete", "insert"]
    assert ok(api.get("/decisions", params={"subject_id": subject}))["total"] == 2
    assert ok(api.get(f"/decisions/{logged['id']}"))["state"] == {"length": 3}
    hit = ok(api.post("/signals/add", json={"subject_id": subject, "kind": "hit",
                                            "at": "2026-11-02T00:00:00+00:00"}), 201)
    assert ok(api.post("/signals/batch", json=[{"subject_id": subject, "kind": "quality", "value": 0.8}]), 201)
    assert ok(api.get("/signals", params={"subject_id": subject}))["total"] == 2
    assert ok(api.get(f"/signals/{hit['id']}"))["kind"] == "hit"
    evaluated = ok(api.post("/rewards/evaluate", json={"domain": "memory", "as_of": "2026-12-01T00:00:00+00:00",
                                                       "rules": {"memory": {"insert": {"weights": {"hit": 1.0}},
                                                                            "delete": {"weights": {"hit": -1.0}}}}}))
    assert evaluated["status"] == "completed" and evaluated["evaluated"] >= 2
    stats = {row["action"]: row for row in ok(api.get("/rewards/statistics", params={"domain": "memory"}))}
    assert {"insert", "delete"} <= set(stats)
    periods = ok(api.get("/rewards/over-time", params={"domain": "memory", "every": "hour"}))
    assert {"insert", "delete"} <= {row["action"] for row in periods if row["evaluated"]}
    assert "every must be one of day, hour" in error(api.get("/rewards/over-time", params={"every": "week"}), 422,
                                                     "InvalidInputError")
    assert "unknown signal kind" in error(api.post("/rewards/evaluate", json={
        "rules": {"memory": {"insert": {"weights": {"click": 1.0}}}}}), 422, "NotDeclaredError")


def test_artifacts_and_trajectory(api):
    claim = ok(api.post("/rollouts/start", json={"input": "tap through"}), 201)
    rollout_id = claim["rollout"]["id"]
    turn = ok(api.post("/turns", json={"rollout_id": rollout_id, "turn_index": 0, "action": {"type": "tap", "x": 1, "y": 2}}), 201)
    shot = ok(api.post("/artifacts", params={"media_type": "image/png", "turn_id": turn["id"], "role": "screenshot"},
                       content=b"\x89PNG pixels"), 201)
    assert (shot["size"], shot["media_type"]) == (11, "image/png")
    assert ok(api.get(f"/artifacts/{shot['sha256']}")) == shot
    assert ok(api.get(f"/artifacts/{shot['sha256']}/exists")) is True
    assert ok(api.get(f"/artifacts/{'0' * 64}/exists")) is False
    assert api.get(f"/artifacts/{shot['sha256']}/content").content == b"\x89PNG pixels"
    link = ok(api.post(f"/artifacts/{shot['sha256']}/links", json={"turn_id": turn["id"], "role": "before"}), 201)
    assert [item["role"] for item in ok(api.get("/artifacts/links", params={"turn_id": turn["id"]}))] == [
        "screenshot", "before"] and link["owner_type"] == "turn"
    many = ok(api.post("/artifacts/links", json=[{"artifact": shot["sha256"], "turn_id": turn["id"], "role": "after"},
                                                 {"artifact": shot["sha256"], "rollout_id": rollout_id}]), 201)
    assert [(item["owner_type"], item["role"]) for item in many] == [("turn", "after"), ("rollout", "attachment")]
    assert "link #0" in error(api.post("/artifacts/links", json=[{"artifact": "x", "turn_id": turn["id"]}]), 422,
                              "InvalidInputError")
    trajectory = ok(api.get(f"/rollouts/{rollout_id}/trajectory"))
    assert trajectory["attempt"]["id"] == claim["attempt"]["id"] and trajectory["spans"] == []
    assert [(a["role"], a["sha256"]) for a in trajectory["turns"][0]["artifacts"]] == [
        ("screenshot", shot["sha256"]), ("before", shot["sha256"]), ("after", shot["sha256"])]
    assert ok(api.get(f"/rollouts/{rollout_id}/trajectory", params={"attempt": claim["attempt"]["id"]})) == trajectory
    error(api.get("/rollouts/no-such-rollout/trajectory"), 404, "NotFoundError")
    assert ok(api.post("/artifacts/gc", json={"grace": 3600}))["artifacts"] == 0


def test_flywheel_run_advise_and_policies(api):
    assert ok(api.get("/policies/active", params={"domain": "memory"})) is None
    decisions = [{"subject_id": unique("memory"), "action": action, "state": {"kind": kind, "length": index % 7},
                  "propensity": 0.25, "at": "2026-01-01T00:00:00Z"}
                 for index in range(120) for action, kind in [(("insert", "ignore", "update", "delete")[index % 4],
                                                               ("fact", "chatter")[index % 3 == 0])]]
    ok(api.post("/decisions/batch", json=decisions), 201)
    ok(api.post("/signals/batch", json=[{"subject_id": d["subject_id"], "kind": "hit", "at": "2026-01-02T00:00:00Z"}
                                        for d in decisions if d["state"]["kind"] == "fact"
                                        and d["action"] in ("insert", "update")]), 201)
    report = ok(api.post("/flywheel/run", json={"domain": "memory", "train": True, "bootstrap": 200}))
    # (the decisions other tests of this server logged count too)
    assert report["samples"] >= 120 and (report["trained"], report["version"]) == (True, 1)
    assert ok(api.post("/policies/activate", json={"domain": "memory", "version": 1}))["active"]  # (again: no-op)
    advice = ok(api.post("/flywheel/advise", json={"domain": "memory", "state": {"kind": "fact", "length": 3}}))
    assert advice["policy_version"] == "memory/v1" and advice["propensity"] == advice["probabilities"][advice["action"]]
    assert "lacks feature(s) 'length'" in error(api.post("/flywheel/advise", json={"state": {"kind": "fact"}}), 422,
                                                  "MissingFeaturesError")
    assert [c["version"] for c in ok(api.get("/policies/list", params={"domain": "memory"}))] == [1]
    assert ok(api.get("/policies/active", params={"domain": "memory"}))["version"] == 1
    assert ok(api.get("/policies/latest", params={"domain": "memory"}))["version"] == 1
    samples = ok(api.get("/samples", params={"source": "memory", "limit": 5}))
    assert samples["total"] == report["samples"]
    assert ok(api.get(f"/samples/{samples['items'][0]['id']}"))["source"] == "memory"
    checkpoint = ok(api.get("/checkpoints", params={"name": "policy:memory"}))["items"][0]
    trained_on = report["training_samples"] + report["holdout_samples"]  # those with a state and a reward
    assert ok(api.get(f"/checkpoints/{checkpoint['id']}"))["metrics"]["samples"] == trained_on
    assert "first that was active" in error(api.post("/policies/rollback", json={"domain": "memory"}), 409,
                                                "ConflictError")


def test_every_route_was_called(server):
    """Runs after the tests above, on the same server: each route of the table was requested at least once."""
    requested = called[server.base]
    missing = []
    for operation in ROUTES:
        pattern = re.compile("^/api/v1" + re.sub(r"{[^}]+}", "[^?]+", operation.path) + "$")
        if not any(method == operation.method and pattern.match(path) for method, path in requested):
            missing.append(f"{operation.method} {operation.path}")
    assert not missing, f"routes no test called: {missing}"
