"""One rule for what the database can hold, on every write path and both backends: NaN and infinities
are not JSON, and PostgreSQL cannot store a NUL character (in JSON or in text). Such a value is refused at
write time with InvalidInputError naming the field, and the refused write changes nothing."""

import pytest

from rolloutdb.errors import InvalidInputError
from conftest import skip_on_http

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_a_run_config_with_nan_or_infinity_is_refused_naming_the_field(store, value):
    with pytest.raises(InvalidInputError, match=r"config\.lr: .* is not a JSON number"):
        store.runs.create(name="r", config={"lr": value})
    assert store.runs.count() == 0


def test_saving_tasks_with_nan_is_refused_and_saves_none_of_them(store):
    with pytest.raises(InvalidInputError, match=r"input\.target: nan is not a JSON number"):
        store.tasks.save([{"external_id": "fine", "input": {"target": 7}},
                          {"external_id": "bad", "input": {"target": NAN}}])
    assert store.tasks.count() == 0
    saved = store.tasks.save([{"external_id": "fine", "input": {"target": 7.5}}])
    assert store.tasks.get(saved[0].id).input == {"target": 7.5}


@pytest.mark.parametrize(("write", "field"), [
    (lambda store: store.runs.create(name="a\x00b"), "name"),
    (lambda store: store.runs.create(name="r", metadata={"note": "a\x00b"}), r"metadata\.note"),
    (lambda store: store.tasks.save([{"external_id": "t", "instruction": "say \x00"}]), "instruction"),
    (lambda store: store.validators.save("v", "exact", {"k\x00": 1}), "config"),
])
def test_a_nul_character_is_refused_on_every_backend_naming_the_field(store, write, field):
    with pytest.raises(InvalidInputError, match=rf"{field}: a string holds a NUL character"):
        write(store)
    assert store.runs.count() == 0 and store.tasks.count() == 0 and store.validators.count() == 0


def test_updates_spans_and_turns_follow_the_same_rule(store):
    claim = store.rollouts.start("x")
    rollout_id, attempt_id = claim.rollout.id, claim.attempt.id
    with pytest.raises(InvalidInputError, match=r"metrics\.loss: nan is not a JSON number"):
        store.rollouts.update(rollout_id, metrics={"loss": NAN}, reward=1.0)
    assert store.rollouts.get(rollout_id).reward is None
    with pytest.raises(InvalidInputError, match=r"attributes\.score: inf is not a JSON number"):
        store.spans.add(rollout_id=rollout_id, attempt_id=attempt_id, trace_id="t", span_id="s", name="n",
                        attributes={"score": INF})
    assert store.spans.count() == 0
    with pytest.raises(InvalidInputError, match=r"observation\.pixels\[1\]: nan is not a JSON number"):
        store.turns.create(rollout_id=rollout_id, turn_index=0, observation={"pixels": [0.5, NAN]})
    with pytest.raises(InvalidInputError, match=r"error: a string holds a NUL character"):
        store.turns.create(rollout_id=rollout_id, turn_index=0, error="bad \x00")
    assert store.turns.count() == 0


def test_a_recorded_batch_refuses_only_the_operation_with_nan(store):
    skip_on_http(store, "JSON cannot carry NaN: the client refuses the whole batch before sending it")
    run = {"op": "run.start", "session": "s", "id": "run-1", "name": "r", "started_at": "2026-01-01T00:00:00Z"}
    rollout = {"op": "rollout.start", "session": "s", "id": "ro-1", "run": "r", "started_at": "2026-01-01T00:00:00Z"}
    turn = {"op": "turn", "id": "t-1", "rollout_id": "ro-1", "turn_index": 0, "created_at": "2026-01-01T00:00:01Z"}
    result = store.recording.apply([run, rollout, {**turn, "observation": {"v": NAN}},
                                    {**turn, "id": "t-2", "turn_index": 1, "observation": {"v": 1.0}}])
    assert [(r.index, r.error) for r in result.rejected] == [(2, "InvalidInputError")]
    assert "observation.v: nan is not a JSON number" in result.rejected[0].message
    assert [t.observation for t in store.turns.query()] == [{"v": 1.0}]


@pytest.mark.parametrize(("field", "value", "where", "kind"), [
    ("attributes", {"image": b"\x89PNG"}, r"attributes\.image", "bytes"),
    ("attributes", {"tags": {"a", "b"}}, r"attributes\.tags", "set"),
    ("status", b"ok", "status", "bytes"),
    ("events", [{"at": frozenset({1})}], r"events\[0\]\.at", "frozenset"),
])
def test_a_span_value_that_is_not_json_is_refused_on_every_backend(store, field, value, where, kind):
    # A span's free-form fields take any value the database can hold as JSON: bytes or a set is none, through a
    # server as much as locally (where JSON would have carried them as text and a list, and stored them so).
    claim = store.rollouts.start("x")
    span = {"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "sequence_id": 1, "trace_id": "t",
            "span_id": "s", "name": "n", field: value}
    with pytest.raises(InvalidInputError, match=rf"cannot store spans: {where}: {kind} is not JSON"):
        store.spans.add_many([span])
    with pytest.raises(InvalidInputError, match=rf"{where}: {kind} is not JSON"):
        store.spans.add(**span)
    assert store.spans.count(attempt_id=None) == 0
