"""`rolloutdb serve`: the REST server (``rolloutdb.server.serve``)."""

from __future__ import annotations

import functools
from typing import Annotated

import typer

from ..config import (MAX_ARTIFACT_BYTES, SERVER_HOST, SERVER_MAX_BODY_BYTES, SERVER_PORT,
                      SERVER_TOKEN_RECHECK_SECONDS, SERVER_WRITES_IN_FLIGHT)
from .output import console, reports_errors

commands = typer.Typer()  # top level: serve


@commands.command()
@reports_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on. Only loopback without "
                                           "--allow-unauthenticated-remote.")] = SERVER_HOST,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = SERVER_PORT,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (each opens the database itself). On "
                                                         "PostgreSQL, one per core.")] = 1,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Larger request bodies are refused (413).")]
    = SERVER_MAX_BODY_BYTES,
    max_artifact_bytes: Annotated[int, typer.Option(
        min=0, help="Larger artifacts are refused (POST /api/v1/artifacts streams past --max-body-bytes).")]
    = MAX_ARTIFACT_BYTES,
    max_writes_in_flight: Annotated[int, typer.Option(
        min=1, help="More writes (POST, PUT, PATCH, DELETE) at once are answered 503 with Retry-After.")]
    = SERVER_WRITES_IN_FLIGHT,
    auth: Annotated[bool, typer.Option(
        "--auth", help="Require an API token (`rolloutdb tokens create`) on every /api/v1 request; each request "
                       "works on its token's project, as its role allows. Needed to listen beyond loopback.")] = False,
    allow_unauthenticated_remote: Annotated[bool, typer.Option(
        "--allow-unauthenticated-remote",
        help="Listen on a non-loopback address without --auth: anyone who reaches it can read, change and delete "
             "the project's rows.")] = False,
    token_recheck: Annotated[float, typer.Option(
        min=0.01, help="With --auth, an open event stream checks its token again this often (seconds) and ends "
                       "once it is revoked or expired.")] = SERVER_TOKEN_RECHECK_SECONDS,
    all_projects: Annotated[bool, typer.Option(
        "--all-projects",
        help="Serve every project of the database: a request names its own in the RolloutDB-Project header (the "
             "remote client's project=). Anyone who reaches the server reaches every project.")] = False,
    agent_lightning: Annotated[bool, typer.Option(
        "--agent-lightning",
        help="For RolloutDBLightningStore clients: rollout and attempt ids in Agent Lightning's shapes (ro-, at-), "
             "and rollouts may name resources not stored.")] = False,
    access_log: Annotated[bool, typer.Option(
        "--access-log", help="Log a line per request (method, path, status).")] = False,
) -> None:
    """Serve the database over HTTP: REST at /api/v1, API docs at /docs, /healthz and /readyz.

    The database is created or migrated first, as `rolloutdb init` does. Stop it with Ctrl-C.

    Example: rolloutdb serve --url postgresql://trainer@db/rl --project team-a --port 8765 --workers 4

    Example, for other machines: rolloutdb serve --url postgresql://trainer@db/rl --host 0.0.0.0 --auth
    """
    from ..server import serve as serve_app

    serve_app(ctx.obj.url, project=ctx.obj.project_name, host=host, port=port, workers=workers,
              max_body_bytes=max_body_bytes, max_writes_in_flight=max_writes_in_flight,
              auth=auth, allow_unauthenticated_remote=allow_unauthenticated_remote, all_projects=all_projects,
              agent_lightning=agent_lightning, token_recheck_seconds=token_recheck,
              max_artifact_bytes=max_artifact_bytes, access_log=access_log,
              on_ready=functools.partial(announce, "RolloutDB server on"))


def announce(what: str, where: str) -> None:
    console.print(f"{what} {where}", soft_wrap=True)
    console.file.flush()  # before uvicorn's own lines, even when stdout goes to a pipe


@commands.command()
@reports_errors
def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: a free one).")] = 0,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the dashboard in the browser.")]
    = True,
) -> None:
    """Open the dashboard: serve the database on 127.0.0.1 and open its pages in the browser.

    The same pages `rolloutdb serve` has at /, for this machine only. Stop it with Ctrl-C.

    Example: rolloutdb ui

    Example: rolloutdb --url postgresql://trainer@db/rl --project team-a ui --port 8800 --no-open
    """
    from ..dashboard import ui as open_ui

    open_ui(ctx.obj.url, project=ctx.obj.project_name, port=port, open_browser=open_browser,
            on_ready=functools.partial(announce, "RolloutDB dashboard at"))
