"""The learned policy (a contextual bandit over a state's features) and off-policy evaluation (IPS, doubly robust,
bootstrap intervals), on simulated decisions whose true values are known."""

import random

import numpy
import pytest

from rolloutdb.errors import InvalidInputError
from rolloutdb.offpolicy import action_indices, evaluate
from rolloutdb.policy import FeatureSchema, MissingFeaturesError, Policy, importance_weights, train_policy

ACTIONS = ("insert", "ignore")


def true_reward(state, action):
    """Facts are worth keeping, chatter costs to keep, long memories more so; ignoring earns nothing."""
    if action == "ignore":
        return 0.0
    return (0.5 if state["kind"] == "fact" else -1.0) + state["length"] / 100


def logged(count, seed, insert_probability=0.7):
    """Decisions of a logging policy that inserts with a fixed probability, whatever the state."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        state = {"kind": rng.choice(["fact", "chatter"]), "length": rng.uniform(0, 100), "urgent": rng.random() < .5}
        action = "insert" if rng.random() < insert_probability else "ignore"
        propensity = insert_probability if action == "insert" else 1 - insert_probability
        rows.append((state, action, true_reward(state, action) + rng.gauss(0, 0.3), propensity))
    return rows


def fit(rows, **options):
    states, taken, rewards, propensities = zip(*rows)
    return train_policy("memory", ACTIONS, states, taken, rewards, propensities, **options)


def true_value(policy, states):
    return numpy.mean([sum(p * true_reward(s, a) for a, p in policy.probabilities(s).items()) for s in states])


def test_the_policy_learns_which_action_pays_in_which_state():
    policy = fit(logged(2000, seed=1), epsilon=0.0)
    assert policy.probabilities({"kind": "fact", "length": 50, "urgent": False}) == {"insert": 1.0, "ignore": 0.0}
    assert policy.probabilities({"kind": "chatter", "length": 50, "urgent": True}) == {"insert": 0.0, "ignore": 1.0}
    predicted = policy.predict({"kind": "fact", "length": 80, "urgent": False})
    assert predicted["insert"] == pytest.approx(1.3, abs=0.1) and predicted["ignore"] == pytest.approx(0, abs=0.1)
    assert policy.schema.names == ["kind", "length", "urgent"]  # the flag is a number (0/1), the kind a category


def test_epsilon_spreads_probability_over_every_action_and_draws_follow_it():
    policy = fit(logged(500, seed=2), epsilon=0.2)
    state = {"kind": "fact", "length": 10, "urgent": False}
    assert policy.probabilities(state) == pytest.approx({"insert": 0.9, "ignore": 0.1})
    rng = random.Random(3)
    draws = [policy.choose(state, rng)[0] for _ in range(5000)]
    assert draws.count("ignore") / len(draws) == pytest.approx(0.1, abs=0.02)
    assert policy.probabilities(state, epsilon=0.0) == {"insert": 1.0, "ignore": 0.0}


def test_a_sample_logged_with_a_small_propensity_weighs_more():
    state = {"kind": "fact", "length": 1.0}
    states = [state, state, {"kind": "chatter", "length": 2.0}]
    policy = train_policy("memory", ACTIONS, states, ["insert", "insert", "ignore"], [1.0, 0.0, 0.0], [0.1, 0.9, 1.0],
                          alpha=1e-6)
    assert policy.predict(state)["insert"] == pytest.approx(0.9, abs=0.01)  # weights 10 and 1.11
    assert list(importance_weights([0.5, 0.01, None], max_weight=20)) == [2.0, 20.0, 1.0]
    assert policy.training["samples_per_action"] == {"insert": 2, "ignore": 1}


def test_an_action_no_sample_took_is_predicted_the_lowest_reward():
    rows = [(s, "insert", r, p) for s, _, r, p in logged(100, seed=4)]
    policy = train_policy("memory", ("insert", "ignore", "delete"), *zip(*rows))
    assert policy.predict(rows[0][0])["delete"] == pytest.approx(min(r for _, _, r, _ in rows))


def test_a_state_missing_a_feature_is_an_error_naming_it_not_a_default():
    policy = fit(logged(200, seed=5))
    with pytest.raises(MissingFeaturesError, match=r"lacks feature\(s\) 'length', 'urgent'; the policy reads kind, "):
        policy.probabilities({"kind": "fact"})
    with pytest.raises(MissingFeaturesError, match="feature 'length' is a number, got 'long'"):
        policy.predict({"kind": "fact", "length": "long", "urgent": True})
    with pytest.raises(MissingFeaturesError, match="a state is a mapping"):
        policy.predict(["fact"])
    assert isinstance(MissingFeaturesError("x"), InvalidInputError)
    # A category value not seen in training is no feature missing: its one-hot part is all zeros.
    assert set(policy.predict({"kind": "plan", "length": 1, "urgent": False})) == set(ACTIONS)


def test_the_schema_keeps_the_features_every_state_has_as_numbers_or_text():
    schema = FeatureSchema.infer([{"a": 1, "b": "x", "c": [1], "d": None, "e": 2.0}, {"a": 2, "b": "y", "e": "z"}])
    assert schema.names == ["a", "b"]
    with pytest.raises(InvalidInputError, match="'c' are not in every state"):
        FeatureSchema.infer([{"a": 1, "c": [1]}], only=["c"])
    with pytest.raises(InvalidInputError, match="no feature in common"):
        FeatureSchema.infer([{"a": 1}, {"b": 2}])


def test_a_stored_policy_reads_back_the_same_and_anything_else_is_refused():
    policy = fit(logged(300, seed=6))
    again = Policy.from_bytes(policy.to_bytes())
    states = [s for s, _, _, _ in logged(50, seed=7)]
    assert numpy.allclose(again.predict_many(states), policy.predict_many(states))
    assert (again.actions, again.epsilon, again.schema) == (policy.actions, policy.epsilon, policy.schema)
    broken = policy.to_bytes().replace(b'"intercepts":[', b'"intercepts":[1.0,')
    for data in (b"not json", b'{"format": "pickle"}', b'{"format": "rolloutdb.policy/1"}', broken):
        with pytest.raises(InvalidInputError, match="not a stored policy"):
            Policy.from_bytes(data)


def test_bad_training_input_is_refused():
    rows = logged(20, seed=8)
    states, taken, rewards, propensities = zip(*rows)
    with pytest.raises(InvalidInputError, match="not among insert, ignore"):
        train_policy("memory", ACTIONS, states, ["delete", *taken[1:]], rewards, propensities)
    with pytest.raises(InvalidInputError, match="as many each"):
        train_policy("memory", ACTIONS, states, taken, rewards[1:], propensities)
    with pytest.raises(InvalidInputError, match="propensity is the probability"):
        train_policy("memory", ACTIONS, states, taken, rewards, [0.0, *propensities[1:]])
    with pytest.raises(InvalidInputError, match="epsilon is an exploration rate"):
        train_policy("memory", ACTIONS, states, taken, rewards, propensities, epsilon=1.5)


def report_of(policy, rows, **options):
    states, taken, rewards, propensities = zip(*rows)
    return evaluate(policy.probabilities_many(states), action_indices(policy.actions, taken), rewards, propensities,
                    policy.predict_many(states), **options)


def test_off_policy_estimates_cover_the_true_value_of_a_better_policy():
    candidate = fit(logged(2000, seed=9), epsilon=0.1)
    held_out = logged(2000, seed=10)
    report = report_of(candidate, held_out)
    truth = true_value(candidate, [s for s, _, _, _ in held_out])
    logging_truth = numpy.mean([0.7 * true_reward(s, "insert") for s, _, _, _ in held_out])
    for estimate in (report.ips, report.dr):
        assert estimate.low <= truth <= estimate.high
    assert report.logging.low <= logging_truth <= report.logging.high
    assert report.dr.high - report.dr.low < report.ips.high - report.ips.low  # DR is the less noisy
    assert report.better and report.gain.low > 0 and report.samples == 2000


def test_a_policy_no_better_than_the_logging_one_is_not_called_better():
    # A candidate that inserts 70% of the time whatever the state: the logging policy itself.
    same = fit(logged(1000, seed=11), epsilon=0.6)
    same.coefficients, same.intercepts = [[0.0] * same.schema.width] * 2, [1.0, 0.0]
    same = Policy.from_bytes(same.to_bytes())
    report = report_of(same, logged(1000, seed=12))
    assert report.gain.low < 0 < report.gain.high and not report.better


def test_bootstrap_intervals_are_repeatable_by_seed_and_bad_input_is_refused():
    candidate = fit(logged(500, seed=13))
    rows = logged(300, seed=14)
    assert report_of(candidate, rows, seed=1) == report_of(candidate, rows, seed=1)
    assert report_of(candidate, rows, confidence=0.5).dr.high < report_of(candidate, rows, confidence=0.99).dr.high
    with pytest.raises(InvalidInputError, match="no samples"):
        evaluate(numpy.zeros((0, 2)), [], [], [], numpy.zeros((0, 2)))
    with pytest.raises(InvalidInputError, match="as many samples"):
        evaluate([[0.5, 0.5]], [0], [1.0, 2.0], [0.5], [[0.0, 0.0]])
    with pytest.raises(InvalidInputError, match="propensity is the probability"):
        evaluate([[0.5, 0.5]], [0], [1.0], [0.0], [[0.0, 0.0]])
    with pytest.raises(InvalidInputError, match="not among insert, ignore"):
        action_indices(ACTIONS, ["delete"])
