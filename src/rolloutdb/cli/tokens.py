"""`rolloutdb tokens`: the API tokens of a project, for a server started with `rolloutdb serve --auth`."""

from __future__ import annotations

from typing import Annotated

import typer

from ..states import TokenRole
from .options import Json, Wide, group
from .output import (Column, answered_without_table, console, format_time, parse_duration, print_json,
                     print_table, printable, reports_errors)

tokens_app = group("API tokens: who may use a server started with --auth, for which project and role. Make one, "
                   "list them, revoke one.")


@tokens_app.command("create")
@reports_errors
def tokens_create(
    ctx: typer.Context,
    role: Annotated[TokenRole, typer.Option(help="reader: reads; writer: reads and writes; admin: also manages "
                                                 "the project's tokens and purges.")],
    expires: Annotated[str | None, typer.Option(help="Valid for this long (30d, 12h, 1d12h); default: until "
                                                     "revoked.")] = None,
    name: Annotated[str, typer.Option(help="What the token is for, to recognise it in `tokens ls`.")] = "",
    json: Json = False,
) -> None:
    """Make an API token of the project (--project) and print its secret: the only time it is shown.

    The database keeps only the secret's SHA-256. Hand the secret to its user, who passes it as
    connect(url, token=...), ROLLOUTDB_TOKEN or --token. The project must exist.

    Example: rolloutdb tokens create --project team-a --role writer --expires 30d --name rollout-workers
    """
    lifetime = parse_duration(expires) if expires is not None else None
    with ctx.obj.connect() as store:
        issued = store.tokens.create(role, name=name, expires=lifetime)
    if json:
        print_json([issued])
        return
    token = issued.token
    until = f"until {format_time(token.expires_at, precision='minutes')}" if token.expires_at else "until revoked"
    console.print(printable(f"Made {token.role} token {token.id} of project {store.project!r}, valid {until}."),
                  soft_wrap=True)
    console.print("Its secret, shown this once (keep it like a password):", soft_wrap=True)
    console.print(issued.secret, soft_wrap=True, highlight=False)


@tokens_app.command("ls")
@reports_errors
def tokens_ls(
    ctx: typer.Context,
    revoked: Annotated[bool, typer.Option("--revoked", help="Revoked tokens too.")] = False,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """List the project's API tokens, newest first: id, name, role, expiry, last use. Secrets are never shown.

    Example: rolloutdb tokens ls --project team-a --revoked
    """
    filters = {} if revoked else {"revoked_at": None}
    with ctx.obj.connect() as store:
        tokens = store.tokens.query(sort="created_at", order="desc", limit=None, **filters)
        now = store.now()
    if answered_without_table(tokens, json=json, noun="tokens", where=f"project {store.project!r}",
                              filtered=not revoked):
        return

    def state(token) -> str:
        if token.revoked_at is not None:
            return "revoked"
        return "expired" if token.expires_at is not None and token.expires_at <= now else "valid"

    print_table(
        None, (Column("id"), Column("name", text=True, drop=1), Column("role"), Column("state"),
               Column("expires", drop=2), Column("last used", drop=3), Column("created", drop=4)),
        ((token.id, token.name, token.role, state(token), format_time(token.expires_at, precision="minutes"),
          format_time(token.last_used_at, precision="minutes"), format_time(token.created_at, precision="minutes"))
         for token in tokens),
        wide=wide,
    )


@tokens_app.command("revoke")
@reports_errors
def tokens_revoke(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The token's id (or a unique start of it), as `tokens ls` shows it.")],
) -> None:
    """Revoke an API token of the project: a server refuses it from its next request on.

    Example: rolloutdb tokens revoke 01a241e7-e7ab --project team-a
    """
    with ctx.obj.connect() as store:
        token = store.tokens.revoke(store.tokens.find(id).id)
    console.print(printable(f"Revoked token {token.id} ({token.role}) of project {store.project!r} at "
                            f"{format_time(token.revoked_at)}."), soft_wrap=True)
