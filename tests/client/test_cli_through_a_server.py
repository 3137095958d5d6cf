"""The command line's read commands with `--url http://...`: they call the Python API, which the remote client
provides, so they print what they print on the database itself."""

from __future__ import annotations

import json

from cli.clitools import succeeds
from server.servers import running_server


def test_runs_rollouts_and_queue_read_through_a_server(tmp_path):
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    with running_server(database, tmp_path, "default") as server:
        import rolloutdb

        with rolloutdb.connect(database) as local:
            run = local.runs.create(name="through-http")
            queued = local.rollouts.enqueue({"q": 1}, run_id=run.id)
        runs = [json.loads(line) for line in succeeds(server.base, "runs", "ls", "--json").splitlines()]
        assert [row["name"] for row in runs] == ["through-http"]
        assert "through-http" in succeeds(server.base, "runs", "show", "through-http")
        rollouts = [json.loads(line) for line in succeeds(server.base, "rollouts", "ls", "--json").splitlines()]
        assert [row["id"] for row in rollouts] == [queued.id]
        assert queued.id in succeeds(server.base, "rollouts", "show", queued.id[:13])
        summary = json.loads(succeeds(server.base, "queue", "--json"))
        assert summary["rollouts_by_status"]["queuing"] == 1, summary
