"""The Store: one API over SQLite and PostgreSQL, bound to one project.

Areas hang off the store (``store.runs``, ``store.steps``, ``store.tasks``, ``store.validators``,
``store.groups``, ``store.rollouts``); each has create / get / update / query / count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, insert, select

from .. import states
from ..config import display_url, resolve_url
from ..errors import InvalidInputError
from ..records import Project, StatusChange
from ..schema import projects, status_changes
from .base import insert_ignoring_conflicts
from .catalog import Tasks, Validators
from .engine import WRITE, create_store_engine, ensure_schema, unavailable_as_error
from .groups import Groups
from .rollouts import Rollouts
from .runs import Runs
from .steps import Steps

DEFAULT_PROJECT = "default"


class Store:
    """A connection to a RolloutDB database, scoped to one project. Use ``rolloutdb.connect()``."""

    def __init__(self, engine: Engine, url: str, project: str) -> None:
        self.engine = engine
        self.url = url
        self.project = project
        self.project_id = self._ensure_project(project)
        self.runs = Runs(self)
        self.steps = Steps(self)
        self.validators = Validators(self)
        self.tasks = Tasks(self)
        self.groups = Groups(self)
        self.rollouts = Rollouts(self)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def history(self, entity_type: str, entity_id: str) -> list[StatusChange]:
        """Every status change of one run, step, group, rollout or attempt, oldest first.

        A run may be named by its name as well as its id.
        """
        if entity_type not in states.TRANSITIONS:
            raise InvalidInputError(
                f"unknown entity type {entity_type!r}; history is kept for {', '.join(states.TRANSITIONS)}"
            )
        if entity_type == "run":
            entity_id = self.runs.get(entity_id).id
        statement = (
            select(status_changes)
            .where(
                status_changes.c.project_id == self.project_id,
                status_changes.c.entity_type == entity_type,
                status_changes.c.entity_id == entity_id,
            )
            .order_by(status_changes.c.seq)
        )
        with self._read() as connection:
            return [StatusChange.model_validate(dict(row)) for row in connection.execute(statement).mappings()]

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {display_url(self.url)} project={self.project!r}>"

    # -- transactions: every area goes through these two ---------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with unavailable_as_error(self.url), self.engine.connect() as connection:
            yield connection

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with unavailable_as_error(self.url), self.engine.connect() as connection:
            connection.execution_options(**{WRITE: True})
            with connection.begin():
                yield connection

    def _ensure_project(self, name: str) -> str:
        project = Project(name=name)
        with self._write() as connection:
            connection.execute(insert_ignoring_conflicts(connection, projects), project.model_dump())
            return connection.execute(select(projects.c.id).where(projects.c.name == name)).scalar_one()


def connect(url: str | None = None, *, project: str = DEFAULT_PROJECT, upgrade: bool = False) -> Store:
    """Open the RolloutDB database at ``url`` (see ``rolloutdb.config`` for where it is found otherwise).

    A new database is created and migrated. One at an older schema raises SchemaOutOfDateError
    unless ``upgrade=True``.
    """
    resolved = resolve_url(url)
    if not project or len(project) > 200:
        raise InvalidInputError(f"project must be a name of 1 to 200 characters, got {project!r}")
    engine = create_store_engine(resolved)
    try:
        with unavailable_as_error(resolved):
            ensure_schema(engine, upgrade_if_needed=upgrade)
        return Store(engine, resolved, project)
    except BaseException:
        engine.dispose()
        raise


__all__ = ["DEFAULT_PROJECT", "Store", "connect"]
