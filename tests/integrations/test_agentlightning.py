"""RolloutDBLightningStore against Agent Lightning's LightningStore contract (its docstrings)."""

import asyncio
import os
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # agentlightning imports litellm: stay offline
pytest.importorskip("agentlightning")

from agentlightning.types import EnqueueRolloutRequest, PromptTemplate, RolloutConfig, Span  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

import rolloutdb  # noqa: E402
from rolloutdb.errors import StoreUnavailableError  # noqa: E402
from rolloutdb.integrations.agentlightning import RolloutDBLightningStore  # noqa: E402


class Clock:
    def __init__(self):
        self.now = datetime.now(timezone.utc)

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def agl(session_database_url, clock):
    store = rolloutdb.connect(session_database_url, project=f"agl-{uuid.uuid4().hex[:8]}", clock=clock,
                              health_check_interval=3600)
    adapter = RolloutDBLightningStore(store=store)
    yield adapter
    run(adapter.close())
    store.close()


def run(coroutine):
    return asyncio.run(coroutine)


def span(rollout, attempt, sequence_id, name="llm"):
    return Span.model_validate({
        "rollout_id": rollout, "attempt_id": attempt, "sequence_id": sequence_id, "trace_id": "a" * 32,
        "span_id": f"{sequence_id:016x}", "parent_id": None, "name": name, "status": {"status_code": "OK"},
        "attributes": {"tokens": sequence_id}, "events": [], "links": [], "start_time": 1_700_000_000.5,
        "end_time": 1_700_000_001.25, "context": None, "parent": None,
        "resource": {"attributes": {"service.name": "agent"}, "schema_url": ""}})


def test_capabilities_are_declared_truthfully(agl):
    assert agl.capabilities == {"thread_safe": True, "async_safe": True, "zero_copy": True, "otlp_traces": False}


def test_enqueue_and_dequeue_are_fifo_and_dequeue_returns_none_when_empty(agl):
    async def scenario():
        first = await agl.enqueue_rollout({"n": 1}, mode="train")
        rest = await agl.enqueue_many_rollouts([EnqueueRolloutRequest(input={"n": 2}),
                                                EnqueueRolloutRequest(input={"n": 3}, mode="val")])
        assert first.status == "queuing" and [r.status for r in rest] == ["queuing", "queuing"]
        claimed = [await agl.dequeue_rollout(worker_id="w1") for _ in range(3)]
        assert [c.rollout_id for c in claimed] == [first.rollout_id, *(r.rollout_id for r in rest)]
        assert all(c.status == "preparing" and c.attempt.sequence_id == 1 for c in claimed)
        assert await agl.dequeue_rollout() is None
        assert await agl.dequeue_many_rollouts(limit=5) == []

    run(scenario())


def test_start_rollout_creates_the_first_attempt_against_the_latest_resources(agl, clock):
    async def scenario():
        await agl.add_resources({"prompt": PromptTemplate(template="v1 {x}", engine="f-string")})
        clock.now += timedelta(seconds=1)
        latest = await agl.add_resources({"prompt": PromptTemplate(template="v2 {x}", engine="f-string")})
        started = await agl.start_rollout({"q": "2+2"}, mode="test", metadata={"tag": "a"})
        assert (started.status, started.attempt.sequence_id, started.resources_id) == (
            "preparing", 1, latest.resources_id)
        assert started.metadata == {"tag": "a"} and started.attempt.start_time is not None
        again = await agl.start_attempt(started.rollout_id, worker_id="w")
        assert again.attempt.sequence_id == 2 and again.attempt.worker_id == "w"
        assert [a.sequence_id for a in await agl.query_attempts(started.rollout_id)] == [1, 2]
        assert (await agl.get_latest_attempt(started.rollout_id)).attempt_id == again.attempt.attempt_id

    run(scenario())


def test_spans_are_heartbeats_keep_order_and_skip_duplicates(agl):
    async def scenario():
        claim = await agl.start_rollout("task")
        rollout, attempt = claim.rollout_id, claim.attempt.attempt_id
        ids = [await agl.get_next_span_sequence_id(rollout, attempt) for _ in range(3)]
        assert ids == [1, 2, 3]
        stored = await agl.add_span(span(rollout, attempt, 1))
        assert stored == span(rollout, attempt, 1)  # round-trips exactly
        assert (await agl.get_latest_attempt(rollout)).status == "running"
        assert (await agl.get_rollout_by_id(rollout)).status == "running"
        assert await agl.add_span(span(rollout, attempt, 1, name="again")) is None
        await agl.add_many_spans([span(rollout, attempt, 10), span(rollout, attempt, 4, name="tool")])
        assert await agl.get_next_span_sequence_id(rollout, attempt) == 11  # kept ahead of given ids
        spans = await agl.query_spans(rollout, "latest")
        assert [s.sequence_id for s in spans] == [1, 4, 10]
        assert [s.name for s in await agl.query_spans(rollout, None, name_contains="too")] == ["tool"]
        assert await agl.get_many_span_sequence_ids([(rollout, attempt), (rollout, attempt)]) == [12, 13]

    run(scenario())


def test_an_opentelemetry_span_is_converted_and_numbered(agl):
    async def scenario():
        claim = await agl.start_rollout("task")
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("agent.step") as otel_span:
            otel_span.set_attribute("reward", 0.5)
        added = await agl.add_otel_span(claim.rollout_id, claim.attempt.attempt_id, otel_span)
        assert (added.sequence_id, added.name, added.attributes["reward"]) == (1, "agent.step", 0.5)
        stored = await agl.query_spans(claim.rollout_id, claim.attempt.attempt_id)
        assert [(s.span_id, s.name, s.attributes) for s in stored] == [(added.span_id, "agent.step", {"reward": 0.5})]

    run(scenario())


@pytest.mark.parametrize(("retry_condition", "expected"), [(["failed"], "requeuing"), ([], "failed")])
def test_a_failed_attempt_requeues_or_fails_the_rollout(agl, retry_condition, expected):
    async def scenario():
        rollout = await agl.enqueue_rollout("x", config=RolloutConfig(max_attempts=2,
                                                                    retry_condition=retry_condition))
        claim = await agl.dequeue_rollout(worker_id="w")
        await agl.update_attempt(rollout.rollout_id, claim.attempt.attempt_id, status="failed")
        assert (await agl.get_rollout_by_id(rollout.rollout_id)).status == expected
        again = await agl.dequeue_rollout()
        if expected == "requeuing":
            assert again.rollout_id == rollout.rollout_id and again.attempt.sequence_id == 2
            await agl.update_attempt(rollout.rollout_id, "latest", status="succeeded")
            assert (await agl.get_rollout_by_id(rollout.rollout_id)).status == "succeeded"
        else:
            assert again is None

    run(scenario())


def test_timeout_and_unresponsive_attempts_are_detected(agl, clock):
    async def scenario():
        slow = await agl.enqueue_rollout("slow", config=RolloutConfig(timeout_seconds=30))
        silent = await agl.enqueue_rollout("silent", config=RolloutConfig(unresponsive_seconds=10, max_attempts=2,
                                                                          retry_condition=["unresponsive"]))
        await agl.dequeue_many_rollouts(limit=2, worker_id="w")
        clock.now += timedelta(seconds=31)
        agl.store.check_health()
        assert (await agl.get_latest_attempt(slow.rollout_id)).status == "timeout"
        assert (await agl.get_rollout_by_id(slow.rollout_id)).status == "failed"
        assert (await agl.get_latest_attempt(silent.rollout_id)).status == "unresponsive"
        assert (await agl.get_rollout_by_id(silent.rollout_id)).status == "requeuing"

    run(scenario())


def test_update_rollout_changes_only_what_is_passed(agl):
    async def scenario():
        rollout = await agl.enqueue_rollout({"q": 1}, mode="train", metadata={"keep": True})
        updated = await agl.update_rollout(rollout.rollout_id, status="cancelled")
        assert (updated.status, updated.mode, updated.metadata, updated.input) == (
            "cancelled", "train", {"keep": True}, {"q": 1})
        assert updated.end_time is not None
        with pytest.raises(ValueError, match="cannot go from 'cancelled'"):
            await agl.update_rollout(rollout.rollout_id, status="running")

    run(scenario())


def test_resources_are_versioned(agl, clock):
    async def scenario():
        assert await agl.get_latest_resources() is None
        first = await agl.add_resources({"prompt": PromptTemplate(template="a", engine="f-string")})
        updated = await agl.update_resources(first.resources_id,
                                             {"prompt": PromptTemplate(template="b", engine="f-string")})
        assert updated.version == 2 and updated.resources["prompt"].template == "b"
        assert (await agl.get_latest_resources()).resources_id == first.resources_id
        assert await agl.get_resources_by_id("missing") is None
        assert [r.resources_id for r in await agl.query_resources(resources_id=first.resources_id)] == [
            first.resources_id]
        # Updating an id that does not exist creates it: Agent Lightning's Trainer sets up "default" so.
        clock.now += timedelta(seconds=1)
        created = await agl.update_resources("default", {"prompt": PromptTemplate(template="c", engine="f-string")})
        assert (created.resources_id, created.version) == ("default", 1)
        assert (await agl.get_latest_resources()).resources_id == "default"

    run(scenario())


def test_workers_follow_their_attempts_and_heartbeats(agl):
    async def scenario():
        worker = await agl.update_worker("w1", heartbeat_stats={"gpu": 0.5})
        assert worker.heartbeat_stats == {"gpu": 0.5} and worker.last_heartbeat_time is not None
        await agl.enqueue_rollout("x")
        claim = await agl.dequeue_rollout(worker_id="w1")
        busy = await agl.get_worker_by_id("w1")
        assert (busy.status, busy.current_rollout_id) == ("busy", claim.rollout_id)
        await agl.update_attempt(claim.rollout_id, claim.attempt.attempt_id, status="succeeded")
        assert (await agl.get_worker_by_id("w1")).status == "idle"
        assert [w.worker_id for w in await agl.query_workers(status_in=["idle"])] == ["w1"]
        assert await agl.get_worker_by_id("nobody") is None

    run(scenario())


def test_wait_for_rollouts_returns_when_another_thread_finishes_one(agl):
    async def scenario():
        claim = await agl.start_rollout("x")
        never = await agl.enqueue_rollout("y")

        def finish_later():
            time.sleep(0.3)
            agl.store.attempts.update(claim.rollout_id, status="succeeded")

        threading.Thread(target=finish_later).start()
        finished = await agl.wait_for_rollouts(rollout_ids=[claim.rollout_id], timeout=30)
        assert [r.rollout_id for r in finished] == [claim.rollout_id]
        assert await agl.wait_for_rollouts(rollout_ids=[claim.rollout_id, never.rollout_id], timeout=0.1) == finished

    run(scenario())


def test_query_rollouts_filters_sorts_and_pages(agl):
    async def scenario():
        made = [await agl.enqueue_rollout({"n": n}) for n in range(4)]
        await agl.dequeue_rollout()
        running = await agl.query_rollouts(status_in=["preparing"])
        assert [r.rollout_id for r in running] == [made[0].rollout_id] and running[0].attempt.sequence_id == 1
        picked = await agl.query_rollouts(rollout_id_in=[made[1].rollout_id, made[3].rollout_id],
                                          sort_by="start_time", sort_order="desc")
        assert [r.rollout_id for r in picked] == [made[3].rollout_id, made[1].rollout_id]
        either = await agl.query_rollouts(status_in=["preparing"], rollout_id_in=[made[2].rollout_id],
                                          filter_logic="or")
        assert {r.rollout_id for r in either} == {made[0].rollout_id, made[2].rollout_id}
        assert len(await agl.query_rollouts(limit=2, offset=3)) == 1
        with pytest.raises(ValueError, match="cannot sort rollouts by 'colour'"):
            await agl.query_rollouts(sort_by="colour")

    run(scenario())


def test_unknown_ids_raise_value_error(agl):
    async def scenario():
        assert await agl.get_rollout_by_id("missing") is None
        for call in (agl.query_attempts("missing"), agl.get_latest_attempt("missing"),
                     agl.update_attempt("missing", "latest", status="failed"), agl.start_attempt("missing"),
                     agl.get_next_span_sequence_id("missing", "nope"),
                     agl.update_rollout("missing", status="cancelled"),
                     agl.add_span(span("missing", "nope", 1))):
            with pytest.raises(ValueError):
                await call

    run(scenario())


def test_many_concurrent_dequeuers_never_share_a_rollout(agl):
    async def scenario():
        await agl.enqueue_many_rollouts([EnqueueRolloutRequest(input=n) for n in range(60)])

        async def worker(name):
            got = []
            while claims := await agl.dequeue_many_rollouts(limit=3, worker_id=name):
                got.extend(c.rollout_id for c in claims)
            return got

        results = await asyncio.gather(*(worker(f"w{i}") for i in range(8)))
        claimed = [rollout for got in results for rollout in got]
        assert len(claimed) == len(set(claimed)) == 60

    run(scenario())


def test_an_agent_lightning_trainer_runs_on_the_store(fresh_database_url, tmp_path):
    """The README's example: Agent Lightning's own Trainer, runners and algorithm on RolloutDB."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).parent.parent.parent / "examples" / "agentlightning_trainer.py"
    result = subprocess.run([sys.executable, str(example), fresh_database_url], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    store = rolloutdb.connect(fresh_database_url, project="agentlightning-example")
    assert store.rollouts.count(status="succeeded") == 7  # 5 training tasks, 2 validation tasks
    assert store.attempts.count() == 7 and store.spans.count() >= 7
    assert store.resources.get("default").resources["prompt"]["template"] == "{question} = ?"


def adapter_threads(before=frozenset()):
    """The adapters' threads alive now, but those of ``before`` (another test's adapter may still be ending)."""
    return {thread for thread in threading.enumerate() if thread.name.startswith("rolloutdb-agl")} - before


def test_close_ends_the_adapters_threads_and_closes_the_store_it_opened(fresh_database_url):
    before = adapter_threads()
    agl = RolloutDBLightningStore(fresh_database_url, project="closing")

    async def use_then_close():
        await agl.enqueue_rollout(input={"task": 1})
        assert await agl.dequeue_rollout() is not None
        assert adapter_threads(before)
        await agl.close()

    run(use_then_close())
    assert not adapter_threads(before)
    assert agl.store.engine.pool.checkedin() == 0  # its connections released
    with pytest.raises(StoreUnavailableError, match="closed"):
        run(agl.query_rollouts())
    run(agl.close())  # a second close has nothing left to do


def test_close_leaves_open_a_store_it_was_given(session_database_url):
    before = adapter_threads()
    with rolloutdb.connect(session_database_url, project=f"agl-{uuid.uuid4().hex[:8]}") as store:
        agl = RolloutDBLightningStore(store=store)
        run(agl.enqueue_rollout(input={"task": 1}))
        run(agl.close())
        assert not adapter_threads(before)
        assert store.rollouts.count() == 1  # the caller's store, still the caller's to close
