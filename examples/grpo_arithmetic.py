"""A small RL loop that learns, recorded end to end with rolloutdb.Recorder (what `rolloutdb demo` runs).

    python examples/grpo_arithmetic.py [--url URL] [--steps 30] [--seed 0]

The loop itself is in `rolloutdb/demo.py`: a task set saved with its validator and loaded back from the
database, a baseline, GRPO-style groups at every step, evals along the way. This prints how the final
eval compares with the baseline, per task, from the database.
"""

from __future__ import annotations

import argparse
from datetime import datetime

import rolloutdb
from rolloutdb.demo import train_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="database URL (default: ROLLOUTDB_URL, ..., ./rolloutdb.db)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with rolloutdb.connect(args.url) as store:
        result = train_demo(store, f"grpo-arith-{datetime.now():%Y%m%d-%H%M%S}", steps=args.steps, seed=args.seed)
        comparison = store.compare_runs(result.baseline, result.final_eval)
    print(f"{result.train}: {args.steps} steps recorded")
    for row in [*comparison.tasks, comparison.overall]:
        print(f"  {row.task:<10} success {row.a.success_rate:>4.0%} -> {row.b.success_rate:>4.0%}"
              f"   mean turns {row.a.turns_mean:.2f} -> {row.b.turns_mean:.2f}")


if __name__ == "__main__":
    main()
