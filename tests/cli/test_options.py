"""What every command shares: where --url and --project go, --version, --help (quick, with an example)."""

import os
import subprocess
import sys
from pathlib import Path

import typer

import rolloutdb
from rolloutdb.cli import app
from cli.clitools import RUN, fails, line_with, runner, succeeds

SOURCE = str(Path(rolloutdb.__file__).parent.parent)
# What a command that only prints its help must not load: the database libraries and the store. (Pydantic is
# not on the list: Typer itself loads it to read option values, from `rolloutdb runs --help` on.)
HEAVY = ("sqlalchemy", "alembic", "psycopg", "rolloutdb.store", "rolloutdb.records", "rolloutdb.recorder",
         "rolloutdb.demo")


def test_url_and_project_are_taken_after_the_command_too(demo_url):
    with rolloutdb.connect(demo_url, project="team-b") as store:
        store.runs.create(name="b-only")
    after = runner.invoke(app, ["runs", "ls", "--url", demo_url])
    assert after.exit_code == 0, after.output
    assert line_with(after.stdout, RUN).split()[:3] == [RUN, "train", "completed"]
    in_team_b = runner.invoke(app, ["runs", "ls", "--url", demo_url, "--project", "team-b"])
    assert in_team_b.exit_code == 0 and "b-only" in in_team_b.stdout and RUN not in in_team_b.stdout
    # given on both sides, the one after the command's name wins
    mixed = runner.invoke(app, ["--url", demo_url, "--project", "team-b", "runs", "ls", "--project", "default"])
    assert RUN in mixed.stdout and "b-only" not in mixed.stdout
    assert succeeds(demo_url, "jobs", "show", RUN) == runner.invoke(app, ["jobs", "show", RUN, "--url", demo_url]).stdout


def test_version_prints_the_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"rolloutdb {rolloutdb.__version__}"


def loaded_by(*arguments: str) -> set[str]:
    """The heavy modules loaded by running the command line with these arguments in a new interpreter."""
    script = ("import runpy, sys\n"
              "sys.argv = ['rolloutdb', *sys.argv[1:]]\n"
              "try:\n    runpy.run_module('rolloutdb.cli', run_name='__main__')\n"
              "except SystemExit:\n    pass\n"
              f"print(sorted(name for name in sys.modules if name.split('.')[0] in {HEAVY!r} or name in {HEAVY!r}))")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True,
                            env=environment, check=True)
    assert "Usage: rolloutdb" in result.stdout, result.stdout + result.stderr
    return set(eval(result.stdout.strip().splitlines()[-1]))


def test_help_loads_no_database_library_nor_the_store():
    assert loaded_by("--help") == set()
    assert loaded_by("runs", "--help") == set()
    assert loaded_by("rollouts", "ls", "--help") == set()


def leaf_commands(command, path=()):
    commands = getattr(command, "commands", None)
    if not commands:
        yield path, command
        return
    for name, sub in commands.items():
        yield from leaf_commands(sub, (*path, name))


def test_every_command_has_help_with_an_example():
    commands = list(leaf_commands(typer.main.get_command(app)))
    assert len(commands) > 25
    for path, command in commands:
        assert "Example: rolloutdb " in (command.help or ""), f"`rolloutdb {' '.join(path)} --help` has no example"
        shown = runner.invoke(app, [*path, "--help"])
        assert shown.exit_code == 0 and "Example" in shown.stdout
        # --url and --project are listed with every command but journal ls, which reads only files
        if path != ("journal", "ls"):
            assert "--url" in shown.stdout and "--project" in shown.stdout, path


def test_reads_open_what_exists_and_create_nothing(tmp_path, demo_url):
    missing = tmp_path / "typo.db"
    for command in (["runs", "ls"], ["rollouts", "ls"], ["queue"], ["jobs", "ls"], ["tasks", "ls"]):
        error = fails(f"sqlite:///{missing}", *command)
        assert error.startswith(f"Error: no database at {missing}: run `rolloutdb init`"), error
    assert not missing.exists()
    error = fails(demo_url, "runs", "ls", "--project", "defualt")
    assert "no project 'defualt'" in error and "'default'" in error  # the projects there
    with rolloutdb.connect(demo_url, create=False) as store:
        assert store.runs.count() == 1
    assert "no project 'defualt'" in fails(demo_url, "--project", "defualt", "runs", "ls")


def test_projects_are_listed_and_created(demo_url):
    assert line_with(succeeds(demo_url, "projects", "ls"), "default").split()[0] == "default"
    assert "Created project 'team-b'." in succeeds(demo_url, "projects", "create", "team-b")
    assert [line.split()[0] for line in succeeds(demo_url, "projects", "ls").splitlines()[2:]] == ["default", "team-b"]
    assert "project 'team-b' exists" in fails(demo_url, "projects", "create", "team-b")
    assert "No runs in project 'team-b'." in succeeds(demo_url, "runs", "ls", "--project", "team-b")
