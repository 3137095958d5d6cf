"""The command line's read commands with `--url http://...`: they call the Python API, which the remote client
provides, so they print what they print on the database itself."""

from __future__ import annotations

import json

from cli.clitools import succeeds
from server.servers import running_server
from store.test_scripts import TAP, successful_rollout


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

        with rolloutdb.connect(database) as local:
            task = local.tasks.save([{"external_id": "wifi-on"}])[0]
            script = local.scripts.record(successful_rollout(local, task, [TAP]).id, name="main")
        listed = [json.loads(line) for line in succeeds(server.base, "scripts", "ls", "--task", "wifi-on",
                                                        "--json").splitlines()]
        assert [row["id"] for row in listed] == [script.id]
        assert '"type": "tap"' in succeeds(server.base, "scripts", "show", script.id[:13])
        assert "wifi-on" in succeeds(server.base, "stats")


def test_jobs_logs_follow_and_watch_through_a_server(tmp_path):
    """A job writing to the database directly; the command line follows it through the server's event stream."""
    import threading
    import time

    import rolloutdb

    database = f"sqlite:///{tmp_path / 'jobs.db'}"
    with running_server(database, tmp_path, "default") as server:
        started = threading.Event()

        def work(name: str) -> None:
            with rolloutdb.connect(database) as store, store.jobs.start(name, write_interval=0.0) as job:
                started.set()
                for i in range(5):
                    time.sleep(0.2)
                    job.progress((i + 1) / 5)
                    job.checkpoint(message=f"step {i}")

        for command in (["jobs", "logs", "remote-job", "--follow"], ["jobs", "watch", "watched-job"]):
            started.clear()
            thread = threading.Thread(target=work, args=(command[2],))
            thread.start()
            started.wait(30)
            output = succeeds(server.base, *command)
            thread.join()
            if command[1] == "logs":
                positions = [output.index(f"step {i}") for i in range(5)]
                assert positions == sorted(positions) and output.rstrip().endswith("completed")
            else:
                assert output.strip() == "watched-job: completed at 100%"
