"""tinker-cookbook integration: record RL training done with tinker-cookbook into RolloutDB.

    recorder = rolloutdb.Recorder(run="math-rl", total_steps=n_batches)
    ml_logger = ml_log.MultiplexLogger([ml_log.setup_logging(log_dir), RolloutDBLogger(recorder)])
    ...
    record_trajectory_groups(recorder, i_batch, trajectory_groups, env_group_builders)   # in the loop

``RolloutDBLogger`` writes hyperparameters into the run and metrics into its steps;
``record_trajectory_groups`` records one iteration's TrajectoryGroups: a group per TrajectoryGroup,
a rollout per Trajectory, a turn per Transition. Like the recorder, neither ever raises because of
the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinker_cookbook.rl.types import EnvGroupBuilder, Trajectory, TrajectoryGroup, Transition
from tinker_cookbook.utils import ml_log

from rolloutdb.recorder import Recorder, StepHandle


def _step(recorder: Recorder, number: int) -> StepHandle:
    """The open step if it is ``number``, else a new one (which also closes the previous step)."""
    current = recorder.current_step
    return current if current is not None and current.number == number else recorder.step(number)


class RolloutDBLogger(ml_log.Logger):
    """A tinker-cookbook logger that writes into a RolloutDB run: hyperparameters into the run's
    metadata, metrics into the step they are logged for (metrics without a step into the run)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def log_hparams(self, config: Any) -> None:
        self.recorder.log(hparams=ml_log.dump_config(config))

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        values = {key: value for key, value in metrics.items() if isinstance(value, (int, float, str, bool))}
        if step is None:
            self.recorder.log(**values)
        else:
            _step(self.recorder, step).log(**values)

    def log_long_text(self, key: str, text: str) -> None:
        self.recorder.log(**{key: text})

    def sync(self) -> None:
        self.recorder.flush()

    def close(self) -> None:
        self.recorder.flush()


def _task_id(builder: EnvGroupBuilder | None, index: int) -> str:
    """A stable task id for a group: its builder's logging tags, or its place in the batch."""
    tags = builder.logging_tags() if builder is not None else []
    return "/".join(tags) if tags else f"group-{index}"


def _turn(rollout, transition: Transition, keep_tokens: bool) -> None:
    tokens = {"observation": transition.ob.length, "action": len(transition.ac.tokens)}
    logprobs = transition.ac.maybe_logprobs if keep_tokens else None
    rollout.turn(
        observation={"tokens": transition.ob.to_ints()} if keep_tokens else None,
        action={"tokens": transition.ac.tokens, "stop_reason": transition.ac.stop_reason} if keep_tokens
        else {"stop_reason": transition.ac.stop_reason},
        reward=transition.reward, done=transition.episode_done, metrics={**transition.metrics, **transition.logs},
        tokens=tokens, logprobs=logprobs,
    )


def _record_trajectory(group, trajectory: Trajectory, total_reward: float, final_reward: float,
                       metrics: dict[str, Any], keep_tokens: bool) -> None:
    rollout = group.rollout(metadata={"stop_reason": trajectory.stop_reason})
    for transition in trajectory.transitions:
        _turn(rollout, transition, keep_tokens)
    rollout.finish(reward=total_reward, metrics={**metrics, "final_reward": final_reward,
                                                 "turns": len(trajectory.transitions)})


def record_trajectory_groups(recorder: Recorder, step: int, trajectory_groups: Sequence[TrajectoryGroup],
                             env_group_builders: Sequence[EnvGroupBuilder] | None = None, *,
                             keep_tokens: bool = False) -> None:
    """Record one training iteration's trajectory groups under step ``step``.

    Each trajectory's reward is its total reward as tinker-cookbook computes it (the transitions'
    rewards plus the group's final reward); rollout errors become failed rollouts of their group.
    ``keep_tokens`` also stores observation and action tokens and logprobs (token counts always)."""
    handle = _step(recorder, step)
    for index, trajectory_group in enumerate(trajectory_groups):
        builder = env_group_builders[index] if env_group_builders is not None else None
        trajectories = trajectory_group.trajectories_G
        group = handle.group(_task_id(builder, index), size=len(trajectories) + len(trajectory_group.rollout_errors),
                             metadata={"logging_tags": builder.logging_tags() if builder else []})
        totals = trajectory_group.get_total_rewards()
        for trajectory, total, final, metrics in zip(trajectories, totals, trajectory_group.final_rewards_G,
                                                     trajectory_group.metrics_G, strict=True):
            _record_trajectory(group, trajectory, total, final, metrics, keep_tokens)
        for error in trajectory_group.rollout_errors:
            group.rollout().finish(error=f"{error.error_type}: {error.error_message}")
