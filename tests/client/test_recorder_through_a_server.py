"""A Recorder given a server's URL: its writer applies its batches through the remote client
(``recording.apply``), so a training loop needs no database credentials."""

from __future__ import annotations

import rolloutdb
from server.servers import running_server


def test_a_recorder_writes_a_run_through_a_server(tmp_path):
    database = f"sqlite:///{tmp_path / 'recorded.db'}"
    with running_server(database, tmp_path, "default") as server:
        with rolloutdb.Recorder(server.base, run="through-http", total_steps=2) as recorder:
            for number in range(2):
                with recorder.step(number) as step:
                    with step.group(task="t", size=1).rollout(input={"n": number}) as rollout:
                        rollout.turn(observation={"n": number}, action="a", reward=1.0, done=True)
                        rollout.finish(reward=1.0, success=True)
            assert recorder.flush()
        with rolloutdb.connect(database) as local:
            run = local.runs.get("through-http")
            assert run.status == "completed"
            assert local.rollouts.count(run_id=run.id, status="succeeded") == 2
            assert local.turns.count() == 2
