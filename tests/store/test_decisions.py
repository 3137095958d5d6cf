"""The flywheel's record: decisions logged with their state and propensity, signals of their subjects, declared
domains, actions and kinds; the same on every backend and through a server."""

import uuid
from datetime import datetime, timedelta, timezone

import pytest

import rolloutdb
from rolloutdb.errors import ConflictError, InvalidInputError, NotDeclaredError

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_a_decision_is_logged_with_its_reason_state_and_propensity_and_read_back(store):
    logged = store.decisions.log("memory", "mem-1", "insert", reason="a new fact about the user",
                                 state={"length": 42, "similar": 0}, context={"actor": "extractor"},
                                 policy_version="rules-1", propensity=0.8, at=T0)
    assert store.decisions.get(logged.id) == logged
    (listed,) = store.decisions.list("memory")
    assert (listed.subject_id, listed.action, listed.reason, listed.state, listed.context, listed.policy_version,
            listed.propensity, listed.created_at) == ("mem-1", "insert", "a new fact about the user",
                                                      {"length": 42, "similar": 0}, {"actor": "extractor"},
                                                      "rules-1", 0.8, T0)
    assert listed.reward is None and listed.evaluated_at is None


def test_list_is_newest_first_and_narrows_by_subject_action_version_and_time(store):
    for day, (subject, action, version) in enumerate([("a", "insert", "v1"), ("a", "update", "v2"),
                                                      ("b", "delete", "v2"), ("b", "ignore", "v1")]):
        store.decisions.log("memory", subject, action, policy_version=version, at=T0 + timedelta(days=day))
    assert [d.action for d in store.decisions.list()] == ["ignore", "delete", "update", "insert"]
    assert [d.action for d in store.decisions.list("memory", subject_id="a")] == ["update", "insert"]
    assert [d.action for d in store.decisions.list(policy_version="v2")] == ["delete", "update"]
    assert [d.action for d in store.decisions.list(since=T0 + timedelta(days=2))] == ["ignore", "delete"]
    assert [d.action for d in store.decisions.list(action="delete")] == ["delete"]
    assert [d.action for d in store.decisions.list(limit=2, offset=1)] == ["delete", "update"]
    assert store.decisions.list(evaluated=True) == []
    assert store.decisions.count(domain="memory") == 4


def test_log_many_stores_a_batch_and_a_decision_logged_again_under_its_id_once(store):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    batch = [{"domain": "memory", "subject_id": f"m{n}", "action": "insert", "id": ids[n], "at": T0,
              "state": {"n": n}, "propensity": 0.5} for n in range(3)]
    assert [d.id for d in store.decisions.log_many(batch)] == ids
    assert store.decisions.log_many(batch) == []  # resent: nothing new
    again = store.decisions.log("memory", "m0", "insert", id=ids[0], at=T0)
    assert again.id == ids[0]
    assert store.decisions.count() == 3
    assert sorted(d.state["n"] for d in store.decisions.query()) == [0, 1, 2]


def test_signals_are_added_with_their_kind_value_and_time(store):
    hit = store.signals.add("mem-1", "hit", at=T0)
    quality = store.signals.add("mem-1", "quality", 0.9, at=T0 + timedelta(hours=1))
    feedback = store.signals.add("mem-1", "feedback", -1.0, data={"text": "wrong"})
    assert (hit.kind, hit.value, hit.time, hit.domain) == ("hit", 1.0, T0, "memory")
    assert quality.value == 0.9
    assert feedback.data == {"text": "wrong"} and feedback.time >= feedback.recorded_at - timedelta(seconds=1)
    assert [s.kind for s in store.signals.query(subject_id="mem-1", sort="time")] == ["hit", "quality", "feedback"]
    new = store.signals.add_many([{"subject_id": "mem-2", "kind": "hit", "at": T0, "id": hit.id},
                                  {"subject_id": "mem-2", "kind": "hit", "at": T0}])
    assert len(new) == 1 and new[0].subject_id == "mem-2"  # the first one's id is stored already
    assert store.signals.count() == 4


def test_unknown_domain_action_and_signal_kind_are_refused_listing_the_declared_ones_and_write_nothing(store):
    with pytest.raises(NotDeclaredError, match="unknown domain 'memry'.*declared domains: memory"):
        store.decisions.log("memry", "m", "insert")
    with pytest.raises(NotDeclaredError, match="unknown action 'upsert'.*insert, update, ignore, delete"):
        store.decisions.log("memory", "m", "upsert")
    with pytest.raises(NotDeclaredError, match="unknown signal kind 'click'.*hit, quality, feedback"):
        store.signals.add("m", "click")
    with pytest.raises(NotDeclaredError, match="unknown action"):
        store.decisions.log_many([{"domain": "memory", "subject_id": "m", "action": "insert"},
                                  {"domain": "memory", "subject_id": "m", "action": "merge"}])
    with pytest.raises(NotDeclaredError, match="unknown domain"):
        store.decisions.list("nope")
    assert store.decisions.count() == 0 and store.signals.count() == 0


@pytest.mark.parametrize("fields, message", [
    ({"propensity": 0.0}, "propensity"),
    ({"propensity": 1.5}, "propensity"),
    ({"propensity": float("nan")}, "propensity"),
    ({"state": {"x": float("inf")}}, "state"),
    ({"reason": 5}, "reason"),
    ({"at": "2026-11-01"}, "at|created_at"),
    # Not JSON values: through a server too, where JSON would have carried them as lists.
    ({"state": {1, 2}}, "state"),
    ({"state": (1, 2)}, "state"),
    ({"context": frozenset()}, "context"),
])
def test_bad_decision_values_are_refused_naming_the_field(store, fields, message):
    with pytest.raises(InvalidInputError, match=message):
        store.decisions.log("memory", "m", "insert", **fields)
    assert store.decisions.count() == 0


def test_signal_data_that_is_not_a_json_value_is_refused_naming_it(store):
    with pytest.raises(InvalidInputError, match="data"):
        store.signals.add("m", "hit", data={"a", "b"})
    assert store.signals.count() == 0


def test_a_batch_with_an_unknown_field_is_refused_naming_it(store):
    with pytest.raises(InvalidInputError, match="rewrd"):
        store.decisions.log_many([{"domain": "memory", "subject_id": "m", "action": "insert", "rewrd": 1}])
    with pytest.raises(InvalidInputError, match="valu"):
        store.signals.add_many([{"subject_id": "m", "kind": "hit", "valu": 1}])
    assert store.decisions.count() == 0 and store.signals.count() == 0


def test_a_declared_domain_takes_its_actions_and_kinds_and_a_declaration_only_adds(store):
    declared = store.decisions.declare("retrieval", actions=["keep", "drop"], signals=["click"])
    assert (declared.actions, declared.signals) == (["keep", "drop"], ["click"])
    store.decisions.log("retrieval", "doc-1", "drop", propensity=0.3)
    store.signals.add("doc-1", "click", domain="retrieval")
    more = store.decisions.declare("retrieval", actions=["boost"], signals=["dwell"])
    assert (more.actions, more.signals) == (["keep", "drop", "boost"], ["click", "dwell"])
    memory = store.decisions.declare("memory", actions=["insert"], signals=["similar"])
    assert (memory.actions, memory.signals) == (["insert", "update", "ignore", "delete"],
                                                ["hit", "quality", "feedback", "similar"])
    store.signals.add("mem-1", "similar", 3.0)
    assert [d.name for d in store.decisions.domains()] == ["memory", "retrieval"]
    with pytest.raises(NotDeclaredError, match="keep, drop, boost"):
        store.decisions.log("retrieval", "doc-1", "insert")


def test_a_domain_declaration_is_refused_when_malformed(store):
    with pytest.raises(InvalidInputError, match="actions"):
        store.decisions.declare("x", actions="insert", signals=["hit"])
    with pytest.raises(InvalidInputError, match="actions"):
        store.decisions.declare("x", actions=[], signals=["hit"])
    with pytest.raises(InvalidInputError, match="name"):
        store.decisions.declare("bad name!", actions=["a"], signals=["hit"])
    assert [d.name for d in store.decisions.domains()] == ["memory"]


def test_an_id_another_project_has_is_refused_not_skipped(store):
    logged = store.decisions.log("memory", "m", "insert")
    hit = store.signals.add("m", "hit")
    with rolloutdb.connect(store.url, project=f"other-{uuid.uuid4().hex[:8]}") as other:
        with pytest.raises(ConflictError, match=f"decision id '{logged.id}' is taken"):
            other.decisions.log("memory", "m", "insert", id=logged.id)
        with pytest.raises(ConflictError, match="signal id .* is taken"):
            other.signals.add_many([{"subject_id": "m", "kind": "hit", "id": hit.id}])
        assert other.decisions.count() == 0 and other.signals.count() == 0
