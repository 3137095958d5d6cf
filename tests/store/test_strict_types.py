"""Values are taken as the type they are, never converted: a value of the wrong type is refused with
InvalidInputError naming the field, on every backend, and changes nothing; what users pass in the right
types (an int for a float, a status as its string, NumPy scalars, aware datetimes) still works."""

from datetime import datetime, timezone

import numpy as np
import pytest

from rolloutdb.errors import InvalidInputError
from rolloutdb.states import RolloutStatus


WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

# kind of field -> (field of a rollout update, values of the wrong type)
WRONG_UPDATES = {
    "number": ("reward", ["1.5", True, b"1", [1.0]]),
    "flag": ("success", ["yes", 1, 0, "true", None.__class__]),
    "status": ("status", [1, b"running", ["running"], "RUNNING"]),
    "json": ("metadata", ["{}", [("a", 1)], {"a": {1, 2}}, {"a": object()}]),
    "id": ("resources_id", [b"abc", 5, ["abc"]]),
    "text": ("error", [b"boom", 3.5]),
}


@pytest.mark.parametrize("kind", WRONG_UPDATES)
def test_an_update_of_the_wrong_type_is_refused_by_name_and_changes_nothing(store, kind):
    field, values = WRONG_UPDATES[kind]
    rollout = store.rollouts.create(input={"q": 1}, reward=0.5, success=False, metadata={"k": "v"}, error="was")
    for value in values:
        with pytest.raises(InvalidInputError, match=rf"\b{field}\b"):
            store.rollouts.update(rollout.id, **{field: value})
    assert store.rollouts.get(rollout.id) == rollout
    assert [change.new_status for change in store.history("rollout", rollout.id)] == ["queuing"]


# kind of field -> (area, fields it is created with, field, values of the wrong type)
WRONG_CREATES = {
    "whole number": ("rollouts", {}, "step", [3.0, "3", True, np.float64(3.0)]),
    "group size": ("groups", {}, "size", [2.5, "2", True]),
    "time": ("runs", {"name": "r"}, "started_at", ["2026-01-02T03:04:05Z", 1767323045, WHEN.replace(tzinfo=None)]),
    "kind": ("runs", {"name": "r"}, "kind", [0, b"train"]),
    "id": ("rollouts", {}, "id", [b"an-id", 7]),
    "name": ("runs", {}, "name", [b"r", 1]),
    "number": ("runs", {"name": "r"}, "progress", ["50", False]),
}


@pytest.mark.parametrize("kind", WRONG_CREATES)
def test_a_create_of_the_wrong_type_is_refused_by_name_and_writes_nothing(store, kind):
    area_name, fields, field, values = WRONG_CREATES[kind]
    area = getattr(store, area_name)
    for value in values:
        with pytest.raises(InvalidInputError, match=rf"\b{field}\b"):
            area.create(**fields, **{field: value})
    assert area.count() == 0


def test_a_step_number_of_the_wrong_type_is_refused_by_name(store):
    run = store.runs.create(name="r")
    for value in (1.0, "1", True):
        with pytest.raises(InvalidInputError, match=r"\bnumber\b"):
            store.steps.create(run_id=run.id, number=value)
    assert store.steps.count() == 0


def test_spans_and_turns_of_the_wrong_type_are_refused_by_name_and_write_nothing(store):
    claim = store.rollouts.start(input={"q": 1})
    ids = {"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id}
    with pytest.raises(InvalidInputError, match=r"\bstart_time\b"):
        store.spans.add(**ids, trace_id="t", span_id="s", name="n", start_time="2026-01-02T03:04:05Z")
    with pytest.raises(InvalidInputError, match=r"\bsequence_id\b"):
        store.spans.add(**ids, trace_id="t", span_id="s", name="n", sequence_id=1.0)
    for field, value in (("done", "yes"), ("reward", "0.5"), ("turn_index", 0.0), ("duration_seconds", "1")):
        with pytest.raises(InvalidInputError, match=rf"\b{field}\b"):
            store.turns.create(**{"rollout_id": claim.rollout.id, "turn_index": 0, field: value})
    assert store.spans.count(claim.rollout.id, None) == 0 and store.turns.count() == 0


def test_values_of_the_right_types_are_kept_as_given(store):
    rollout = store.rollouts.create(input={"q": 1}, step=np.int64(2), metadata={"nested": {"list": [1, 2.5, None]}})
    assert (rollout.step, type(rollout.step)) == (2, int)
    changed = store.rollouts.update(rollout.id, reward=1, success=np.bool_(True), status=RolloutStatus.PREPARING)
    assert (changed.reward, type(changed.reward), changed.success, changed.status) == (1.0, float, True, "preparing")
    changed = store.rollouts.update(rollout.id, reward=np.float32(0.5), status="running")
    assert (changed.reward, changed.status) == (0.5, "running")
    assert store.rollouts.get(rollout.id) == changed
    run = store.runs.create(name="r", started_at=WHEN, progress=50, kind="eval")
    assert store.runs.get(run.id).started_at == WHEN and store.runs.get(run.id).progress == 50.0
