"""The demo: a small agent that really learns with GRPO-style groups, recorded end to end.

The task ("reach the target") starts from 1; each turn the agent picks +1, +2 or *2 and must land
exactly on the target within a few turns. The policy is a softmax table over (value, target), trained
with group-relative advantages: several rollouts of one task form a group, and each rollout's
advantage is its reward against the group's mean. Everything goes through the Recorder: the task set
(saved with its validator, then loaded back from the database), a baseline run before training, every
step's groups, rollouts and turns, and eval runs along the way.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import ConflictError
from .recorder import Recorder, RunHandle
from .records import Task
from .store import Store

ACTIONS = ("+1", "+2", "*2")
MAX_TURNS = 5
TARGETS = (5, 6, 7, 8, 9, 10, 12, 16)
DATASET, SPLIT = "arith-reach", "train"
VALIDATOR = {"name": "reach-exact-target", "kind": "equals", "config": {"field": "value", "against": "target"}}
CONFIG = {"algorithm": "grpo", "policy": "softmax table", "learning_rate": 0.5, "group_size": 4,
          "max_turns": MAX_TURNS, "eval_every": 5, "eval_samples": 4}
MAX_NAME_TRIES = 100


@dataclass(frozen=True)
class DemoResult:
    """The names of the runs the demo recorded."""

    train: str
    baseline: str
    final_eval: str


class Policy:
    """Softmax over the three actions, one row of logits per (value, target) state."""

    def __init__(self, rng: random.Random) -> None:
        self.logits: dict[tuple[int, int], list[float]] = {}
        self.rng = rng

    def probabilities(self, state: tuple[int, int]) -> list[float]:
        logits = self.logits.setdefault(state, [0.0] * len(ACTIONS))
        top = max(logits)
        weights = [math.exp(logit - top) for logit in logits]
        return [weight / sum(weights) for weight in weights]

    def act(self, state: tuple[int, int]) -> int:
        return self.rng.choices(range(len(ACTIONS)), self.probabilities(state))[0]

    def reinforce(self, trajectory: list[tuple[tuple[int, int], int]], advantage: float, learning_rate: float) -> None:
        """Policy-gradient step: d log p(a) / d logit_b = [a == b] - p(b)."""
        for state, action in trajectory:
            probabilities = self.probabilities(state)
            for index, probability in enumerate(probabilities):
                self.logits[state][index] += learning_rate * advantage * ((index == action) - probability)


def apply(value: int, action: int) -> int:
    return value + 1 if action == 0 else value + 2 if action == 1 else value * 2


def play(policy: Policy, task: Task, group) -> tuple[float, list[tuple[tuple[int, int], int]]]:
    """One rollout of ``task``, recorded turn by turn; returns its reward and trajectory."""
    target, value, trajectory = task.input["target"], 1, []
    rollout = group.rollout(input={"target": target, "start": value})
    for turn in range(MAX_TURNS):
        state = (value, target)
        action = policy.act(state)
        trajectory.append((state, action))
        value = apply(value, action)
        done = value >= target or turn == MAX_TURNS - 1  # landed, overshot, or out of moves
        rollout.turn(observation={"value": state[0], "target": target}, action=ACTIONS[action],
                     action_result={"value": value}, reward=1.0 if value == target else 0.0, done=done)
        if done:
            break
    solved = value == target
    rollout.finish(reward=1.0 if solved else 0.0, success=solved,
                   validation={"validator": VALIDATOR["name"], "passed": solved, "value": value},
                   metrics={"turns": len(trajectory)})
    return (1.0 if solved else 0.0), trajectory


def evaluate(policy: Policy, tasks: list[Task], run: RunHandle, samples: int) -> None:
    with run:
        for task in tasks:
            group = run.group(task, size=samples)
            for _ in range(samples):
                play(policy, task, group)


def default_name() -> str:
    """The name a demo run gets unless it is given one (``-2``, ``-3`` ... are added if it is taken)."""
    return f"demo-{datetime.now():%Y%m%d-%H%M%S}"


def start_recorder(store: Store, name: str | None, **options: Any) -> Recorder:
    """A recorder on run ``name``, continued by the recorder's rules if it exists (a finished run is refused
    with ConflictError). Without a name, a new run: ``default_name()``, or the first of its ``-2``, ``-3`` ...
    that no run has, even when another demo takes the same name at the same moment."""
    if name is not None:
        return Recorder(store, run=name, **options)
    base = default_name()
    candidates = (base if number == 1 else f"{base}-{number}" for number in range(1, MAX_NAME_TRIES + 1))
    for candidate in candidates:
        if store.runs.count(name=candidate):
            continue
        try:
            return Recorder(store, run=candidate, resume=False, **options)
        except ConflictError:  # another demo took it since we looked
            continue
    raise ConflictError(f"runs {base!r} to {base}-{MAX_NAME_TRIES} all exist: give the demo a --name")


def train_demo(store: Store, name: str | None = None, *, steps: int = 30, seed: int = 0,
               on_start: Callable[[str], None] | None = None,
               on_step: Callable[[int], None] | None = None) -> DemoResult:
    """Train the agent for ``steps`` steps, recording everything into ``store`` under run ``name`` (see
    ``start_recorder``; None: a new run named after the time). ``on_start(name)`` is called once the run is
    started, ``on_step(number)`` after each step. Returns once every record is written (or, if the database
    went away, kept in the journal)."""
    store.tasks.save([{"external_id": f"reach-{target}", "instruction": f"Starting from 1, reach exactly {target} "
                       f"with +1, +2 or *2 in at most {MAX_TURNS} moves.", "input": {"target": target},
                       "dataset": DATASET, "split": SPLIT, "tags": ["arithmetic"], "validator": VALIDATOR}
                      for target in TARGETS])
    tasks = store.tasks.load(dataset=DATASET, split=SPLIT, tags=["arithmetic"])  # the task set, from the database
    policy = Policy(random.Random(seed))
    size, rate, every = CONFIG["group_size"], CONFIG["learning_rate"], CONFIG["eval_every"]
    recorder = start_recorder(store, name, config={**CONFIG, "seed": seed, "steps": steps}, total_steps=steps,
                              flush_interval=0.2)
    name = recorder.run.name
    with recorder:
        if on_start is not None:
            on_start(name)
        baseline = recorder.baseline()
        evaluate(policy, tasks, baseline, CONFIG["eval_samples"])
        final_eval = baseline.name
        for number in range(steps):
            with recorder.step(number) as step:
                advantages = []
                for task in tasks:
                    group = step.group(task, size=size)
                    played = [play(policy, task, group) for _ in range(size)]
                    rewards = [reward for reward, _ in played]
                    mean, spread = statistics.fmean(rewards), statistics.pstdev(rewards)
                    for reward, trajectory in played:
                        advantage = (reward - mean) / (spread + 1e-6)
                        advantages.append(abs(advantage))
                        policy.reinforce(trajectory, advantage, rate)
                step.log(learning_rate=rate, mean_abs_advantage=statistics.fmean(advantages))
            if (number + 1) % every == 0 or number + 1 == steps:
                evaluation = recorder.eval(step=number)
                evaluate(policy, tasks, evaluation, CONFIG["eval_samples"])
                final_eval = evaluation.name
            if on_step is not None:
                on_step(number)
        # Training can record faster than the database writes: wait for all of it (while the database
        # takes it), so that the run can be shown complete.
        recorder.close(timeout=None)
    return DemoResult(train=name, baseline=baseline.name, final_eval=final_eval)
