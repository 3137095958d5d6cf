"""Records and tables describe the same data: one record field per column."""

import time
import typing

import pydantic
import pytest
import sqlalchemy

from rolloutdb import records, schema
from rolloutdb.errors import InvalidInputError
from conftest import skip_on_http

PAIRS = [
    (records.Project, schema.projects), (records.Run, schema.runs), (records.RunEvent, schema.run_events),
    (records.StatusChange, schema.status_changes), (records.Step, schema.steps), (records.Task, schema.tasks),
    (records.Validator, schema.validators), (records.Group, schema.groups), (records.Rollout, schema.rollouts),
    (records.Attempt, schema.attempts), (records.Worker, schema.workers), (records.Turn, schema.turns),
    (records.Span, schema.spans), (records.Resources, schema.resources), (records.Artifact, schema.artifacts),
    (records.ArtifactChunk, schema.artifact_chunks),
    (records.ArtifactLink, schema.artifact_links), (records.Script, schema.scripts),
    (records.Decision, schema.decisions), (records.Signal, schema.signals), (records.Sample, schema.samples),
    (records.ModelCheckpoint, schema.checkpoints), (records.ApiToken, schema.api_tokens),
    (records.Event, schema.events), (records.EventTrim, schema.event_trims),
]


def test_every_table_has_a_record():
    assert {table.name for _, table in PAIRS} == set(schema.metadata.tables)


@pytest.mark.parametrize(("record", "table"), PAIRS, ids=[t.name for _, t in PAIRS])
def test_record_fields_match_table_columns(record, table):
    assert set(record.model_fields) == {column.name for column in table.columns}


def test_ids_are_time_ordered_and_unique():
    from rolloutdb.ids import new_id, new_ids

    import uuid

    # Batches larger than the 4,096 ids one millisecond's counter holds, between single ids.
    ids = [new_id() for _ in range(5000)] + new_ids(10_000) + [new_id()] + new_ids(3) + [new_id()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in (ids[0], ids[-1]):
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 7, uuid.RFC_4122)
        # The first 48 bits are the Unix time in milliseconds (a batch's counter may run a little ahead).
        assert abs((parsed.int >> 80) - time.time_ns() // 1_000_000) < 60_000


INT32_MAX = 2 ** 31 - 1


@pytest.mark.parametrize(("record", "table"), PAIRS, ids=[t.name for _, t in PAIRS])
def test_record_integers_stay_within_their_columns(record, table):
    # A value the column cannot hold is refused by the record, naming the field, before any driver sees it.
    for column in table.columns:
        if type(column.type) is sqlalchemy.Integer and column.name in record.model_fields:
            field = record.model_fields[column.name]
            check = pydantic.TypeAdapter(typing.Annotated[field.annotation, *field.metadata] if field.metadata
                                         else field.annotation)
            assert check.validate_python(INT32_MAX) == INT32_MAX
            with pytest.raises(pydantic.ValidationError):
                check.validate_python(INT32_MAX + 1)


def test_an_integer_too_large_for_its_column_is_refused_by_name(store):
    with pytest.raises(InvalidInputError, match="step"):
        store.rollouts.create(step=2 ** 40)
    assert store.rollouts.count() == 0


def test_text_longer_than_its_column_is_refused_by_name_on_every_write_path(store):
    # PostgreSQL would raise its own error; SQLite would keep it, for reads to fail on or to differ.
    with pytest.raises(InvalidInputError, match=r"dataset: a string of 201 characters is longer than the 200"):
        store.tasks.create(external_id="t", dataset="d" * 201)  # a bulk insert
    claim = store.rollouts.start({"q": 1})
    with pytest.raises(InvalidInputError, match=r"name: a string of 501 characters"):
        store.spans.add(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s",
                        name="n" * 501)
    task = store.tasks.create(external_id="t", dataset="d" * 200)
    with pytest.raises(InvalidInputError, match=r"split: a string of 101 characters"):
        store.tasks.update(task.id, split="s" * 101)  # a prepared UPDATE
    assert store.tasks.get(task.id) == task and store.spans.count(claim.rollout.id) == 0


def test_an_id_too_long_for_its_column_is_refused_by_name(store):
    skip_on_http(store, "an empty worker id makes a path the server has no route for (NotFoundError)")
    with pytest.raises(InvalidInputError, match="worker_id"):
        store.rollouts.start({"q": 1}, worker_id="w" * 129)
    with pytest.raises(InvalidInputError, match="id"):
        store.workers.heartbeat("")
    assert store.rollouts.count() == 0 and store.workers.query() == []


def test_records_the_store_checked_are_built_as_validation_builds_them():
    """A remote client builds the spans of a batch the server's store validated without validating them again
    (``checked_records``): the very records validation makes — fields in their order, the defaults of those not
    given, only the given ones set — each with containers of its own."""
    from datetime import datetime, timezone

    from rolloutdb.store.base import build_records, checked_records

    given = {"id": "span-1", "project_id": "p", "created_at": datetime.now(timezone.utc), "rollout_id": "r",
             "attempt_id": "a", "sequence_id": 1, "trace_id": "t", "span_id": "s", "name": "llm"}
    items = [given, {**given, "status": {"code": "OK"}, "attributes": {"k": [1, 2.5]}, "events": [{"name": "e"}],
                     "start_time": datetime(2026, 1, 2, tzinfo=timezone.utc), "parent_id": None},
             {**given, "sequence_id": 2}, {**given, "sequence_id": 3}]
    built = checked_records(records.Span, [dict(item) for item in items])
    validated = build_records(records.Span, items, "span")
    assert built == validated
    for ours, theirs in zip(built, validated):
        assert list(ours.__dict__.items()) == list(theirs.__dict__.items())
        assert ours.model_fields_set == theirs.model_fields_set
        assert ours.model_dump_json(exclude_unset=True) == theirs.model_dump_json(exclude_unset=True)
    built[2].events.append({"name": "late"})
    built[2].parent_id = "span-0"  # sets it
    assert built[3].events == [] and "parent_id" not in built[3].model_fields_set
    with pytest.raises(TypeError, match="validates its defaults"):
        checked_records(records.Run, [])
