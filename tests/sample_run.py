"""A sample training run of known shape, recorded through the Store API, for the CLI tests to read.

Three GRPO-style steps; each step has one group of four rollouts per task. Rewards are drawn
from a generator seeded with the run name, and improve with the step like a policy that learns.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

from rolloutdb import Rollout, Run, Store, Task

STEPS = 3
GROUP_SIZE = 4
VALIDATOR_NAME = "demo-exact-match"
TASKS = (
    {"external_id": "demo/arith-0001", "instruction": "What is 17 + 25?", "input": {"a": 17, "b": 25, "op": "+"},
     "answer": 42},
    {"external_id": "demo/arith-0002", "instruction": "What is 6 * 7?", "input": {"a": 6, "b": 7, "op": "*"},
     "answer": 42},
)
ROLLOUT_COUNT = STEPS * len(TASKS) * GROUP_SIZE
CONFIG = {
    "algorithm": "grpo",
    "model": "demo-policy-1b",
    "learning_rate": 1e-5,
    "group_size": GROUP_SIZE,
    "groups_per_step": len(TASKS),
    "kl_coef": 0.02,
    "max_turns": 4,
}
FAILURE_RATE = 0.15  # share of rollouts whose sandbox dies: status failed, reward 0


def record_sample_run(store: Store, name: str, on_rollout: Callable[[Rollout], None] | None = None) -> Run:
    """Record a completed sample training run named ``name`` and return it.

    ``on_rollout`` is called after each rollout finishes (the CLI moves its progress bar with it).
    """
    tasks = ensure_sample_tasks(store)
    rng = random.Random(name)
    run = store.runs.create(name=name, kind="train", config=CONFIG, total_steps=STEPS,
                            metadata={"source": "rolloutdb demo"})
    store.runs.update(run.id, status="running", stage="rollouts", reason="demo started")
    for number in range(STEPS):
        step = store.steps.create(run_id=run.id, number=number)
        store.steps.update(step.id, status="running")
        rollouts = [
            rollout
            for task in tasks
            for rollout in _record_group(store, run, number, task, rng, on_rollout)
        ]
        store.steps.update(step.id, status="completed", metrics=step_metrics(rollouts))
        store.runs.update(run.id, progress=100.0 * (number + 1) / STEPS, stage=f"step {number + 1}/{STEPS}")
    return store.runs.update(run.id, status="completed", stage="done", message="sample run recorded by rolloutdb demo",
                             reason="all steps completed")


def ensure_sample_tasks(store: Store) -> list[Task]:
    """The demo's validator and tasks, created on first use and reused by later demo runs."""
    validators = store.validators.query(name=VALIDATOR_NAME)
    validator = validators[0] if validators else store.validators.create(
        name=VALIDATOR_NAME, kind="exact_match", config={"field": "answer"}
    )
    tasks = []
    for spec in TASKS:
        found = store.tasks.query(external_id=spec["external_id"])
        tasks.append(found[0] if found else store.tasks.create(
            external_id=spec["external_id"], instruction=spec["instruction"], input=spec["input"],
            dataset="demo-arithmetic", split="train", tags=["demo", "arithmetic"], validator_id=validator.id,
            metadata={"answer": spec["answer"]},
        ))
    return tasks


def step_metrics(rollouts: list[Rollout]) -> dict[str, float | int]:
    rewards = [rollout.reward or 0.0 for rollout in rollouts]
    return {
        "reward_mean": round(statistics.fmean(rewards), 4),
        "success_rate": round(sum(bool(rollout.success) for rollout in rollouts) / len(rollouts), 4),
        "rollouts": len(rollouts),
    }


def _record_group(
    store: Store, run: Run, step: int, task: Task, rng: random.Random, on_rollout: Callable[[Rollout], None] | None
) -> list[Rollout]:
    group = store.groups.create(run_id=run.id, step=step, source="step", task_id=task.id, size=GROUP_SIZE)
    store.groups.update(group.id, status="running")
    finished = []
    for index in range(GROUP_SIZE):
        rollout = store.rollouts.create(run_id=run.id, step=step, group_id=group.id, task_id=task.id, mode="train",
                                        input={**task.input, "sample": index})
        store.rollouts.update(rollout.id, status="preparing")
        store.rollouts.update(rollout.id, status="running")
        finished.append(store.rollouts.update(rollout.id, **_outcome(rng, step)))
        if on_rollout is not None:
            on_rollout(finished[-1])
    store.groups.update(group.id, status="completed")
    return finished


def _outcome(rng: random.Random, step: int) -> dict[str, object]:
    """Final fields of one rollout; later steps answer correctly more often."""
    if rng.random() < FAILURE_RATE:
        return {"status": "failed", "reward": 0.0, "success": False, "error": "sandbox exited with code 137",
                "reason": "environment crashed"}
    correct = rng.random() < 0.35 + 0.25 * step
    reward = 1.0 if correct else round(rng.uniform(0.0, 0.3), 2)  # partial credit for the format
    return {"status": "succeeded", "reward": reward, "success": correct, "metrics": {"turns": rng.randint(1, 4)}}
