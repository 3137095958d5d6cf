"""`rolloutdb projects`: the projects of a database (each keeps its rows apart)."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import Json, group
from .output import console, format_time, print_json, print_table, printable, reports_errors

projects_app = group("Projects: each keeps its runs, rollouts and the rest apart. List them, create one.")


@projects_app.command("ls")
@reports_errors
def projects_ls(ctx: typer.Context, json: Json = False) -> None:
    """List the projects of the database, by name; reads only (the database must exist).

    Example: rolloutdb projects ls --url postgresql://db/rl
    """
    from ..store import list_projects

    projects = list_projects(ctx.obj.url)
    if json:
        print_json(projects)
        return
    if not projects:
        console.print("No projects yet: a write creates its project, or `rolloutdb projects create NAME`.")
        return
    print_table(None, ("project", "created"), ((project.name, format_time(project.created_at, precision="minutes"))
                                               for project in projects))


@projects_app.command("create")
@reports_errors
def projects_create(ctx: typer.Context,
                    name: Annotated[str, typer.Argument(help="The new project's name.")]) -> None:
    """Create a project (and the database, if there is none yet); an existing name is refused.

    Example: rolloutdb projects create team-a
    """
    from ..store import create_project

    project = create_project(name, ctx.obj.url)
    console.print(printable(f"Created project {project.name!r}."))
