"""Reward rules and evaluation: the seed's memory rules as the default, rules from a dict or a TOML file (refused
naming the line), evaluation as a job that is idempotent and follows new signals, statistics per action and policy
version; on every backend and through a server."""

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from rolloutdb.errors import ConflictError, InvalidInputError, NotDeclaredError
from rolloutdb.store.reward_rules import RuleSet

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def decay(days):
    return 0.95 ** (days / 7)


def test_the_default_memory_rules_are_the_seeds_four(store):
    insert = store.decisions.log("memory", "kept", "insert", at=T0, policy_version="rules")
    update = store.decisions.log("memory", "improved", "update", at=T0, state={"quality": 0.4}, policy_version="rules")
    ignore = store.decisions.log("memory", "dup", "ignore", at=T0, state={"similar_memories": 3}, policy_version="rules")
    quiet = store.decisions.log("memory", "stale", "delete", at=T0, policy_version="rules")
    missed = store.decisions.log("memory", "wanted", "delete", at=T0, policy_version="rules")
    store.signals.add_many([{"subject_id": "kept", "kind": "hit", "at": T0 + DAY},
                            {"subject_id": "kept", "kind": "hit", "at": T0 + 8 * DAY},
                            {"subject_id": "improved", "kind": "hit", "at": T0 + 2 * DAY},
                            {"subject_id": "improved", "kind": "quality", "value": 0.9, "at": T0 + 3 * DAY},
                            {"subject_id": "wanted", "kind": "hit", "at": T0 + 2 * DAY},
                            {"subject_id": "kept", "kind": "hit", "at": T0 + 40 * DAY}])  # beyond the 30-day window
    result = store.rewards.evaluate("memory", as_of=T0 + 10 * DAY)
    assert (result.status, result.due, result.evaluated, result.changed) == ("completed", 5, 5, 5)
    rewards = {d.id: d.reward for d in store.decisions.list()}
    assert rewards[insert.id] == pytest.approx(decay(1) + decay(8))
    assert rewards[update.id] == pytest.approx(decay(2) + 0.5 * (0.9 - 0.4) * decay(3))
    assert rewards[ignore.id] == pytest.approx(1.5)
    assert rewards[quiet.id] == pytest.approx(0.5)
    assert rewards[missed.id] == pytest.approx(-0.3)
    kept = store.decisions.get(insert.id)
    assert kept.outcome["signals"]["hit"]["count"] == 2 and kept.evaluated_at is not None


def test_a_decision_is_evaluated_only_after_its_delay(store):
    store.decisions.log("memory", "m", "insert", at=T0)
    assert store.rewards.evaluate("memory", as_of=T0 + 6 * DAY).evaluated == 0
    assert store.decisions.list(evaluated=True) == []
    assert store.rewards.evaluate("memory", as_of=T0 + 7 * DAY).evaluated == 1


def test_evaluating_again_never_double_counts_and_new_signals_update_the_reward(store):
    logged = store.decisions.log("memory", "m", "insert", at=T0)
    store.signals.add("m", "hit", at=T0 + DAY)
    store.rewards.evaluate("memory", as_of=T0 + 7 * DAY)
    first = store.decisions.get(logged.id).reward
    again = store.rewards.evaluate("memory", as_of=T0 + 7 * DAY)
    assert again.changed == 0 and store.decisions.get(logged.id).reward == first
    forced = store.rewards.evaluate("memory", as_of=T0 + 7 * DAY, force=True)
    assert forced.evaluated == 1 and forced.changed == 0 and store.decisions.get(logged.id).reward == first
    store.signals.add("m", "hit", at=T0 + 5 * DAY)
    later = store.rewards.evaluate("memory", as_of=T0 + 7 * DAY)
    assert later.changed == 1
    assert store.decisions.get(logged.id).reward == pytest.approx(decay(1) + decay(5))


def test_rules_from_a_dict_replace_the_defaults_with_weights_decay_window_and_clipping(store):
    rules = {"memory": {"delay_days": 1, "window_days": 3, "decay": 0.5, "decay_days": 1,
                        "insert": {"weights": {"hit": 2.0, "feedback": 1.0}, "clip": [-1, 3]},
                        "delete": {"weights": {"hit": -1.0}}}}
    clipped = store.decisions.log("memory", "a", "insert", at=T0)
    decayed = store.decisions.log("memory", "b", "insert", at=T0)
    store.signals.add_many([{"subject_id": "a", "kind": "hit", "at": T0}, {"subject_id": "a", "kind": "hit", "at": T0},
                            {"subject_id": "b", "kind": "hit", "at": T0 + DAY},
                            {"subject_id": "b", "kind": "feedback", "value": -1.0, "at": T0 + 2 * DAY},
                            {"subject_id": "b", "kind": "hit", "at": T0 + 4 * DAY}])  # after the window
    store.decisions.log("memory", "c", "update", at=T0)  # no rule for update here: not evaluated
    result = store.rewards.evaluate("memory", rules=rules, as_of=T0 + 2 * DAY)
    assert result.evaluated == 2
    assert store.decisions.get(clipped.id).reward == 3.0
    assert store.decisions.get(clipped.id).outcome["clipped"] is True
    assert store.decisions.get(decayed.id).reward == pytest.approx(2.0 * 0.5 - 0.25)


def test_statistics_per_action_and_policy_version_with_a_confidence_interval(store):
    rules = {"memory": {"delay_days": 0, "insert": {"weights": {"hit": 1.0}, "decay": 1.0},
                        "ignore": {"weights": {"hit": 1.0}}}}
    for n, hits in enumerate([0, 1, 3, 4]):
        store.decisions.log("memory", f"s{n}", "insert", at=T0, policy_version="v1")
        store.signals.add_many([{"subject_id": f"s{n}", "kind": "hit", "at": T0} for _ in range(hits)])
    store.decisions.log("memory", "t", "insert", at=T0, policy_version="v2")
    store.decisions.log("memory", "u", "ignore", at=T0, policy_version="v1")
    store.decisions.log("memory", "v", "insert", at=T0 + DAY, policy_version="v1")  # not due: not counted
    store.rewards.evaluate("memory", rules=rules, as_of=T0)
    stats = {(s.action, s.policy_version): s for s in store.rewards.statistics("memory")}
    assert sorted(stats) == [("ignore", "v1"), ("insert", "v1"), ("insert", "v2")]
    v1 = stats[("insert", "v1")]
    assert v1.count == 4 and v1.mean == pytest.approx(2.0)
    assert v1.std == pytest.approx((10 / 3) ** 0.5)  # of 0, 1, 3, 4
    half = 3.182 * (10 / 3) ** 0.5 / 4 ** 0.5
    assert (v1.ci_low, v1.ci_high) == (pytest.approx(2.0 - half, rel=1e-4), pytest.approx(2.0 + half, rel=1e-4))
    assert stats[("insert", "v2")].count == 1 and stats[("insert", "v2")].std is None
    assert [s.policy_version for s in store.rewards.statistics("memory", policy_version="v2")] == ["v2"]
    assert store.rewards.statistics("memory", since=T0 + DAY) == []  # v is not evaluated yet


def stopped_midway(store, request, count=300):
    """An evaluation of ``count`` due decisions, one per batch, that another thread asks to stop (``request``:
    jobs.request_pause or request_cancel) once it has made progress; its job's name and result."""
    store.decisions.log_many([{"domain": "memory", "subject_id": f"s{n}", "action": "insert", "at": T0}
                              for n in range(count)])
    name = f"rewards-{uuid.uuid4().hex[:6]}"

    def stop_once_it_runs():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = store.jobs.get(name) if store.jobs.count(name=name) else None
            if job is not None and job.run.status == "running" and job.run.progress > 0:
                getattr(store.jobs, request)(name)
                return
            time.sleep(0.01)

    stopper = threading.Thread(target=stop_once_it_runs)
    stopper.start()
    result = store.rewards.evaluate("memory", as_of=T0 + 7 * DAY, batch_size=1, job=name)
    stopper.join()
    assert 0 < result.evaluated < count
    assert store.decisions.count(evaluated_at__isnull=False) == result.evaluated
    return name, result


def test_evaluation_is_a_job_that_pauses_at_a_checkpoint_and_resumes_where_it_stopped(store):
    name, first = stopped_midway(store, "request_pause")
    assert first.status == "paused" and store.jobs.get(name).run.status == "paused"
    with pytest.raises(ConflictError, match=f"job '{name}' is paused with concurrency key 'rewards/memory'"):
        store.rewards.evaluate("memory", as_of=T0 + 7 * DAY)  # one evaluation of a domain at a time
    second = store.rewards.evaluate("memory", as_of=T0 + 7 * DAY, batch_size=50, job=name)
    assert second.status == "completed" and second.evaluated == second.due == 300
    assert store.decisions.count(evaluated_at__isnull=True) == 0
    assert store.jobs.get(name).run.status == "completed"


def test_a_cancelled_evaluation_stops_at_a_checkpoint_and_a_new_one_does_the_rest(store):
    name, first = stopped_midway(store, "request_cancel")
    assert first.status == "cancelled" and store.jobs.get(name).run.status == "cancelled"
    rest = store.rewards.evaluate("memory", as_of=T0 + 7 * DAY, batch_size=100)
    assert rest.status == "completed" and rest.evaluated == 300 - first.evaluated
    assert store.decisions.count(evaluated_at__isnull=True) == 0


def test_evaluate_refuses_unknown_domains_undeclared_rules_and_bad_arguments_changing_nothing(store):
    store.decisions.log("memory", "m", "insert", at=T0)
    with pytest.raises(NotDeclaredError, match="declared domains: memory"):
        store.rewards.evaluate("memry")
    with pytest.raises(NotDeclaredError, match="unknown signal kind 'click'.*hit, quality, feedback"):
        store.rewards.evaluate("memory", rules={"memory": {"insert": {"weights": {"click": 1.0}}}})
    with pytest.raises(NotDeclaredError, match="unknown action 'merge'"):
        store.rewards.evaluate("memory", rules={"memory": {"merge": {}}})
    with pytest.raises(InvalidInputError, match="memory.decay"):
        store.rewards.evaluate("memory", rules={"memory": {"decay": -0.1, "insert": {}}})
    with pytest.raises(InvalidInputError, match="memory.insert.colour: unknown key"):
        store.rewards.evaluate("memory", rules={"memory": {"insert": {"colour": "blue"}}})
    with pytest.raises(InvalidInputError, match="batch_size"):
        store.rewards.evaluate("memory", batch_size=0)
    with pytest.raises(InvalidInputError, match="as_of"):
        store.rewards.evaluate("memory", as_of="2026-12-01")
    with pytest.raises(InvalidInputError, match="since"):
        store.rewards.statistics("memory", since="baseline")
    with pytest.raises(InvalidInputError, match="delay_days"):
        store.rewards.evaluate("memory", rules={"memory": {"delay_days": 1e300, "insert": {}}})
    store.decisions.declare("retrieval", actions=["keep"], signals=["click"])
    with pytest.raises(InvalidInputError, match="no reward rules for domain 'retrieval'"):
        store.rewards.evaluate("retrieval")
    assert store.decisions.list(evaluated=True) == []
    assert store.jobs.count() == 0


@pytest.mark.parametrize("text, refusal", [
    ('[memory]\ndelay_days = 7\n\n[memory.insert]\nweights = { hit = 1.0 }\n\n[memory.delete]\n'
     'threshold = { kind = "hit", below = 0.1, reward = 0.5, otherwise = -0.3 }\ncolour = "blue"\n',
     r"line 9: .*memory.delete.colour: unknown key"),
    ("# my rules\n[memory]\ndelay_days = 7\ndecay = -0.5\n\n[memory.insert]\nweights = { hit = 1 }\n",
     r"line 4: .*memory.decay: .*greater than or equal to 0"),
    ("[memory.insert]\nweights = { hit = 1.0 }\ndecay_days = 0\n", r"line 3: .*memory.insert.decay_days"),
    ("[memory.insert]\nweights = { hit = 1.0, click = 'x' }\n", r"line 2: .*memory.insert.weights.click"),
    ("[memory.insert\n", r"rules.toml: not TOML: .*line 1"),
])
def test_a_rule_file_with_a_bad_key_or_value_is_refused_naming_the_line(tmp_path, text, refusal):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=refusal):
        RuleSet.load(path)


def test_a_rule_file_sets_a_domains_actions_and_their_shared_settings(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[memory]\ndecay = 0.9\n\n[memory.insert]\nweights = { hit = 2.0 }\n")
    rule = RuleSet.load(good).rules["memory"]["insert"]
    assert (rule.decay, rule.weights, rule.delay_days) == (0.9, {"hit": 2.0}, 7.0)


def test_decisions_at_the_ends_of_the_calendar_are_evaluated_without_overflowing(store):
    late = store.decisions.log("memory", "m", "insert", at=datetime(9999, 12, 30, tzinfo=timezone.utc))
    store.signals.add("m", "hit", at=datetime(9999, 12, 31, tzinfo=timezone.utc))
    assert store.rewards.evaluate("memory", as_of=datetime(1, 1, 2, tzinfo=timezone.utc)).due == 0
    result = store.rewards.evaluate("memory", rules={"memory": {"delay_days": 0, "insert": {"weights": {"hit": 1}}}},
                                    as_of=datetime(9999, 12, 31, tzinfo=timezone.utc))
    assert result.evaluated == 1 and store.decisions.get(late.id).reward == pytest.approx(decay(1))
