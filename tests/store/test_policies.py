"""A domain's policy versions, the flywheel run and advice, the same on SQLite, PostgreSQL and through a server."""

import random
import uuid
from datetime import timedelta

import pytest

from rolloutdb.errors import ConflictError, InvalidInputError, NotDeclaredError, NotFoundError

ACTIONS = ("insert", "update", "ignore", "delete")


def logged_decisions(store, count=300, seed=0):
    """Decisions of a uniformly random policy, ten days old: kept facts are hit three times, chatter never."""
    rng = random.Random(seed)
    now = store.now()
    decisions, signals = [], []
    for index in range(count):
        kind, action = rng.choice(["fact", "chatter"]), rng.choice(ACTIONS)
        at = now - timedelta(days=10 + rng.random())
        subject = f"{uuid.uuid4().hex[:8]}-{index}"
        decisions.append({"subject_id": subject, "action": action, "state": {"kind": kind, "length": rng.random()},
                          "propensity": 0.25, "at": at})
        if kind == "fact" and action in ("insert", "update"):
            signals += [{"subject_id": subject, "kind": "hit", "at": at + timedelta(hours=h)} for h in (1, 2, 3)]
    store.decisions.log_many(decisions)
    store.signals.add_many(signals)


def test_the_flywheel_runs_and_advises_through_every_store(store):
    logged_decisions(store)
    report = store.run_flywheel("memory", train=True, seed=1)
    assert (report.samples, report.trained, report.activated, report.policy_version) == (300, True, True, "memory/v1")
    assert report.gain.low > 0
    recent = store.run_flywheel("memory", days=30)  # a window (a whole number of days, as JSON sends it), no training
    assert recent.samples == 300 and not recent.trained and recent.window_start is not None
    advice = store.advise("memory", {"kind": "chatter", "length": 0.3})
    assert advice.policy_version == "memory/v1" and advice.action in ACTIONS
    assert advice.probabilities[advice.action] == advice.propensity and set(advice.probabilities) == set(ACTIONS)
    assert store.policies.active("memory").version == 1
    with pytest.raises(InvalidInputError, match="lacks feature.*'length'"):
        store.advise("memory", {"kind": "fact"})
    # The advisor holds the policy in this process, whichever store it came through (a server's: its weights read
    # through the artifact routes once), and logs what it advises.
    advisor = store.advisor("memory", seed=1)
    assert advisor.advise({"kind": "fact", "length": 0.5}).policy_version == "memory/v1"
    decided = advisor.decide("advised-1", {"kind": "chatter", "length": 0.1})
    (logged,) = store.decisions.list("memory", subject_id="advised-1")
    assert (logged.action, logged.propensity) == (decided.action, decided.propensity)
    with pytest.raises(NotDeclaredError, match="unknown domain 'chess'"):
        store.advisor("chess")
    with pytest.raises(NotDeclaredError, match="unknown domain 'chess'; declared domains: memory"):
        store.advise("chess", {"kind": "fact"})


def test_policy_versions_are_listed_activated_and_rolled_back_through_every_store(store):
    assert store.policies.active("memory") is None
    with pytest.raises(ConflictError, match="nothing to roll back"):
        store.policies.rollback("memory")
    logged_decisions(store, 200)
    store.run_flywheel("memory", train=True)
    logged_decisions(store, 200, seed=1)
    second = store.run_flywheel("memory", train=True, seed=2)
    assert second.version == 2
    assert [c.version for c in store.policies.list("memory")] == [2, 1]
    assert store.policies.latest("memory").version == 2
    # Samples and checkpoints are read as every area's rows are, through a server too.
    assert store.samples.count(source="memory") == 400 and store.checkpoints.count(name="policy:memory") == 2
    checkpoint = store.checkpoints.query(name="policy:memory", sort="version", order="desc", limit=1)[0]
    assert store.checkpoints.get(checkpoint.id).version == 2 and checkpoint.metrics["samples"] == 400
    assert store.samples.query(source="memory", limit=1)[0].propensity == 0.25
    assert store.policies.activate("memory", 2).active
    assert store.policies.active("memory").version == 2
    assert store.policies.rollback("memory").version == 1
    with pytest.raises(NotFoundError, match="no version 9"):
        store.policies.activate("memory", 9)
