"""Agent Lightning training on a persistent RolloutDB store (SQLite file or PostgreSQL).

    python examples/agentlightning_trainer.py                               # ./agentlightning.db
    python examples/agentlightning_trainer.py postgresql://postgres@127.0.0.1/test

A rule-based agent (no model needed) answers arithmetic tasks; Agent Lightning's Baseline algorithm
enqueues them, its runners claim them from the store, and every rollout, attempt and span stays in the
database afterwards: look at them with `rolloutdb --url URL queue` or `rolloutdb --url URL rollouts ls`.
"""

from __future__ import annotations

import asyncio
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # agentlightning imports litellm: stay offline

import agentlightning as agl  # noqa: E402

from rolloutdb.integrations.agentlightning import RolloutDBLightningStore  # noqa: E402

TASKS = [{"question": f"{a} + {b}", "answer": a + b} for a, b in [(2, 3), (7, 5), (12, 30), (9, 9), (1, 99)]]


class ArithmeticAgent(agl.LitAgent):
    """Parses "a + b" and answers; the reward is 1 for the right answer."""

    def rollout(self, task, resources, rollout):
        left, right = (int(part) for part in task["question"].split("+"))
        return 1.0 if left + right == task["answer"] else 0.0


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ROLLOUTDB_URL", "sqlite:///./agentlightning.db")
    store = RolloutDBLightningStore(url, project="agentlightning-example")
    trainer = agl.Trainer(store=store, n_runners=2, max_rollouts=len(TASKS),
                          initial_resources={"prompt": agl.PromptTemplate(template="{question} = ?", engine="f-string")})
    trainer.dev(ArithmeticAgent(), train_dataset=TASKS, val_dataset=TASKS[:2])
    finished = store.store.rollouts.query(status="succeeded", limit=None)
    print(f"{len(finished)} rollouts succeeded")
    print(f"spans stored: {store.store.spans.count()}")
    asyncio.run(store.close())


if __name__ == "__main__":
    main()
