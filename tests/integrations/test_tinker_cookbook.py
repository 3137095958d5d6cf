"""tinker-cookbook integration, with the installed package's real dataclasses."""

import uuid

import pytest

tinker_cookbook = pytest.importorskip("tinker_cookbook")

import tinker  # noqa: E402
from tinker_cookbook.completers import TokensWithLogprobs  # noqa: E402
from tinker_cookbook.rl.types import EnvGroupBuilder, RolloutError, Trajectory, TrajectoryGroup, Transition  # noqa: E402
from tinker_cookbook.utils import ml_log  # noqa: E402

import rolloutdb  # noqa: E402
from rolloutdb.integrations.tinker_cookbook import RolloutDBLogger, record_trajectory_groups  # noqa: E402


class MathGroup(EnvGroupBuilder):
    def __init__(self, tags):
        self.tags = tags

    async def make_envs(self):
        return []

    def logging_tags(self):
        return self.tags


def transition(prompt_tokens, action_tokens, reward, done, correct):
    return Transition(ob=tinker.ModelInput.from_ints(list(range(prompt_tokens))),
                      ac=TokensWithLogprobs(tokens=list(range(action_tokens)),
                                            maybe_logprobs=[-0.5] * action_tokens),
                      reward=reward, episode_done=done, metrics={"correct": correct}, logs={"answer": "42"})


def trajectory(*transitions):
    return Trajectory(transitions=list(transitions), final_ob=tinker.ModelInput.from_ints([0]))


@pytest.fixture
def project():
    return f"tc-{uuid.uuid4().hex[:8]}"


def test_an_iteration_is_recorded_and_read_back(session_database_url, project):
    groups = [
        TrajectoryGroup(
            trajectories_G=[trajectory(transition(5, 3, 0.0, False, 0), transition(8, 2, 1.0, True, 1)),
                            trajectory(transition(5, 4, 0.0, True, 0))],
            final_rewards_G=[0.5, -0.5], metrics_G=[{"format": 1.0}, {"format": 0.0}],
            rollout_errors=[RolloutError(error_type="BadRequestError", error_message="context too long")]),
        TrajectoryGroup(trajectories_G=[trajectory(transition(3, 1, 1.0, True, 1))], final_rewards_G=[0.0],
                        metrics_G=[{}]),
    ]
    with rolloutdb.Recorder(session_database_url, run="rl", project=project, flush_interval=0.05) as recorder:
        record_trajectory_groups(recorder, 0, groups, [MathGroup(["gsm8k", "easy"]), MathGroup([])])
    store = rolloutdb.connect(session_database_url, project=project)
    run = store.runs.get("rl")
    first, second = store.groups.query(run_id=run.id, step=0, sort="created_at")
    assert (first.size, first.metadata["logging_tags"]) == (3, ["gsm8k", "easy"])
    assert store.tasks.get(first.task_id).external_id == "gsm8k/easy"
    assert store.tasks.get(second.task_id).external_id == "group-1"
    rollouts = store.rollouts.query(group_id=first.id, sort="created_at")
    # Total reward = transition rewards + the group's final reward, as tinker-cookbook computes it.
    assert [(r.status, r.reward) for r in rollouts] == [("succeeded", 1.5), ("succeeded", -0.5), ("failed", None)]
    assert rollouts[2].error == "BadRequestError: context too long"
    assert rollouts[0].metrics == {"format": 1.0, "final_reward": 0.5, "turns": 2}
    turns = store.turns.query(rollout_id=rollouts[0].id)
    assert [(t.turn_index, t.reward, t.done, t.tokens) for t in turns] == [
        (0, 0.0, False, {"observation": 5, "action": 3}), (1, 1.0, True, {"observation": 8, "action": 2})]
    assert turns[1].metrics == {"correct": 1, "answer": "42"} and turns[1].logprobs is None
    # The store's statistics over the group's three rollouts (the errored one has no reward).
    assert (first.rollout_count, first.completed_count) == (3, 3)
    assert first.reward_mean == pytest.approx(0.5) and first.reward_std == pytest.approx(1.0)


def test_tokens_and_logprobs_are_kept_on_request(session_database_url, project):
    group = TrajectoryGroup(trajectories_G=[trajectory(transition(2, 2, 1.0, True, 1))], final_rewards_G=[0.0],
                            metrics_G=[{}])
    with rolloutdb.Recorder(session_database_url, run="rl", project=project, flush_interval=0.05) as recorder:
        record_trajectory_groups(recorder, 3, [group], keep_tokens=True)
    store = rolloutdb.connect(session_database_url, project=project)
    turn = store.turns.query()[0]
    assert turn.observation == {"tokens": [0, 1]} and turn.action["tokens"] == [0, 1]
    assert turn.logprobs == [-0.5, -0.5]


def test_the_logger_writes_hparams_and_step_metrics(session_database_url, project):
    recorder = rolloutdb.Recorder(session_database_url, run="rl", project=project, flush_interval=0.05)
    logger = ml_log.MultiplexLogger([RolloutDBLogger(recorder)])
    logger.log_hparams({"learning_rate": 4e-5, "group_size": 8})
    logger.log_metrics({"loss": 0.9, "reward/mean": 0.1}, step=0)
    logger.log_metrics({"kl": 0.01}, step=0)
    logger.log_metrics({"loss": 0.7}, step=1)
    logger.close()
    recorder.close()
    store = rolloutdb.connect(session_database_url, project=project)
    run = store.runs.get("rl")
    assert run.metadata["hparams"] == {"learning_rate": 4e-5, "group_size": 8}
    metrics = {s.number: s.metrics for s in store.steps.query(run_id=run.id)}
    assert metrics[0]["loss"] == 0.9 and metrics[0]["kl"] == 0.01 and metrics[0]["reward/mean"] == 0.1
    assert metrics[1]["loss"] == 0.7


def test_the_logger_never_raises_when_the_database_is_away(tmp_path):
    recorder = rolloutdb.Recorder("postgresql://postgres@127.0.0.1:1/nowhere", run="rl", flush_interval=0.05,
                                  journal_dir=tmp_path)
    logger = RolloutDBLogger(recorder)
    logger.log_hparams({"lr": 1})
    for step in range(3):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert recorder.health().pending > 0 and not recorder.health().connected
    recorder.close(timeout=0.5)
    assert list(tmp_path.iterdir())  # kept in the journal for the next recorder
