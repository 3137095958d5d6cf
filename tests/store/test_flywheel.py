"""Samples built from evaluated decisions (next state: the subject's next decision's), rebuilt not doubled when
rewards change, exported as JSONL and Parquet; the flywheel run and the advisor on top of them."""

import json
import random
import uuid
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

import rolloutdb
from conftest import BACKENDS
from rolloutdb.errors import InvalidInputError, NotDeclaredError, NotFoundError
from rolloutdb.policy import MissingFeaturesError, train_policy
from rolloutdb.store import samples as samples_module

DAY = timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        """A second on: an evaluation's job is named by its time (two at one instant would be one job)."""
        self.now += timedelta(seconds=1)


@pytest.fixture(params=BACKENDS)
def clock_and_store(request, session_backends):
    """A store on a database with a clock the test moves (the same operations through a server, at the real time:
    test_policies.py)."""
    clock = Clock()
    with rolloutdb.connect(session_backends.database_url(request.param), clock=clock,
                           project=f"test-{uuid.uuid4().hex[:12]}") as store:
        yield clock, store


def test_a_sample_per_evaluated_decision_with_the_subjects_next_state(clock_and_store, monkeypatch):
    clock, store = clock_and_store
    monkeypatch.setattr(samples_module, "PAGE", 2)  # built a page at a time: here, two pages
    start = clock.now - 20 * DAY
    first = store.decisions.log("memory", "m1", "insert", state={"length": 10}, propensity=0.5, at=start,
                                policy_version="memory/v1")
    second = store.decisions.log("memory", "m1", "update", state={"length": 12}, at=start + DAY)
    other = store.decisions.log("memory", "m2", "ignore", state={"length": 3, "similar_memories": 2}, at=start)
    store.decisions.log("memory", "m3", "insert", state={"length": 5}, at=clock.now)  # not due: no sample
    store.signals.add("m1", "hit", at=start + 2 * DAY)
    store.rewards.evaluate("memory")
    assert store.samples.build("memory", dataset="week-9") == 3
    samples = {s.source_id: s for s in store.samples.of("memory")}
    assert set(samples) == {first.id, second.id, other.id}
    s1 = samples[first.id]
    assert (s1.source, s1.state, s1.action, s1.next_state, s1.done) == ("memory", {"length": 10}, "insert",
                                                                        {"length": 12}, False)
    assert (s1.propensity, s1.policy_version, s1.decided_at, s1.dataset) == (0.5, "memory/v1", start, "week-9")
    assert s1.reward == pytest.approx(0.95 ** (2 / 7))  # a hit two days on, decayed
    assert samples[second.id].done and samples[second.id].next_state is None  # the subject's last decision
    assert samples[other.id].reward == pytest.approx(1.0) and samples[other.id].done  # 2 similar × 0.5
    assert [s.source_id for s in store.samples.of("memory", since=start + DAY)] == [second.id]


def test_building_again_after_new_signals_updates_the_samples_never_doubles_them(clock_and_store):
    clock, store = clock_and_store
    decision = store.decisions.log("memory", "m1", "insert", state={"length": 10}, at=clock.now - 10 * DAY)
    store.rewards.evaluate("memory")
    store.samples.build("memory")
    assert store.samples.count(source="memory") == 1 and store.samples.of("memory")[0].reward == 0
    store.signals.add("m1", "hit", at=clock.now - 9 * DAY)
    clock.tick()
    store.rewards.evaluate("memory")
    assert store.samples.build("memory") == 1
    (sample,) = store.samples.of("memory")
    assert sample.source_id == decision.id and sample.reward > 0
    later = store.decisions.log("memory", "m1", "delete", state={"length": 11}, at=clock.now - 8 * DAY)
    clock.tick()
    store.rewards.evaluate("memory")
    store.samples.build("memory")
    rebuilt = {s.source_id: s for s in store.samples.of("memory")}
    assert rebuilt[decision.id].next_state == {"length": 11} and not rebuilt[decision.id].done
    assert rebuilt[later.id].done


def test_samples_export_as_jsonl_and_parquet(clock_and_store, tmp_path):
    clock, store = clock_and_store
    store.decisions.log("memory", "m1", "insert", state={"kind": "fact"}, propensity=0.25, at=clock.now - 9 * DAY)
    store.decisions.log("memory", "m2", "ignore", state={"kind": "chat"}, at=clock.now - 9 * DAY)
    store.rewards.evaluate("memory")
    store.samples.build("memory")
    assert store.samples.export(tmp_path / "s.jsonl", domain="memory") == 2
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert {(r["action"], r["state"]["kind"], r["propensity"]) for r in rows} == {("insert", "fact", 0.25),
                                                                                  ("ignore", "chat", None)}
    assert {"reward", "next_state", "done", "decided_at", "source_id"} <= set(rows[0])
    assert store.samples.export(tmp_path / "s.parquet") == 2
    table = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert sorted(json.loads(r["state"])["kind"] for r in table) == ["chat", "fact"]
    with pytest.raises(InvalidInputError, match=r"\.jsonl or \.parquet"):
        store.samples.export(tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


# -- the flywheel and the advisor ------------------------------------------------------------------------------


def simulate(store, clock, count, seed=0):
    """Decisions of a uniformly random logging policy on memories of two kinds: facts are hit, chatter never is
    (and a deleted chatter earns the rule's +0.5)."""
    rng = random.Random(seed)
    decisions, signals = [], []
    for index in range(count):
        kind = rng.choice(["fact", "chatter"])
        action = rng.choice(["insert", "update", "ignore", "delete"])
        subject = f"s{seed}-{index}"
        at = clock.now - 10 * DAY + DAY * rng.random()
        decisions.append({"subject_id": subject, "action": action, "state": {"kind": kind, "length": rng.random()},
                          "propensity": 0.25, "at": at})
        if kind == "fact" and action in ("insert", "update"):
            signals += [{"subject_id": subject, "kind": "hit", "at": at + DAY}] * 3
    store.decisions.log_many(decisions)
    store.signals.add_many([{**signal, "id": str(uuid.uuid4())} for signal in signals])


def test_the_flywheel_trains_checkpoints_and_activates_a_better_policy(clock_and_store):
    clock, store = clock_and_store
    simulate(store, clock, 400)
    stages = []
    report = store.run_flywheel("memory", train=True, on_progress=lambda stage, done, total: stages.append(stage))
    assert (report.evaluated, report.samples, report.trained) == (400, 400, True)
    assert report.training_samples + report.holdout_samples == 400 and report.holdout_samples == 120
    assert report.activated and report.version == 1 and report.policy_version == "memory/v1"
    assert report.gain.low > 0 and report.dr.value > report.logging.value and report.incumbent is None
    assert "activated" in report.verdict and "the logged decisions" in report.verdict
    assert list(dict.fromkeys(stages)) == ["evaluate", "samples", "train", "estimate", "checkpoint"]
    checkpoint = store.checkpoints.get(report.checkpoint_id)
    assert checkpoint.active and checkpoint.metrics["dr"]["value"] == report.dr.value
    assert checkpoint.window_start < checkpoint.window_end

    advisor = store.advisor("memory", epsilon=0.0)
    assert advisor.advise({"kind": "fact", "length": 0.5}).action in ("insert", "update")
    advice = advisor.advise({"kind": "chatter", "length": 0.5})
    assert (advice.action, advice.propensity, advice.policy_version) == ("delete", 1.0, "memory/v1")

    # The same policy again is no better than the active one: checkpointed, kept inactive.
    clock.tick()
    again = store.run_flywheel("memory", train=True)
    assert (again.version, again.activated, again.policy_version) == (2, False, "memory/v1")
    assert again.incumbent is not None and "the active policy (memory/v1)" in again.verdict
    assert [c.active for c in store.policies.list("memory")] == [False, True]
    latest = store.policies.load(store.policies.latest("memory"))  # load latest: version 2, inactive
    assert latest.predict({"kind": "fact", "length": 0.5}).keys() == set(latest.actions)


def test_the_flywheel_without_train_or_with_too_few_samples_trains_nothing(clock_and_store):
    clock, store = clock_and_store
    simulate(store, clock, 20)
    report = store.run_flywheel("memory")
    assert (report.evaluated, report.samples, report.trained, report.version) == (20, 20, False, None)
    clock.tick()
    report = store.run_flywheel("memory", train=True)
    assert not report.trained and "20 samples" in report.verdict and store.policies.list("memory") == []
    clock.tick()
    report = store.run_flywheel("memory", train=True, days=1)  # none taken in the last day
    assert report.samples == 0 and report.window_start == clock.now - DAY


def test_the_advisor_logs_the_propensity_and_picks_up_a_new_version(clock_and_store):
    clock, store = clock_and_store
    with pytest.raises(NotFoundError, match="no active policy for domain 'memory'.*flywheel run"):
        store.advisor("memory")
    states = [{"kind": k, "length": 1.0} for k in ("a", "b")] * 10
    policy = train_policy("memory", ("insert", "update", "ignore", "delete"), states, ["insert"] * 20,
                          [1.0] * 20, [0.5] * 20, epsilon=0.4)
    store.policies.save("memory", policy, activate=True)
    advisor = store.advisor("memory", seed=3)
    advice = advisor.decide("m1", {"kind": "a", "length": 2.0}, reason="asked")
    (logged,) = store.decisions.list("memory", subject_id="m1")
    assert (logged.action, logged.propensity, logged.policy_version) == (advice.action, advice.propensity, "memory/v1")
    assert advice.probabilities[advice.action] == advice.propensity
    assert sum(advice.probabilities.values()) == pytest.approx(1)
    assert logged.state == {"kind": "a", "length": 2.0} and logged.reason == "asked"
    with rolloutdb.DecisionLogger(store) as logger:  # queued: the caller never waits for the database
        queued = advisor.decide("m2", {"kind": "b", "length": 1.0}, logger=logger)
    (through_logger,) = store.decisions.list("memory", subject_id="m2")
    assert (through_logger.propensity, through_logger.policy_version) == (queued.propensity, "memory/v1")
    with pytest.raises(MissingFeaturesError, match="lacks feature.*'length'"):
        advisor.advise({"kind": "a"})
    assert advisor.refresh() is False
    store.policies.save("memory", policy, activate=True)
    assert advisor.refresh() is True and advisor.advise({"kind": "a", "length": 1}).policy_version == "memory/v2"
    assert store.policies.rollback("memory").version == 1
    assert advisor.refresh() and advisor.policy_version == "memory/v1"


def test_bad_input_to_the_flywheel_is_refused_naming_what_is_declared(clock_and_store):
    _, store = clock_and_store
    with pytest.raises(NotDeclaredError, match="unknown domain 'chess'; declared domains: memory"):
        store.run_flywheel("chess")
    with pytest.raises(NotDeclaredError, match="unknown domain 'chess'"):
        store.advisor("chess")
    with pytest.raises(NotDeclaredError, match="unknown domain 'chess'"):
        store.samples.build("chess")
    with pytest.raises(InvalidInputError, match="days is how far back"):
        store.run_flywheel("memory", days=-1)
    with pytest.raises(InvalidInputError, match="holdout is the share"):
        store.run_flywheel("memory", holdout=1.0)
    with pytest.raises(InvalidInputError, match="alpha is the ridge regularisation"):
        store.run_flywheel("memory", alpha=-1.0)
    with pytest.raises(InvalidInputError, match="bootstrap is a number of resamples from 10 to 100,000"):
        store.run_flywheel("memory", bootstrap=10 ** 12)
    with pytest.raises(InvalidInputError, match="confidence is between 0 and 1"):
        store.run_flywheel("memory", confidence=float("nan"))
    assert store.decisions.list("memory") == []  # refused before anything ran
    with pytest.raises(InvalidInputError, match="epsilon is an exploration rate"):
        store.advisor("memory", epsilon=2)
    with pytest.raises(NotFoundError, match="no version 7"):
        store.policies.activate("memory", 7)
