"""`rolloutdb journal`, on a fresh SQLite file and a fresh PostgreSQL database."""

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import rolloutdb
from rolloutdb.cli import app
from rolloutdb.config import display_url
from conftest import _admin_connection as admin_connection
from cli.clitools import is_sqlite, line_with, rolloutdb_cli, runner, succeeds


# -- the recorder's journal ------------------------------------------------------------------------------------


@pytest.fixture
def away_url(fresh_database_url, tmp_path, postgres_databases):
    """A database that cannot be opened yet, and the function that brings it up: a SQLite file in a directory
    that does not exist yet, or a PostgreSQL database not created yet on the test server."""
    if is_sqlite(fresh_database_url):
        folder = tmp_path / "not-yet"
        return f"sqlite:///{folder / 'later.db'}", folder.mkdir
    url = make_url(fresh_database_url)
    name = f"{url.database}_later"

    def create() -> None:
        with admin_connection() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        postgres_databases.created.append(name)  # dropped with the others at the end

    return url.set(database=name).render_as_string(hide_password=False), create


def record_while_away(url: str, journal: Path, *, run: str, project: str = "default", steps: int = 3) -> int:
    """Record a short training run while its database cannot be opened; returns how many records the recorder
    kept in the journal when it closed."""
    # start_timeout: the constructor otherwise waits 15 s for an answer from a database that is away.
    recorder = rolloutdb.Recorder(url, run=run, project=project, total_steps=steps, journal_dir=journal,
                                  start_timeout=1)
    for number in range(steps):
        with recorder.step(number) as step:
            group = step.group(task="add-7", size=2)
            for _ in range(2):
                with group.rollout(input={"target": 7}) as rollout:
                    rollout.turn(observation={"value": 5}, action="+2", reward=1.0, done=True)
                    rollout.finish(reward=1.0, success=True)
            step.log(loss=0.5)
    recorder.close(timeout=0.5)
    health = recorder.health()
    assert health.written == 0 and health.spilled > 0 and health.dropped == 0, health
    return health.spilled


def journal_cli(*args: str, url: str | None = None):
    return runner.invoke(app, [*(["--url", url] if url else []), "journal", *args])


def test_journal_ls_with_nothing_says_so(tmp_path):
    for directory in (tmp_path / "never-made", tmp_path):
        result = journal_cli("ls", "--dir", str(directory))
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == f"No journal in {directory.resolve()}."


def test_journal_left_while_the_database_was_away_is_listed_then_replayed(away_url, tmp_path):
    url, bring_up = away_url
    journal = tmp_path / "journal"
    kept = record_while_away(url, journal, run="away-run")

    result = runner.invoke(app, ["--url", url, "journal", "ls", "--dir", str(journal)])  # no database needed
    assert result.exit_code == 0, result.output
    row = line_with(result.stdout, "away-run").split()
    assert row[:3] == ["away-run", "default", str(kept)] and row[-2:-1] == ["gone"]
    assert "1 file" in result.stdout and "journal replay" in result.stdout
    listed = json.loads(journal_cli("ls", "--dir", str(journal), "--json").stdout)
    assert (listed["run"], listed["records"], listed["live"]) == ("away-run", kept, False)
    assert rolloutdb_cli(url, "journal", "replay", "--dir", str(journal)).exit_code == 1  # still away: one line

    bring_up()
    output = succeeds(url, "journal", "replay", "--dir", str(journal))
    assert f"Replayed 1 journal file into {display_url(url)}" in output
    assert f"{kept} records written, 0 refused" in output
    assert not list(journal.glob("*/*.jsonl"))  # the file is gone
    with rolloutdb.connect(url) as store:
        run = store.runs.get("away-run")
        assert (run.status, run.progress) == ("completed", 100.0)
        assert store.steps.count(run_id=run.id, status="completed") == 3
        assert store.rollouts.count(run_id=run.id, status="succeeded") == 6
        assert store.steps.query(run_id=run.id)[0].metrics["loss"] == 0.5
    assert "Nothing to replay" in succeeds(url, "journal", "replay", "--dir", str(journal))
    assert journal_cli("ls", "--dir", str(journal)).stdout.startswith("No journal in")


def test_journal_replay_leaves_other_projects_and_lists_what_the_database_refused(away_url, tmp_path):
    url, bring_up = away_url
    journal = tmp_path / "journal"
    record_while_away(url, journal, run="ours")
    other = "b\x1b]0;pwned\x07run"  # control characters in a name must not reach the terminal
    theirs = record_while_away(url, journal, run=other, project="team-b")
    bring_up()
    with rolloutdb.connect(url) as store:  # a run of that name finished meanwhile: the replayed one is refused
        store.runs.update(store.runs.create(name="ours", total_steps=1).id, status="running")
        store.runs.update("ours", status="completed")

    output = journal_cli("ls", "--dir", str(journal)).stdout
    assert "\x1b" not in output and "\x07" not in output
    assert line_with(output, "b\\x1b]0;pwned\\x07run").split()[1:3] == ["team-b", str(theirs)]

    output = succeeds(url, "journal", "replay", "--dir", str(journal))
    assert "\x1b" not in output
    assert "Refused by the database" in output
    assert line_with(output, "run 'ours':").startswith("run 'ours': job 'ours' has already ended as completed")
    assert "1 other file in" in output and "--url/--project" in output
    with rolloutdb.connect(url, project="team-b") as store:
        assert store.runs.count() == 0  # not replayed into the first project, nor into its own yet

    output = succeeds(url, "--project", "team-b", "journal", "replay", "--dir", str(journal))
    assert f"{theirs} records written, 0 refused" in output and "other file" not in output
    with rolloutdb.connect(url, project="team-b") as store:
        assert store.runs.get(other).status == "completed" and store.steps.count() == 3
    assert not list(journal.glob("*/*.jsonl"))


def test_journal_replay_writes_nothing_into_a_finished_run_whose_start_it_refuses(tmp_path):
    folder = tmp_path / "not-yet"
    url, journal = f"sqlite:///{folder / 'later.db'}", tmp_path / "journal"
    kept = record_while_away(url, journal, run="ours")
    folder.mkdir()
    with rolloutdb.connect(url) as store:
        store.runs.update(store.runs.create(name="ours", total_steps=1).id, status="running")
        store.runs.update("ours", status="completed")
    output = succeeds(url, "journal", "replay", "--dir", str(journal))
    with rolloutdb.connect(url) as store:
        assert store.steps.count() == 0 and store.rollouts.count() == 0
    assert "0 records written" in output and f"{kept} refused" in output


