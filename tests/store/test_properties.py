"""A property of the whole public Store API, on a real SQLite file and real PostgreSQL: whatever values it is
given — huge and negative integers, NaN and infinities, NUL and control characters, lone surrogates, very
long strings, values of the wrong type, None, nested JSON, unknown ids, another project's ids — every call
returns a result or raises a ``RolloutDBError``, never anything else; a call that raises writes nothing;
and nothing a store does touches another project's rows.

One store per backend serves every example (rows pile up, as in a real database); another project in the
same database holds rows whose ids the examples use. ``ROLLOUTDB_PROPERTY_EXAMPLES`` sets how many examples
each backend runs (a CI job can run many more)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rolloutdb
from rolloutdb.errors import RolloutDBError
from rolloutdb.records import Attempt, Group, Rollout, Run, Span, Step, Task, Turn, Validator, Worker
from rolloutdb.states import STATUS_ENUMS, RolloutMode, RunKind
from rolloutdb.store.recording import OPERATION_MODELS

EXAMPLES = int(os.environ.get("ROLLOUTDB_PROPERTY_EXAMPLES", "120"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
AREAS = ("runs", "steps", "validators", "tasks", "groups", "resources", "rollouts", "attempts", "workers", "turns",
         "scripts", "decisions", "signals")
DECISION = ["domain", "subject_id", "action", "reason", "state", "context", "policy_version", "propensity", "at", "id"]
SIGNAL = ["subject_id", "kind", "value", "at", "domain", "data", "id"]

# -- values ------------------------------------------------------------------------------------------

HOSTILE_CHARACTERS = "\x00\x1b\x07\r\n\t\u2028\ud800\udfff\ufeff\u202e%_'\"\\;"
texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.sampled_from(HOSTILE_CHARACTERS) | st.characters(), min_size=1, max_size=6),
    st.builds(lambda piece, length: (piece * length)[:length], st.text(min_size=1, max_size=3),
              st.sampled_from([128, 129, 200, 201, 100_000])),
)
integers = st.one_of(st.integers(-3, 12), st.integers(),
                     st.sampled_from([2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 63 - 1, 2 ** 63, -(2 ** 63) - 1, 10 ** 30]))
floats = st.floats()  # NaN, infinities, -0.0, subnormals
times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from(
    [None, timezone.utc, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]))
json_leaves = st.none() | st.booleans() | integers | floats | texts
json = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                    max_leaves=8)
words = st.sampled_from(sorted({str(status) for enum in STATUS_ENUMS.values() for status in enum}
                               | {str(kind) for kind in RunKind} | {str(mode) for mode in RolloutMode}
                               | {"step", "eval", "baseline", "pause", "resume", "cancel", "info", "latest"}))
anything = st.one_of(json, words, times, st.binary(max_size=6), st.builds(object), st.just(timedelta(days=1)),
                     st.sets(st.integers(), max_size=2), st.tuples(integers), st.just(float("nan")))


class World:
    """The store of the examples, another project's store in the same database, and ids to draw from."""

    def __init__(self, url: str) -> None:
        self.store = rolloutdb.connect(url, project=f"property-{uuid.uuid4().hex[:8]}")
        self.other = rolloutdb.connect(url, project=f"property-other-{uuid.uuid4().hex[:8]}")
        self.ids = [*self._populate(self.store), *self._populate(self.other), "", "missing", "01a23c", "%", "_"]
        self.other_rows = snapshot(self.other)
        self.calls = calls(self)

    @staticmethod
    def _populate(store: rolloutdb.Store) -> list[str]:
        run = store.runs.create(name="run", total_steps=2)
        step = store.steps.create(run_id=run.id, number=0)
        task = store.tasks.create(external_id="task")
        group = store.groups.create(run_id=run.id, step=0, task_id=task.id, size=2)
        claim = store.rollouts.start({"q": 1}, worker_id="worker", run_id=run.id, group_id=group.id)
        span = store.spans.add(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s",
                               name="call")
        turn = store.turns.create(rollout_id=claim.rollout.id, turn_index=0, reward=1.0)
        queued = store.rollouts.enqueue({"q": 2})
        resources = store.resources.add({"prompt": "p"})
        solved = store.rollouts.start({"q": 3}, task_id=task.id)
        store.turns.create(rollout_id=solved.rollout.id, turn_index=0, action={"type": "tap", "x": 1, "y": 2})
        store.attempts.update(solved.rollout.id, status="succeeded")
        script = store.scripts.record(solved.rollout.id, name="script")
        decision = store.decisions.log("memory", "memory-1", "insert", state={"similar_memories": 1},
                                       at=datetime(2026, 1, 1, tzinfo=timezone.utc))
        signal = store.signals.add("memory-1", "hit")
        return [decision.id, signal.id, "memory-1", run.id, run.name, step.id, task.id, group.id, claim.rollout.id, claim.attempt.id, span.id, turn.id,
                queued.id, resources.id, "worker", "latest", solved.rollout.id, script.id, task.external_id]

    def close(self) -> None:
        self.store.close()
        self.other.close()


def snapshot(store: rolloutdb.Store) -> list[list]:
    """Every row of the store's project (spans of every attempt)."""
    return [getattr(store, area).query(limit=None) for area in AREAS] + [store.spans.query(None, None, limit=None)]


@pytest.fixture(scope="module")
def world(session_database_url):
    world = World(session_database_url)
    yield world
    world.close()


# -- calls -------------------------------------------------------------------------------------------

def value_for(world: World, field: str) -> st.SearchStrategy:
    """Values of a field: anything, often something close to right (an id, a status) so calls also succeed."""
    if field == "id" or field.endswith("_id") or field in ("run", "task", "parent"):
        return st.sampled_from(world.ids) | anything
    if field in ("status", "kind", "mode", "source", "level", "control", "op"):
        return words | st.sampled_from(["hit", "quality", "feedback"]) | anything
    if field in ("domain", "action"):
        return st.sampled_from(["memory", "insert", "update", "ignore", "delete"]) | texts | anything
    if field in ("name", "external_id", "trace_id", "span_id", "session", "reason", "error", "message"):
        return texts | anything
    return anything


def fields(world: World, names, required=()) -> st.SearchStrategy[dict]:
    """Keyword arguments: the ``required`` names, some of ``names``, now and then an unknown one."""
    optional = sorted(set(names) - set(required)) + ["not_a_field"]
    return st.lists(st.sampled_from(optional), unique=True, max_size=4).flatmap(
        lambda chosen: st.fixed_dictionaries({name: value_for(world, name) for name in [*required, *chosen]}))


def known_fields(world: World, names, required=()) -> st.SearchStrategy[dict]:
    """``fields`` without the unknown one, for calls whose keyword arguments are all named (Python refuses others)."""
    return fields(world, names, required).map(
        lambda given: {key: value for key, value in given.items() if key != "not_a_field"})


def record_fields(world: World, model, required=(), positional=()) -> st.SearchStrategy[dict]:
    """Fields of ``model`` (not those the call takes by position, which Python itself refuses twice)."""
    return fields(world, [name for name in model.model_fields if name not in ("project_id", *positional)], required)


def an_id(world: World) -> st.SearchStrategy:
    return st.sampled_from(world.ids) | anything


def filters(world: World, area, positional=()) -> st.SearchStrategy[dict]:
    keys = [f"{name}{suffix}" for name in sorted(area.filterable - set(positional))
            for suffix in ("", "__in", "__ne", "__gt", "__lte", "__contains", "__isnull")] + ["not_a_field", "id__nope"]
    return st.dictionaries(st.sampled_from(keys), anything | st.sampled_from(world.ids) | st.lists(an_id(world), max_size=3),
                           max_size=2)


def paging(world: World) -> st.SearchStrategy[dict]:
    return fields(world, ["sort", "order", "limit", "offset", "match"]).map(
        lambda given: {key: value for key, value in given.items() if key != "not_a_field"})


SCOPE = ("rollout_id", "attempt_id")  # the spans' query and count take them first, by position


def calls(world: World) -> dict[str, object]:
    """name -> function(store, draw) making one call of the public API with drawn arguments."""
    w = world
    creates = {"runs": (Run, ["name"]), "steps": (Step, ["run_id", "number"]), "validators": (Validator, ["name", "kind"]),
               "tasks": (Task, ["external_id"]), "groups": (Group, []), "rollouts": (Rollout, []),
               "turns": (Turn, ["rollout_id", "turn_index"])}
    table: dict[str, object] = {}
    for area, (model, required) in creates.items():
        table[f"{area}.create"] = lambda s, d, area=area, model=model, required=required: getattr(s, area).create(
            **d(record_fields(w, model, required)))
        table[f"{area}.update"] = lambda s, d, area=area, model=model: getattr(s, area).update(
            d(an_id(w)), **d(record_fields(w, model, positional=["id"])))
    for area in AREAS:
        table[f"{area}.get"] = lambda s, d, area=area: getattr(s, area).get(d(an_id(w)))
        table[f"{area}.find"] = lambda s, d, area=area: getattr(s, area).find(d(an_id(w) | texts))
        table[f"{area}.query"] = lambda s, d, area=area: getattr(s, area).query(
            **d(paging(w)), **d(filters(w, getattr(s, area))))
        table[f"{area}.count"] = lambda s, d, area=area: getattr(s, area).count(**d(filters(w, getattr(s, area))))
    table.update({
        "spans.query": lambda s, d: s.spans.query(d(an_id(w)), d(an_id(w)), **d(paging(w)), **d(filters(w, s.spans, SCOPE))),
        "spans.count": lambda s, d: s.spans.count(d(an_id(w)), d(an_id(w)), **d(filters(w, s.spans, SCOPE))),
        "spans.add": lambda s, d: s.spans.add(**d(record_fields(w, Span, ["rollout_id", "attempt_id", "trace_id",
                                                                          "span_id", "name"]))),
        "spans.add_many": lambda s, d: s.spans.add_many(d(st.lists(record_fields(
            w, Span, ["rollout_id", "attempt_id", "trace_id", "span_id", "name"]), max_size=3))),
        "rollouts.enqueue": lambda s, d: s.rollouts.enqueue(d(json | anything), **d(record_fields(w, Rollout, positional=["input"]))),
        "rollouts.enqueue_many": lambda s, d: s.rollouts.enqueue_many(d(st.lists(record_fields(w, Rollout), max_size=3)
                                                                        | anything)),
        "rollouts.start": lambda s, d: s.rollouts.start(d(json), **d(record_fields(w, Rollout, positional=["input"]))),
        "rollouts.dequeue": lambda s, d: s.rollouts.dequeue(d(an_id(w) | st.none())),
        "rollouts.dequeue_many": lambda s, d: s.rollouts.dequeue_many(d(integers | anything), d(an_id(w) | st.none())),
        "rollouts.cancel": lambda s, d: s.rollouts.cancel(d(an_id(w)), d(texts | anything)),
        "rollouts.wait": lambda s, d: s.rollouts.wait(d(st.lists(an_id(w), max_size=3) | anything),
                                                      timeout=d(st.sampled_from([0, 0.001, -1, float("nan"), "1"]))),
        "attempts.start": lambda s, d: s.attempts.start(d(an_id(w)), d(an_id(w) | st.none())),
        "attempts.update": lambda s, d: s.attempts.update(d(an_id(w)), d(an_id(w)), **d(
            record_fields(w, Attempt, positional=["rollout_id", "attempt_id"]))),
        "attempts.heartbeat": lambda s, d: s.attempts.heartbeat(d(an_id(w)), d(an_id(w))),
        "attempts.latest": lambda s, d: s.attempts.latest(d(an_id(w))),
        "workers.heartbeat": lambda s, d: s.workers.heartbeat(d(an_id(w)), d(json | anything)),
        "workers.update": lambda s, d: s.workers.update(d(an_id(w)), **d(record_fields(w, Worker, positional=["id"]))),
        "resources.add": lambda s, d: s.resources.add(d(json | anything), d(an_id(w) | st.none())),
        "resources.update": lambda s, d: s.resources.update(d(an_id(w)), d(json | anything)),
        "resources.latest": lambda s, d: s.resources.latest(),
        "tasks.save": lambda s, d: s.tasks.save(d(st.lists(record_fields(w, Task, ["external_id"]), max_size=3))),
        "tasks.load": lambda s, d: s.tasks.load(**d(fields(w, ["dataset", "split", "tags"]).map(
            lambda given: {key: value for key, value in given.items() if key != "not_a_field"}))),
        "validators.save": lambda s, d: s.validators.save(d(texts | anything), d(texts | anything), d(json | anything)),
        "jobs.start": lambda s, d: s.jobs.start(d(texts | st.sampled_from(w.ids)), **d(fields(
            w, ["stages", "key", "kind", "config", "stale_after", "write_interval"]).map(
            lambda given: {key: value for key, value in given.items() if key != "not_a_field"}))),
        "jobs.get": lambda s, d: s.jobs.get(d(an_id(w)), stale_after=d(floats | integers)),
        "jobs.request": lambda s, d: getattr(s.jobs, d(st.sampled_from(["request_pause", "request_resume",
                                                                         "request_cancel"])))(d(an_id(w)), d(texts | anything)),
        "jobs.delete": lambda s, d: s.jobs.delete(d(an_id(w))),
        "jobs.logs": lambda s, d: s.jobs.logs(d(an_id(w)), limit=d(integers | anything), since=d(integers | anything)),
        "history": lambda s, d: s.history(d(words | anything), d(an_id(w))),
        "compare_runs": lambda s, d: s.compare_runs(d(an_id(w)), d(an_id(w))),
        "queue_summary": lambda s, d: s.queue_summary(),
        "purge": lambda s, d: s.purge(**d(fields(w, ["older_than", "keep_last", "dry_run"]).map(
            lambda given: {key: value for key, value in given.items() if key != "not_a_field"}))),
        "scripts.record": lambda s, d: s.scripts.record(d(an_id(w)), **d(known_fields(
            w, ["description", "device", "model"], ["name"]))),
        "scripts.report": lambda s, d: s.scripts.report(d(an_id(w)), success=d(anything), seconds=d(floats | anything)),
        "scripts.activate": lambda s, d: s.scripts.activate(d(an_id(w))),
        "scripts.best": lambda s, d: s.scripts.best(d(an_id(w))),
        "scripts.list": lambda s, d: s.scripts.list(d(an_id(w) | st.none()), **d(known_fields(
            w, ["name", "active", "limit", "offset"]))),
        "summary": lambda s, d: s.summary(**d(known_fields(w, ["by", "run", "since"]))),
        "decisions.log": lambda s, d: s.decisions.log(**d(known_fields(w, DECISION, ["domain", "subject_id", "action"]))),
        "decisions.log_many": lambda s, d: s.decisions.log_many(d(st.lists(fields(w, DECISION), max_size=3) | anything)),
        "decisions.list": lambda s, d: s.decisions.list(**d(known_fields(
            w, ["domain", "subject_id", "action", "policy_version", "evaluated", "since", "limit", "offset"]))),
        "decisions.declare": lambda s, d: s.decisions.declare(d(texts | anything), actions=d(st.lists(texts) | anything),
                                                              signals=d(st.lists(texts) | anything)),
        "signals.add": lambda s, d: s.signals.add(**d(known_fields(w, SIGNAL, ["subject_id", "kind"]))),
        "signals.add_many": lambda s, d: s.signals.add_many(d(st.lists(fields(w, SIGNAL), max_size=3) | anything)),
        "rewards.evaluate": lambda s, d: s.rewards.evaluate(**d(known_fields(
            w, ["domain", "rules", "as_of", "batch_size", "force"]))),
        "rewards.statistics": lambda s, d: s.rewards.statistics(**d(known_fields(w, ["domain", "since",
                                                                                     "policy_version"]))),
        "recording.apply": lambda s, d: s.recording.apply(d(st.lists(st.sampled_from(OPERATION_MODELS).flatmap(
            lambda model: record_fields(w, model, ["op"])), max_size=3))),
    })
    return table


@PROPERTY
@given(data=st.data())
def test_every_call_returns_or_raises_a_rolloutdb_error_and_a_refused_call_writes_nothing(world, data):
    name = data.draw(st.sampled_from(sorted(world.calls)), label="call")
    before = snapshot(world.store)
    try:
        world.calls[name](world.store, data.draw)
    except RolloutDBError:
        after = snapshot(world.store)
        changed = [[(a, b) for a, b in zip(rows_before, rows_after) if a != b] or (len(rows_before), len(rows_after))
                   for rows_before, rows_after in zip(before, after) if rows_before != rows_after]
        assert not changed, f"{name} raised but wrote: {changed}"
    assert snapshot(world.other) == world.other_rows, f"{name} changed another project's rows"
