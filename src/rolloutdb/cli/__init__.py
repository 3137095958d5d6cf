"""The ``rolloutdb`` command line: set up, inspect, back up and rebuild a RolloutDB database, look at runs,
steps, groups, tasks and rollouts, watch the queue and long jobs, purge old rollouts, replay what recorders
kept in their journal.

One module per command group; each command is a thin call into the Python API, and prints with ``output``.
Commands import the store when they run, not when the command line starts, so that ``--help`` is quick.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import database, demo, export, flywheel, jobs, journal, projects, rollouts, runs, scripts, server, tokens
from .internal_errors import DEBUG_VAR, BugReportingGroup
from .options import Project, Target, Token, Url

app = typer.Typer(
    name="rolloutdb",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals would include the database URL with its password
    cls=BugReportingGroup,
)


def show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"rolloutdb {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    url: Url = None,
    project: Project = None,
    token: Token = None,
    version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help=f"Show the traceback of an internal error (a bug) instead of logging it ({DEBUG_VAR}=1 "
        "does the same).")] = False,
) -> None:
    """RolloutDB: the experience store for agent reinforcement learning.

    --url, --project and --token go before or after the command's name: `rolloutdb runs ls --url sqlite:///rl.db`.
    A bug prints one line naming the log file that holds its details (ROLLOUTDB_LOG_DIR chooses the folder).
    """
    ctx.obj = Target(url, project, token)


for commands in (database.commands, runs.commands, rollouts.commands, export.commands, demo.commands,
                 server.commands, scripts.commands):
    app.add_typer(commands)
app.add_typer(database.db_app, name="db")
app.add_typer(projects.projects_app, name="projects")
app.add_typer(tokens.tokens_app, name="tokens")
app.add_typer(runs.runs_app, name="runs")
app.add_typer(runs.steps_app, name="steps")
app.add_typer(runs.groups_app, name="groups")
app.add_typer(runs.tasks_app, name="tasks")
app.add_typer(rollouts.rollouts_app, name="rollouts")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(journal.journal_app, name="journal")
app.add_typer(scripts.scripts_app, name="scripts")
app.add_typer(flywheel.decisions_app, name="decisions")
app.add_typer(flywheel.flywheel_app, name="flywheel")

__all__ = ["app"]
