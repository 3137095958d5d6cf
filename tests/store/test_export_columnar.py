"""The columnar export (store/columnar.py): chat formats written to Parquet from columns hold exactly the rows the
general path writes as JSONL, whatever the turns hold (strings with escapes, objects, numbers, none, several
attempts, no turns, an LLM span's conversation on the same page); stored JSON text becomes the same message text
from either backend's spelling of it."""

import json
import uuid

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rolloutdb
from rolloutdb.store import export as export_module
from rolloutdb.store.columnar import message_texts
from rolloutdb.store.export import text

from conftest import BACKENDS

VALUES = ["plain", 'say "hi"', "back\\slash", "line\nbreak", "ünïcode ✓ 𝄞", "", " ", '"', "{not json}",
          {"b": 1, "a": [2, {"d": 1, "c": None}], "é": "x"}, {}, [], [3, "a", {"z": 1, "y": 2}], 3, -2.5, 1e20, True,
          False, None]


@pytest.mark.parametrize("spelling", [lambda value: orjson.dumps(value).decode(),  # SQLite's (orjson, compact)
                                      lambda value: json.dumps(value)])  # spaced, non-ASCII escaped, as JSONB's text
def test_stored_json_texts_become_the_message_texts_the_general_path_makes(spelling):
    stored = pa.array([spelling(value) for value in VALUES] + [None], pa.string())  # and one SQL NULL
    expected = [None if value is None else text(value) for value in VALUES] + [None]
    assert message_texts(stored).to_pylist() == expected
    assert message_texts(pa.chunked_array([stored.slice(0, 5), stored.slice(5)])).to_pylist() == expected


@pytest.fixture(params=BACKENDS)
def local_store(request, session_backends):
    with rolloutdb.connect(session_backends.database_url(request.param),
                           project=f"test-{uuid.uuid4().hex[:12]}") as store:
        yield store


def rollout(store, run, task, turns, *, input=None):
    claim = store.rollouts.start(input, run_id=run.id, task_id=task and task.id)
    for index, (observation, thinking, action) in enumerate(turns):
        store.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=index,
                           observation=observation, thinking=thinking, action=action)
    return store.rollouts.update(claim.rollout.id, status="succeeded", reward=1.0, success=True)


@pytest.mark.parametrize("name", ["trl-lm-chat", "trl-prompt-completion-chat"])
@pytest.mark.parametrize("messages", [{}, {"system": "Be exact.", "thinking": "drop"}, {"spans": False}])
def test_columnar_parquet_holds_the_rows_the_general_path_writes_as_jsonl(local_store, tmp_path, monkeypatch, name,
                                                                         messages):
    store = local_store
    run = store.runs.create(name="r")
    task = store.tasks.save([{"external_id": "t", "instruction": "Do it.", "input": {"n": 1}}])[0]
    bare = store.tasks.save([{"external_id": "bare", "input": {"q": "what?", "a": [1, 2]}}])[0]
    rollout(store, run, task, [(value, thinking, action) for value, thinking, action in
                               zip(VALUES, ["think", "", None, 'a "quote"\n'] * 5, reversed(VALUES))])
    rollout(store, run, bare, [({"screen": "home", "apps": ["a", "b"]}, None, {"type": "tap", "x": 1, "y": 2}),
                               (None, "nothing seen", "wait"), ("done", None, None)])
    rollout(store, run, None, [("only", "t", {"k": "v"})], input="an input as text")
    rollout(store, run, task, [])  # no turns: skipped
    unattached = store.rollouts.start(None, run_id=run.id, task_id=task.id)  # turns of no attempt: always taken
    store.turns.create(rollout_id=unattached.rollout.id, turn_index=0, observation="seen", action={"y": 1, "x": 2})
    store.rollouts.update(unattached.rollout.id, status="succeeded", reward=1.0)
    retried = store.rollouts.start(None, run_id=run.id, task_id=task.id,
                                   config={"max_attempts": 2, "retry_condition": ["failed"]})
    store.turns.create(rollout_id=retried.rollout.id, attempt_id=retried.attempt.id, turn_index=0,
                       observation="first try", action={"b": 0, "a": 0})
    store.attempts.update(retried.rollout.id, status="failed")
    second = store.attempts.start(retried.rollout.id)
    store.turns.create(rollout_id=retried.rollout.id, attempt_id=second.attempt.id, turn_index=0,
                       observation="second try", action={"b": 1, "a": 1})
    store.rollouts.update(retried.rollout.id, status="succeeded", reward=1.0)
    llm = store.rollouts.start("2+2?", run_id=run.id)
    store.turns.create(rollout_id=llm.rollout.id, attempt_id=llm.attempt.id, turn_index=0, observation="o", action="a")
    call = {"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "2+2?", "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "4"}
    store.spans.add_many([{"rollout_id": llm.rollout.id, "attempt_id": llm.attempt.id, "trace_id": "t", "span_id": "s",
                           "name": "chat", "attributes": call}])
    store.rollouts.update(llm.rollout.id, status="succeeded", reward=1.0)

    for page in (2, export_module.PAGE):  # pages with and without the LLM span's rollout, and every rollout at once
        monkeypatch.setattr(export_module, "PAGE", page)
        for selection in ({}, {"latest_attempt": False}):
            parquet, jsonl = tmp_path / "out.parquet", tmp_path / "out.jsonl"
            columns = store.export(name, selection, out=parquet, images="none", messages=messages)
            general = store.export(name, selection, out=jsonl, images="none", messages=messages)
            assert columns.model_copy(update={"path": general.path}) == general
            assert general.rows == 6 and general.skipped == {"no turns or LLM spans": 1}
            table = pq.read_table(parquet)
            rows = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
            assert table.equals(pa.Table.from_pylist(rows, schema=table.schema))
