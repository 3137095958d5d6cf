"""A memory service that learns which memories to keep: the learning flywheel, round after round.

    python examples/memory_flywheel.py [--url sqlite:///memory.db] [--rounds 4] [--per-round 800] [--seed 1]

A simulated extractor proposes memories of several kinds. Some kinds are worth keeping — later queries hit them
(``hit`` signals) — and the others are noise: kept, they come back in answers where they do not belong (``feedback``
−1). A kept memory with many similar ones already stored is hit less (its hits are shared). Ignoring a memory
worth keeping costs too: the user has to say it again (``feedback`` −1). Each memory's state is its kind, its
length, how many similar memories exist and the extractor's confidence.

Round 0 decides by a rule (keep what is long, with some exploration); every round logs its decisions with the
probability of the action taken, simulates a week of signals, waits for the rules' delay (a simulated clock),
and runs the flywheel: evaluate rewards → samples → train → off-policy estimate → checkpoint → activate only if
better. Later rounds ask the advisor. It prints, per round, the mean reward the decisions earned, the candidate's
doubly robust estimate, and the simulator's truth: the expected reward of the policy in use, computed from the
simulator's own rates on held-out memories.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import rolloutdb

ACTIONS = ("insert", "update", "ignore", "delete")
KEEPS = {"insert", "update"}  # update merges it into a memory kept already: kept either way
# Per kind: (queries that hit it in a week when kept, share of what the extractor proposes).
KINDS = {"preference": (3.0, 0.2), "fact": (2.0, 0.2), "plan": (1.5, 0.1),
         "chitchat": (0.0, 0.25), "greeting": (0.0, 0.15), "filler": (0.0, 0.1)}
NOISE_RETRIEVALS = 1.0  # a kept noise memory's wrong appearances in answers per week (feedback −1 each)
REPEAT_SHARE = 0.6  # of a useful memory's queries, those after which the user repeats it when it was not kept
WEEK = timedelta(days=7)
# Signals count for a week after the decision, decayed ×0.95 per week; a decision is evaluated a week after.
RULES = {"memory": {"delay_days": 7, "window_days": 7, "decay": 0.95, "decay_days": 7,
                    "insert": {"weights": {"hit": 1.0, "feedback": 1.0}},
                    "update": {"weights": {"hit": 1.0, "feedback": 1.0}},
                    "ignore": {"weights": {"feedback": 1.0}},
                    "delete": {"weights": {"feedback": 1.0}}}}
DECAY_MEAN = (0.95 - 1) / math.log(0.95)  # the mean decay of a signal at a uniform time within the week


def propose(rng: random.Random) -> dict:
    """One memory the extractor proposes: its state."""
    kind = rng.choices(list(KINDS), weights=[share for _, share in KINDS.values()])[0]
    useful = KINDS[kind][0] > 0
    return {"kind": kind, "length": round(rng.gauss(60 if useful else 40, 20), 1),
            "similar_memories": rng.choice([0, 0, 0, 1, 1, 2, 3]), "confidence": round(rng.random(), 3)}


def rates(state: Mapping, action: str) -> tuple[float, float]:
    """Expected hits and expected −1 feedback in the week after ``action`` on a memory in ``state``."""
    hits = KINDS[state["kind"]][0]
    if action in KEEPS:
        return (hits / (1 + state["similar_memories"]), 0.0 if hits else NOISE_RETRIEVALS)
    return 0.0, hits * REPEAT_SHARE


def expected_reward(state: Mapping, action: str) -> float:
    """The simulator's truth: what ``action`` earns on average by RULES."""
    hits, complaints = rates(state, action)
    return (hits - complaints) * DECAY_MEAN


def poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, math.exp(-mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


class RulePolicy:
    """The starting policy: keep what is long, and explore (every action has a share ``epsilon``)."""

    version = "rule/length"

    def __init__(self, epsilon: float = 0.3) -> None:
        self.epsilon = epsilon

    def probabilities(self, state: Mapping) -> dict[str, float]:
        best = "insert" if state["length"] >= 50 else "ignore"
        return {a: self.epsilon / len(ACTIONS) + (1 - self.epsilon if a == best else 0.0) for a in ACTIONS}


def value_of(probabilities, states: list[dict]) -> float:
    """The simulator's expected reward per decision of a policy (its action probabilities per state)."""
    return sum(sum(p * expected_reward(s, a) for a, p in probabilities(s).items()) for s in states) / len(states)


@dataclass
class Round:
    number: int
    policy: str  # the version that decided
    decisions: int
    mean_reward: float  # what its decisions earned, by the rules
    truth: float  # the simulator's expected reward of that policy on held-out memories
    candidate: int | None  # the version trained after it
    estimate: float | None  # the candidate's doubly robust estimate ...
    low: float | None
    high: float | None
    candidate_truth: float | None  # ... and its truth
    activated: bool


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def run(url: str, *, rounds: int = 4, per_round: int = 800, seed: int = 1, report=print) -> tuple[list[Round], float, float]:
    """Run the flywheel ``rounds`` times; returns the rounds, and the simulator's expected reward of the starting
    policy and of the policy active at the end, on held-out memories."""
    rng = random.Random(seed)
    held_out = [propose(random.Random(10_000 + seed + i)) for i in range(3000)]
    rule = RulePolicy()
    clock = Clock(datetime(2026, 1, 5, tzinfo=timezone.utc))
    results: list[Round] = []
    with rolloutdb.connect(url, clock=clock, project=f"memory-flywheel-{seed}") as store:
        advisor = None
        for number in range(rounds):
            start = clock.now
            if advisor is not None:
                advisor.refresh()
            decisions, signals = [], []
            for index in range(per_round):
                state, at = propose(rng), start + WEEK * rng.random()
                if advisor is None:
                    probabilities = rule.probabilities(state)
                    action = rng.choices(ACTIONS, weights=[probabilities[a] for a in ACTIONS])[0]
                    propensity, version = probabilities[action], rule.version
                else:
                    advice = advisor.advise(state)
                    action, propensity, version = advice.action, advice.propensity, advice.policy_version
                subject = f"memory-{number}-{index}"
                decisions.append({"domain": "memory", "subject_id": subject, "action": action, "state": state,
                                  "policy_version": version, "propensity": propensity, "at": at,
                                  "reason": "simulated extractor"})
                hits, complaints = rates(state, action)
                signals += [{"subject_id": subject, "kind": "hit", "at": at + WEEK * rng.random()}
                            for _ in range(poisson(rng, hits))]
                signals += [{"subject_id": subject, "kind": "feedback", "value": -1.0, "at": at + WEEK * rng.random()}
                            for _ in range(poisson(rng, complaints))]
            clock.now = start + 2 * WEEK + timedelta(hours=1)  # a week of traffic, then the rules' delay
            store.decisions.log_many(decisions)
            store.signals.add_many(signals)
            flywheel = store.run_flywheel("memory", rules=RULES, train=True, seed=seed + number)
            logged = store.decisions.query(policy_version=decisions[0]["policy_version"], created_at__gte=start,
                                           created_at__lt=start + WEEK, limit=None)
            in_use = rule.probabilities if advisor is None else advisor.policy.probabilities
            candidate = (store.policies.load(store.checkpoints.get(flywheel.checkpoint_id))
                         if flywheel.checkpoint_id else None)
            results.append(Round(
                number, decisions[0]["policy_version"], len(logged),
                sum(d.reward for d in logged) / len(logged), value_of(in_use, held_out), flywheel.version,
                *((flywheel.dr.value, flywheel.dr.low, flywheel.dr.high) if flywheel.dr else (None, None, None)),
                None if candidate is None else value_of(candidate.probabilities, held_out), flywheel.activated))
            report(line(results[-1]))
            if advisor is None and flywheel.policy_version is not None:
                advisor = store.advisor("memory", seed=seed)
        final = rule.probabilities if advisor is None else (advisor.refresh(), advisor.policy.probabilities)[1]
        return results, value_of(rule.probabilities, held_out), value_of(final, held_out)


def line(r: Round) -> str:
    text = (f"round {r.number}: {r.decisions} decisions by {r.policy:<12} mean reward {r.mean_reward:+.3f} "
            f"(simulator's truth {r.truth:+.3f})")
    if r.candidate is not None:
        text += (f" | candidate v{r.candidate}: DR estimate {r.estimate:+.3f} [{r.low:+.3f}, {r.high:+.3f}], "
                 f"truth {r.candidate_truth:+.3f}, {'activated' if r.activated else 'kept inactive'}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="database URL (default: ROLLOUTDB_URL, ..., ./rolloutdb.db)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=800, help="memories proposed per round (a simulated week)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    _, start, end = run(args.url, rounds=args.rounds, per_round=args.per_round, seed=args.seed)
    print(f"expected reward per decision on held-out memories: starting rule {start:+.3f}, learned policy {end:+.3f}")


if __name__ == "__main__":
    main()
