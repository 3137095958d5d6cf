"""Concurrent writes of one project through a real server: span batches and attempt updates sent at once (run
together in one transaction, merged into one store call) each answer their own caller, the database counts them
exactly, and a bad request among them fails alone, as it would alone. (On SQLite the server runs each alone: the
same answers.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from rolloutdb.config import SERVER_WRITES_IN_FLIGHT
from server.servers import error, ok, unique

ROLLOUTS = 4  # the span batches' rollouts: several batches for each one's attempt
BATCHES = 16
SPANS = 3  # per batch
UPDATES = 6
# All at once, but under the server's limit of writes in flight, beyond which it answers 503 (to be sent again).
assert BATCHES + UPDATES + 2 < SERVER_WRITES_IN_FLIGHT


def test_concurrent_span_batches_and_attempt_updates_each_get_their_own_and_a_bad_one_fails_alone(server, api):
    spanned = [ok(api.post("/rollouts/start", json={"input": i}), 201) for i in range(ROLLOUTS)]
    updated = [ok(api.post("/rollouts/start", json={"input": i}), 201) for i in range(UPDATES)]
    finished = ok(api.post("/rollouts/start", json={"input": "done"}), 201)
    ok(api.patch(f"/rollouts/{finished['rollout']['id']}/attempts/latest", json={"status": "succeeded"}))
    tag = unique("batch")

    def spans_of(batch: int) -> list[dict]:  # neither id nor sequence_id: the server tells them apart
        claim = spanned[batch % ROLLOUTS]
        attempt_id = claim["attempt"]["id"] if batch % 2 else "latest"
        return [{"rollout_id": claim["rollout"]["id"], "attempt_id": attempt_id, "trace_id": tag,
                 "span_id": f"{tag}-{batch}-{k}", "name": "llm.call"} for k in range(SPANS)]

    bad_span = [{"rollout_id": spanned[0]["rollout"]["id"], "attempt_id": "at-nope", "trace_id": tag,
                 "span_id": "bad", "name": "llm.call"}]
    illegal = (f"/rollouts/{finished['rollout']['id']}/attempts/latest", {"status": "running"})
    # What the bad requests answer alone (they change nothing): the same must come back among the others.
    alone_span = api.post("/spans", json=bad_span)
    alone_update = api.patch(illegal[0], json=illegal[1])
    assert alone_span.status_code == 404 and alone_update.status_code == 409

    requests = [("POST", "/spans", spans_of(batch), batch % 3 == 0) for batch in range(BATCHES)]
    requests += [("PATCH", f"/rollouts/{claim['rollout']['id']}/attempts/{claim['attempt']['id']}",
                  {"status": "running", "metadata": {"n": n}}, False) for n, claim in enumerate(updated)]
    requests += [("POST", "/spans", bad_span, False), ("PATCH", *illegal, False)]
    start = threading.Barrier(len(requests))

    def send(request) -> httpx.Response:
        method, path, body, minimal = request
        with server.client() as client:
            start.wait(30)
            return client.request(method, path, json=body, headers={"Prefer": "return=minimal"} if minimal else {})

    with ThreadPoolExecutor(len(requests)) as threads:
        answers = list(threads.map(send, requests))

    for batch, answer in enumerate(answers[:BATCHES]):
        if requests[batch][3]:  # return=minimal: each of its spans by its place in its own request
            assert [row[0] for row in ok(answer, 201)["rows"]] == list(range(SPANS))
        else:
            assert [span["span_id"] for span in ok(answer, 201)] == [span["span_id"] for span in spans_of(batch)]
    for claim, n, answer in zip(updated, range(UPDATES), answers[BATCHES:BATCHES + UPDATES]):
        attempt = ok(answer)
        assert (attempt["id"], attempt["status"], attempt["metadata"]) == (claim["attempt"]["id"], "running", {"n": n})
    for alone, answer in zip((alone_span, alone_update), answers[-2:]):
        assert (answer.status_code, answer.json()) == (alone.status_code, alone.json())
    error(answers[-1], 409, "InvalidTransitionError")

    for claim in spanned:
        stored = ok(api.get("/spans", params={"rollout_id": claim["rollout"]["id"], "trace_id": tag, "limit": 1000,
                                              "sort": "sequence_id"}))
        assert stored["total"] == BATCHES // ROLLOUTS * SPANS
        assert [span["sequence_id"] for span in stored["items"]] == list(range(1, stored["total"] + 1))
    assert ok(api.get(f"/attempts/{finished['attempt']['id']}"))["status"] == "succeeded"
