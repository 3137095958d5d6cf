"""Options that many commands share, each defined once: the database and project (``--url``, ``--project``,
and ``--token`` for a server; taken before or after the command's name), ``--json``, ``--wide``, and choices built from ``rolloutdb.states``."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from .. import states
from ..config import DEFAULT_PROJECT

if TYPE_CHECKING:
    from ..store import Store


Url = Annotated[str | None, typer.Option(
    "--url", help="Database URL. Default: ROLLOUTDB_URL, DATABASE_URL, POSTGRES_* or sqlite:///./rolloutdb.db.",
    show_default=False)]
Project = Annotated[str | None, typer.Option(
    "--project", help=f"Project whose rows the command reads and writes. Default: {DEFAULT_PROJECT}.",
    show_default=False)]
Token = Annotated[str | None, typer.Option(
    "--token", help="API token for a server started with --auth (--url http://...). Default: ROLLOUTDB_TOKEN.",
    show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table, for scripts.")]
Wide = Annotated[bool, typer.Option("--wide", help="Every column, full ids and times, however wide the table.")]


@dataclass(frozen=True)
class Target:
    """The database and project a command works on (``--url``, ``--project``), and the API token for a server."""

    url: str | None = None
    project: str | None = None
    token: str | None = None

    @property
    def project_name(self) -> str:
        return self.project or DEFAULT_PROJECT

    @property
    def resolved_url(self) -> str:
        from ..config import resolve_url

        return resolve_url(self.url)

    def connect(self, *, create: bool = False, upgrade: bool = False) -> Store:
        """The project's store. Unless ``create``, the database and the project must exist, and opening them
        writes nothing (reads, and writes to what is there); an out-of-date schema is refused unless ``upgrade``."""
        from ..store import connect

        # No --project: the default project's rows, or through a server, those of the token's project.
        return connect(self.url, project=self.project, create=create, upgrade=upgrade, token=self.token)


@functools.cache  # built once, shared by every command: Typer takes a while to build options
def _shared_options() -> tuple[Any, ...]:
    """``--url``, ``--project`` and ``--token`` as the options of a command, built by Typer from the two definitions above;
    given after a command's name, they replace those given before it."""

    def options(url: Url = None, project: Project = None, token: Token = None) -> None:
        """Only its parameters are used."""

    def remember(ctx: typer.Context, param: Any, value: str | None) -> None:
        if value is not None:
            ctx.obj = replace(ctx.obj or Target(), **{param.name: value})

    probe = typer.Typer()
    probe.command()(options)
    params = typer.main.get_command(probe).params
    for param in params:
        param.expose_value = False  # the command reads them from ctx.obj
        param.callback = remember
    return tuple(params)


class TargetGroup(TyperGroup):
    """A command group whose commands take ``--url`` and ``--project`` after their name too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if not isinstance(command, TyperGroup):
                command.params.extend(_shared_options())


def group(help: str) -> typer.Typer:
    """A command group of the ``rolloutdb`` command (``rolloutdb runs ...``)."""
    return typer.Typer(help=help, no_args_is_help=True, cls=TargetGroup)


# -- choices ----------------------------------------------------------------------------------------------

EntityType = enum.StrEnum("EntityType", {name: name for name in states.TRANSITIONS})


def values(choices: list[enum.StrEnum] | None) -> list[str] | None:
    """The values of repeated choices, None when none was given."""
    return [str(choice) for choice in choices] if choices else None
