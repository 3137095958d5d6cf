"""What asking the advisor costs, in process: ``store.advisor("memory").advise(state)``.

    python benchmarks/advisor.py [--calls 20000] [--rounds 5] [--features 12]

A policy is trained on simulated memory decisions (``--features`` numeric features and one category) and
activated in a SQLite store; the advisor loads it once. Each round times, one call at a time, ``advise`` on a
set of states and, the reference, scikit-learn's own ``predict`` of the same ridge models on the same states
(one state at a time, as an advisor is asked); rounds alternate which side goes first.

Target: advise's p99 under 1 ms. Marked met (✓) or not (✗); the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import numpy
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import Ridge

import rolloutdb
from common import met, sqlite_database
from rolloutdb.policy import train_policy
from rolloutdb.store.policies import policy_name

console = Console()
TARGET_P99_MS = 1.0
ACTIONS = ("insert", "update", "ignore", "delete")


def states_of(count: int, features: int, rng: random.Random) -> list[dict]:
    return [{**{f"f{i}": rng.random() for i in range(features)}, "kind": rng.choice(["fact", "chat", "plan"])}
            for _ in range(count)]


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.99)] * 1e3, ordered[-1] * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="advice asked per side per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--features", type=int, default=12, help="numeric features per state (plus one category)")
    args = parser.parse_args()
    rng = random.Random(7)
    train = states_of(2000, args.features, rng)
    taken = [rng.choice(ACTIONS) for _ in train]
    rewards = [state["f0"] - 0.5 if action == "insert" else 0.1 for state, action in zip(train, taken)]
    policy = train_policy("memory", ACTIONS, train, taken, rewards, [0.25] * len(train))
    # The reference: the same models, as scikit-learn predicts with them.
    x = policy.schema.matrix(train)
    references = [Ridge().fit(x[[a == action for a in taken]], [r for r, a in zip(rewards, taken) if a == action])
                  for action in ACTIONS]
    asked = states_of(args.calls, args.features, rng)

    with sqlite_database() as url, rolloutdb.connect(url, project="bench") as store:
        store.checkpoints.save(policy_name("memory"), policy.to_bytes(), activate=True)
        advisor = store.advisor("memory", seed=1)

        def advise() -> list[float]:
            times = []
            for state in asked:
                start = time.perf_counter()
                advisor.advise(state)
                times.append(time.perf_counter() - start)
            return times

        def reference() -> list[float]:
            times = []
            for state in asked:
                start = time.perf_counter()
                row = numpy.asarray([policy.schema.vector(state)])
                int(numpy.argmax([model.predict(row)[0] for model in references]))
                times.append(time.perf_counter() - start)
            return times

        sides = {"advisor.advise": advise, "sklearn predict (reference)": reference}
        measured: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                measured[name].extend(sides[name]())

    load = os.getloadavg()
    table = Table(title=f"advise, {args.calls:,} calls × {args.rounds} rounds per side, {args.features + 1} features, "
                        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for column in ("side", "median ms", "p99 ms", "max ms", "target", "met"):
        table.add_column(column)
    for name, times in measured.items():
        median, p99, worst = percentiles(times)
        is_advisor = name == "advisor.advise"
        table.add_row(name, f"{median:.4f}", f"{p99:.4f}", f"{worst:.3f}",
                      f"p99 < {TARGET_P99_MS} ms" if is_advisor else "-",
                      met(p99 < TARGET_P99_MS) if is_advisor else met(None))
    console.print(table)


if __name__ == "__main__":
    main()
