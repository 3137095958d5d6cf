"""What Agent Lightning 0.3 code (and its own store test suite) relies on from a LightningStore, pinned in
our words on both backends: error messages it matches, id shapes, span numbering per rollout, paginated
and sortable queries, statistics, workers, health checks on AL's clock, waits that wake fast and cancel."""

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # agentlightning imports litellm: stay offline
pytest.importorskip("agentlightning")

from agentlightning.types import PaginatedResult, PromptTemplate, RolloutConfig, Span  # noqa: E402

from rolloutdb.integrations.agentlightning import RolloutDBLightningStore  # noqa: E402

from conftest import STORE_BACKENDS, skip_on_http  # noqa: E402
from server.servers import running_server  # noqa: E402


@pytest.fixture(scope="session")
def agent_lightning_servers(session_backends) -> Iterator[Callable[[str], str]]:
    """`rolloutdb serve --agent-lightning --all-projects` on the session's database of each backend, when first
    asked for: its URL, by backend."""
    servers: dict[str, str] = {}
    with contextlib.ExitStack() as running:
        def url(backend: str) -> str:
            if backend not in servers:
                servers[backend] = running.enter_context(running_server(
                    session_backends.database_url(backend), session_backends.directory, None, "--all-projects",
                    "--agent-lightning")).base
            return servers[backend]

        yield url


@pytest.fixture(params=STORE_BACKENDS)
def agl(request, session_backends, agent_lightning_servers):
    # As Agent Lightning's tests make its in-memory store: health checked before every call that needs it. Through
    # a server (http-...), the server's store checks health as it does itself.
    backend, project = request.param, f"aglc-{uuid.uuid4().hex[:8]}"
    if backend.startswith("http-"):
        store = RolloutDBLightningStore(agent_lightning_servers(backend.removeprefix("http-")), project=project)
    else:
        store = RolloutDBLightningStore(session_backends.database_url(backend), project=project,
                                        health_check_interval=0)
    yield store
    store.store.close()


def skip_through_a_server(agl, reason: str) -> None:
    skip_on_http(agl.store, reason)


def run(coroutine):
    return asyncio.run(coroutine)


def span(rollout, attempt, sequence_id, span_id=None):
    span_id = span_id or f"{sequence_id:016x}"
    return Span.model_validate({
        "rollout_id": rollout, "attempt_id": attempt, "sequence_id": sequence_id, "trace_id": "b" * 32,
        "span_id": span_id, "parent_id": None, "name": f"step-{sequence_id}", "status": {"status_code": "OK"},
        "attributes": {}, "events": [], "links": [], "start_time": None, "end_time": None, "context": None,
        "parent": None, "resource": {"attributes": {}, "schema_url": ""}})


def test_errors_carry_the_messages_agent_lightning_matches(agl):
    async def scenario():
        with pytest.raises(ValueError, match="Item does not exist"):
            await agl.update_rollout("ghost", status="failed")
        with pytest.raises(ValueError, match="^Rollout ghost not found$"):
            await agl.start_attempt("ghost")
        with pytest.raises(ValueError, match="^Rollout ghost not found$"):
            await agl.add_span(span("ghost", "at-x", 1))
        queued = await agl.enqueue_rollout("q")
        with pytest.raises(ValueError, match=f"^No attempts found for rollout {queued.rollout_id}$"):
            await agl.update_attempt(queued.rollout_id, "at-x", status="failed")
        started = await agl.start_rollout("s")
        with pytest.raises(ValueError, match=f"^Attempt at-x not found for rollout {started.rollout_id}$"):
            await agl.add_span(span(started.rollout_id, "at-x", 1))

    run(scenario())


def test_unknown_rollouts_read_as_nothing(agl):
    async def scenario():
        assert list(await agl.query_spans("ghost")) == []
        assert list(await agl.query_spans("ghost", "latest")) == []
        done = await agl.enqueue_rollout("d")
        await agl.update_rollout(done.rollout_id, status="succeeded")
        finished = await agl.wait_for_rollouts(rollout_ids=["ghost", done.rollout_id], timeout=0.1)
        assert [r.rollout_id for r in finished] == [done.rollout_id]

    run(scenario())


def test_ids_have_agent_lightnings_shapes(agl):
    async def scenario():
        queued = await agl.enqueue_rollout("q")
        started = await agl.start_rollout("s")
        resources = await agl.add_resources({"p": PromptTemplate(template="t", engine="f-string")})
        assert queued.rollout_id.startswith("ro-") and started.rollout_id.startswith("ro-")
        assert started.attempt.attempt_id.startswith("at-")
        assert resources.resources_id.startswith("rs-") and len(resources.resources_id) == 15

    run(scenario())


def test_span_sequence_ids_count_per_rollout_across_attempts(agl):
    async def scenario():
        first = await agl.start_rollout("a")
        second = await agl.start_rollout("b")
        retry = await agl.start_attempt(first.rollout_id)
        pairs = [(first.rollout_id, first.attempt.attempt_id), (second.rollout_id, second.attempt.attempt_id),
                 (first.rollout_id, retry.attempt.attempt_id), (first.rollout_id, first.attempt.attempt_id)]
        assert list(await agl.get_many_span_sequence_ids(pairs)) == [1, 1, 2, 3]
        assert await agl.get_next_span_sequence_id(first.rollout_id, retry.attempt.attempt_id) == 4
        await agl.add_span(span(first.rollout_id, first.attempt.attempt_id, 10))  # a given id moves the count on
        assert await agl.get_next_span_sequence_id(first.rollout_id, retry.attempt.attempt_id) == 11

    run(scenario())


def test_add_span_returns_the_span_given_and_none_for_a_span_id_seen_before(agl, caplog):
    async def scenario():
        started = await agl.start_rollout("s")
        given = span(started.rollout_id, started.attempt.attempt_id, 1, span_id="c" * 16)
        assert await agl.add_span(given) is given
        assert await agl.add_span(given) is None
        with caplog.at_level(logging.ERROR):
            assert await agl.add_span(span(started.rollout_id, started.attempt.attempt_id, 2, span_id="c" * 16)) is None
        assert "Duplicated span" in caplog.text
        assert len(await agl.query_spans(started.rollout_id)) == 1

    run(scenario())


def test_concurrent_coroutines_each_get_their_own_sequence_ids_and_spans(agl):
    # The adapter runs concurrent coroutines' writes together (one transaction, one call per kind): each must
    # still get what it would have got alone.
    async def scenario():
        started = await agl.start_rollout("shared")
        pair = (started.rollout_id, started.attempt.attempt_id)
        numbered = await asyncio.gather(*(agl.get_many_span_sequence_ids([pair] * 2) for _ in range(8)))
        assert sorted(n for ids in numbered for n in ids) == list(range(1, 17))
        assert all(len(set(ids)) == 2 for ids in numbered)
        added = await asyncio.gather(*(agl.add_many_spans([span(*pair, ids[0]), span(*pair, ids[1])])
                                       for ids in numbered))
        assert [[s.sequence_id for s in spans] for spans in added] == [list(ids) for ids in numbered]
        # The same span sent by two coroutines at once: stored once, returned to one of them only.
        twice = await asyncio.gather(*(agl.add_span(span(*pair, 99, span_id="d" * 16)) for _ in range(2)))
        assert sum(result is not None for result in twice) == 1
        assert len(await agl.query_spans(started.rollout_id)) == 17

    run(scenario())


def test_concurrent_attempt_updates_each_get_what_they_would_alone(agl):
    # Concurrent update_attempt calls go to the store as one call: each caller still gets its own attempt, one
    # attempt updated by two coroutines changes as if one came after the other, and an illegal change fails
    # only its own caller.
    async def scenario():
        started = [await agl.start_rollout(f"r{n}") for n in range(4)]
        updated = await asyncio.gather(*(agl.update_attempt(s.rollout_id, s.attempt.attempt_id, status="running")
                                         for s in started))
        assert [(a.attempt_id, a.status) for a in updated] == [(s.attempt.attempt_id, "running") for s in started]
        first, second = started[0], started[1]
        outcomes = await asyncio.gather(
            agl.update_attempt(first.rollout_id, first.attempt.attempt_id, status="succeeded"),
            agl.update_attempt(first.rollout_id, "latest", metadata={"after": "success"}),
            agl.update_attempt(second.rollout_id, second.attempt.attempt_id, status="preparing"),
            agl.update_attempt(second.rollout_id, second.attempt.attempt_id, status="failed"),
            return_exceptions=True)
        assert (outcomes[0].status, outcomes[1].status, outcomes[1].metadata) == (
            "succeeded", "succeeded", {"after": "success"})
        assert isinstance(outcomes[2], ValueError) and outcomes[3].status == "failed"
        rollouts = [await agl.get_rollout_by_id(s.rollout_id) for s in (first, second)]
        assert [r.status for r in rollouts] == ["succeeded", "failed"]

    run(scenario())


def test_queries_return_pages_with_totals_and_sort_by_any_field(agl):
    async def scenario():
        made = [await agl.enqueue_rollout({"n": n}) for n in range(3)]
        page = await agl.query_rollouts(sort_by="rollout_id", sort_order="desc", limit=1, offset=1)
        assert isinstance(page, PaginatedResult) and (page.limit, page.offset, page.total) == (1, 1, 3)
        assert [r.rollout_id for r in page] == sorted(r.rollout_id for r in made)[1:2]
        started = await agl.start_rollout("s")
        for n, span_id in enumerate(["0a", "0c", "0b"], start=1):
            await agl.add_span(span(started.rollout_id, started.attempt.attempt_id, n, span_id=span_id * 8))
        spans = await agl.query_spans(started.rollout_id, sort_by="span_id", sort_order="desc", limit=2)
        assert isinstance(spans, PaginatedResult) and spans.total == 3
        assert [s.span_id for s in spans] == ["0c" * 8, "0b" * 8]
        for name in ("w-b", "w-a"):
            await agl.update_worker(name, heartbeat_stats={})
        workers = await agl.query_workers(sort_by="worker_id")
        assert [w.worker_id for w in workers] == ["w-a", "w-b"] and workers.total == 2
        attempts = await agl.query_attempts(started.rollout_id, sort_by="worker_id")
        assert isinstance(attempts, PaginatedResult) and attempts.total == 1
        resources = await agl.query_resources(sort_by="version")
        assert isinstance(resources, PaginatedResult) and resources.total == 0
        with pytest.raises(ValueError, match="cannot sort rollouts by 'input'"):
            await agl.query_rollouts(sort_by="input")

    run(scenario())


def test_statistics_name_every_total_and_the_uptime(agl):
    async def scenario():
        before = await agl.statistics()
        started = await agl.start_rollout("s")
        await agl.add_span(span(started.rollout_id, started.attempt.attempt_id, 1))
        after = await agl.statistics()
        assert after["name"] == "RolloutDBLightningStore"
        assert (after["total_rollouts"], after["total_attempts"], after["total_spans"]) == (1, 1, 1)
        assert (after["total_resources"], after["total_workers"]) == (0, 0)
        assert after["uptime"] > before["uptime"] > 0

    run(scenario())


def test_a_worker_that_starts_or_is_given_an_attempt_is_busy_on_it(agl):
    async def scenario():
        started = await agl.start_rollout("s", worker_id="w-start")
        worker = await agl.get_worker_by_id("w-start")
        assert (worker.status, worker.current_attempt_id) == ("busy", started.attempt.attempt_id)
        retry = await agl.start_attempt(started.rollout_id, worker_id="w-retry")
        worker = await agl.get_worker_by_id("w-retry")
        assert (worker.status, worker.current_attempt_id) == ("busy", retry.attempt.attempt_id)
        await agl.update_attempt(started.rollout_id, started.attempt.attempt_id, worker_id="w-given")
        worker = await agl.get_worker_by_id("w-given")
        assert (worker.status, worker.current_attempt_id) == ("busy", started.attempt.attempt_id)
        with pytest.raises(TypeError):
            await agl.update_worker("w-retry", heartbeat_stats=None)

    run(scenario())


def test_health_checks_and_heartbeats_follow_agent_lightnings_clock(agl, monkeypatch):
    skip_through_a_server(agl, "the server stamps and checks health on its own process's clock: monkeypatching "
                               "time.time here cannot move it")
    async def scenario():
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now)
        slow = await agl.enqueue_rollout("slow", config=RolloutConfig(timeout_seconds=30, max_attempts=2,
                                                                      retry_condition=["timeout"]))
        claim = await agl.dequeue_rollout()
        monkeypatch.setattr(time, "time", lambda: now + 5)
        await agl.add_span(span(slow.rollout_id, claim.attempt.attempt_id, 1))
        assert (await agl.get_latest_attempt(slow.rollout_id)).last_heartbeat_time == pytest.approx(now + 5, abs=1e-5)
        monkeypatch.setattr(time, "time", lambda: now + 31)
        assert [a.status for a in await agl.query_attempts(slow.rollout_id)] == ["timeout"]
        assert (await agl.get_rollout_by_id(slow.rollout_id)).status == "requeuing"

    run(scenario())


def test_a_wait_wakes_on_the_finish_not_at_its_next_poll(agl):
    # AL's own test asks for < 50 ms; a timed assertion that tight fails on a busy machine, so this pins the
    # behaviour (woken by the finish, not by a poll: PostgreSQL polls every 5 s) and leaves the figure to benchmarks.
    async def scenario():
        started = await agl.start_rollout("s")
        finished_at = []

        def finish_later():
            time.sleep(0.3)
            finished_at.append(time.monotonic())  # before the call: through a server the wait may end before it returns
            agl.store.attempts.update(started.rollout_id, status="succeeded")

        finisher = threading.Thread(target=finish_later)
        finisher.start()
        done = await agl.wait_for_rollouts(rollout_ids=[started.rollout_id], timeout=None)
        woke_after = time.monotonic() - finished_at[0]
        finisher.join()
        assert [r.status for r in done] == ["succeeded"] and woke_after < 1.0

    run(scenario())


def test_a_cancelled_wait_does_not_hold_up_the_event_loops_shutdown(agl):
    async def scenario():
        queued = await agl.enqueue_rollout("q")
        waiting = asyncio.create_task(agl.wait_for_rollouts(rollout_ids=[queued.rollout_id], timeout=None))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    # asyncio.run ends by joining its worker threads: a wait still blocked in one would never let it return.
    runner = threading.Thread(target=run, args=(scenario(),), daemon=True)
    runner.start()
    runner.join(timeout=5)
    assert not runner.is_alive()


def test_a_rollout_may_name_resources_not_stored(agl):
    async def scenario():
        queued = await agl.enqueue_rollout("q", resources_id="later")
        started = await agl.start_rollout("s", resources_id="elsewhere")
        updated = await agl.update_rollout(queued.rollout_id, resources_id="newer")
        assert (queued.resources_id, started.resources_id, updated.resources_id) == ("later", "elsewhere", "newer")
        assert await agl.get_resources_by_id("later") is None

    run(scenario())
