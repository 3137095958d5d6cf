"""Checkpoints: the saved versions of a named policy or model (its weights, metrics and the data it was trained on).

Versions count up per name. The weights are an artifact (``store.artifacts``), linked from their checkpoint so
gc keeps them while it exists; a checkpoint may instead name weights kept elsewhere by a URI. One version per
name is active — the one advisors use — and the database holds that rule (a partial unique index), so that
two processes activating at once leave one active. ``rollback`` goes back to the version that was in use
before the active one; the newest version is ``latest`` whether or not it is active.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..records import ModelCheckpoint
from ..schema import checkpoints
from .base import DEFAULT_LIMIT, Area, RowReads, check_key, whole_number

if TYPE_CHECKING:
    from . import Store

WEIGHTS_URI = "artifact:"  # the uri of weights kept as an artifact: this, then their sha256


def weights_artifact(checkpoint: ModelCheckpoint) -> str:
    """The sha256 of the artifact holding a checkpoint's weights; InvalidInputError for one whose weights are
    elsewhere (its ``uri`` says where)."""
    if checkpoint.sha256 is None:
        raise InvalidInputError(f"checkpoint {checkpoint.id} keeps its weights at {checkpoint.uri!r}, not in the store")
    return checkpoint.sha256


class CheckpointRows(Area[ModelCheckpoint]):
    """The checkpoints table, as every area reads one (``store.checkpoints`` offers these reads and its writes)."""

    table = checkpoints
    record = ModelCheckpoint
    noun = "checkpoint"
    filterable = frozenset({"id", "name", "version", "active", "latest", "run_id", "step", "sha256", "created_at",
                            "activated_at"})
    sortable = frozenset({"created_at", "name", "version", "activated_at"})
    conflicts = {"uq_checkpoints_active": "another version of {name!r} became active meanwhile; try again",
                 "uq_checkpoints_project_id_name_version":
                     "version {version} of {name!r} was saved meanwhile by another process; save again"}


class Checkpoints(RowReads[ModelCheckpoint]):
    """``store.checkpoints``: save versions of a policy or model, pick the active one, roll back."""

    noun = CheckpointRows.noun
    filterable = CheckpointRows.filterable

    def __init__(self, store: Store) -> None:
        self._store = store
        self._rows = CheckpointRows(store)

    # -- reading (and get, find, query, count) -----------------------------------------------------------

    def list(self, name: str | None = None, *, limit: int = DEFAULT_LIMIT, offset: int = 0) -> list[ModelCheckpoint]:
        """Checkpoints (of one name), newest first."""
        filters = {} if name is None else {"name": check_key("checkpoint", name, called="name")}
        return self._rows.query(sort="created_at", order="desc", limit=limit, offset=offset, **filters)

    def latest(self, name: str) -> ModelCheckpoint | None:
        """The newest version of ``name``, active or not; None when there is none."""
        return self._one(name, latest=True)

    def active(self, name: str) -> ModelCheckpoint | None:
        """The active version of ``name``; None when none is."""
        return self._one(name, active=True)

    def version(self, name: str, version: int) -> ModelCheckpoint:
        """Version ``version`` of ``name``, or NotFoundError."""
        whole_number("version", version, 1, 2 ** 31 - 1)
        found = self._one(name, version=version)
        if found is None:
            raise NotFoundError(f"no version {version!r} of checkpoint {name!r} in project {self._store.project!r}")
        return found

    def read(self, checkpoint: ModelCheckpoint | str) -> bytes:
        """The weights of a checkpoint (its record or id) kept by the store. InvalidInputError for one whose
        weights are elsewhere (its ``uri`` says where)."""
        record = checkpoint if isinstance(checkpoint, ModelCheckpoint) else self.get(checkpoint)
        return self._store.artifacts.read(weights_artifact(record))

    # -- writing ---------------------------------------------------------------------------------------

    def save(self, name: str, weights: bytes | None = None, *, uri: str | None = None,
             metrics: dict[str, Any] | None = None, window: tuple[datetime | None, datetime | None] = (None, None),
             run_id: str | None = None, step: int | None = None, activate: bool = False,
             media_type: str = "application/octet-stream") -> ModelCheckpoint:
        """Save the next version of ``name``: ``weights`` (bytes, kept as an artifact) or the ``uri`` of weights
        kept elsewhere, its ``metrics``, the ``window`` of data it was trained on (from, to), the run and step it
        comes from. It becomes the latest version; with ``activate`` the active one too."""
        check_key("checkpoint", name, called="name")
        if (weights is None) == (uri is None):
            raise InvalidInputError("give a checkpoint's weights (bytes) or the uri of weights kept elsewhere, "
                                    "one of them")
        if not isinstance(activate, bool):
            raise InvalidInputError(f"activate must be True or False, got {activate!r:.80}")
        if not isinstance(window, tuple) or len(window) != 2:
            raise InvalidInputError("window is (from, to): the times of the first and last data trained on")
        artifact = None
        if weights is not None:
            if not isinstance(weights, bytes):
                raise InvalidInputError(f"weights are bytes, got {type(weights).__name__}")
            # Put first: linked below, within gc's grace period (see store.artifacts).
            artifact = self._store.artifacts.put(weights, media_type)
        with self._store.writing() as connection:
            same_name = (checkpoints.c.project_id == self._store.project_id) & (checkpoints.c.name == name)
            newest = connection.execute(select(func.max(checkpoints.c.version)).where(same_name)).scalar()
            now = self._store.now()
            record = self._rows.new_record({
                "name": name, "version": (newest or 0) + 1, "sha256": None if artifact is None else artifact.sha256,
                "uri": uri if artifact is None else WEIGHTS_URI + artifact.sha256, "metrics": metrics or {},
                "window_start": window[0], "window_end": window[1], "run_id": run_id, "step": step,
                "latest": True, "active": activate, "activated_at": now if activate else None})
            connection.execute(update(checkpoints).where(same_name, checkpoints.c.latest.is_(True)).values(latest=False))
            if activate:
                self._deactivate(connection, name)
            self._rows.insert_record(connection, record)
        if artifact is not None:
            self._store.artifacts.link(artifact, checkpoint_id=record.id)
        return record

    def activate(self, checkpoint: ModelCheckpoint | str) -> ModelCheckpoint:
        """Make this checkpoint (its record or id) the active version of its name; the one active before is not
        any more."""
        id = checkpoint.id if isinstance(checkpoint, ModelCheckpoint) else checkpoint
        with self._store.writing() as connection:
            row = self._rows.fetch_row(connection, id, for_update=True)
            return self._activate(connection, row)

    def rollback(self, name: str) -> ModelCheckpoint:
        """Activate again the version of ``name`` that was in use before the active one: the newest version below
        it that was ever activated. ConflictError when there is none (or nothing is active)."""
        check_key("checkpoint", name, called="name")
        with self._store.writing() as connection:
            current = self._select(connection, name, active=True)
            if current is None:
                raise ConflictError(f"no version of {name!r} is active: nothing to roll back")
            earlier = connection.execute(
                select(checkpoints).where(checkpoints.c.project_id == self._store.project_id,
                                          checkpoints.c.name == name, checkpoints.c.version < current["version"],
                                          checkpoints.c.activated_at.is_not(None))
                .order_by(checkpoints.c.version.desc()).limit(1)).mappings().first()
            if earlier is None:
                raise ConflictError(f"version {current['version']} of {name!r} is the first that was active: "
                                    "there is none to roll back to")
            return self._activate(connection, earlier)

    # -- building blocks -------------------------------------------------------------------------------

    def _activate(self, connection: Connection, row) -> ModelCheckpoint:
        self._deactivate(connection, row["name"], but=row["id"])
        values = {"active": True, "activated_at": self._store.now()}
        try:
            connection.execute(update(checkpoints).where(checkpoints.c.id == row["id"]).values(**values))
        except IntegrityError:  # PostgreSQL: another process activated a version of the name meanwhile
            raise ConflictError(CheckpointRows.conflicts["uq_checkpoints_active"].format(**row)) from None
        return self._rows.to_record({**row, **values})

    def _deactivate(self, connection: Connection, name: str, but: str | None = None) -> None:
        statement = update(checkpoints).where(checkpoints.c.project_id == self._store.project_id,
                                              checkpoints.c.name == name, checkpoints.c.active.is_(True))
        if but is not None:
            statement = statement.where(checkpoints.c.id != but)
        connection.execute(statement.values(active=False))

    def _one(self, name: str, **where: Any) -> ModelCheckpoint | None:
        check_key("checkpoint", name, called="name")
        with self._store.reading() as connection:
            row = self._select(connection, name, **where)
        return None if row is None else self._rows.to_record(row)

    def _select(self, connection: Connection, name: str, **where: Any):
        statement = select(checkpoints).where(checkpoints.c.project_id == self._store.project_id,
                                              checkpoints.c.name == name,
                                              *(checkpoints.c[column] == value for column, value in where.items()))
        return connection.execute(statement.order_by(checkpoints.c.version.desc()).limit(1)).mappings().first()
