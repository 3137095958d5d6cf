"""The flywheel's record: decisions (the why-log of a policy in a domain) and signals (what later happened to the
subjects decided about). Domains, their actions and signal kinds are declared (``domains``); a name not declared is
refused with the declared ones listed. Writes are idempotent by id: a decision or signal logged again under its id
(a batch resent, a journal replayed) is stored once."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, select, update

from ..errors import ConflictError, InvalidInputError
from ..records import Decision, Signal
from ..schema import decisions, projects, signals
from .base import DEFAULT_LIMIT, KEYS_PER_QUERY, Area, R, RowReads, build_records, mappings
from .domains import BUILT_IN, Domain, domain_of, new_domain

if TYPE_CHECKING:
    from . import Store

SETTINGS_KEY = "flywheel_domains"  # where a project keeps the domains it declared, in its settings
# What a caller gives for one decision or signal (``log`` / ``add`` keywords; ``at`` is when it happened).
DECISION_FIELDS = frozenset({"id", "domain", "subject_id", "action", "reason", "state", "context", "policy_version",
                             "propensity", "at"})
SIGNAL_FIELDS = frozenset({"id", "domain", "subject_id", "kind", "value", "data", "at"})


class DecisionRows(Area[Decision]):
    table = decisions
    record = Decision
    noun = "decision"
    filterable = frozenset({"id", "domain", "subject_id", "action", "policy_version", "reward", "propensity",
                            "created_at", "evaluated_at"})
    sortable = frozenset({"created_at", "evaluated_at", "reward", "subject_id", "action"})


class SignalRows(Area[Signal]):
    table = signals
    record = Signal
    noun = "signal"
    filterable = frozenset({"id", "domain", "subject_id", "kind", "value", "time", "recorded_at"})
    sortable = frozenset({"time", "recorded_at", "value", "subject_id", "kind"})
    default_sort = "time"


class Domains:
    """The domains a store knows: the built-in ones and those its project declared (read again when a name is not
    found, so a declaration made by another process is seen)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._known: dict[str, Domain] | None = None
        self._lock = threading.Lock()

    def get(self, name: Any) -> Domain:
        """The domain ``name``; NotDeclaredError listing the declared ones."""
        known = self._known if self._known is not None else self._read()
        if not (isinstance(name, str) and name in known):
            known = self._read()
        return domain_of(name, known)

    def all(self) -> list[Domain]:
        return sorted(self._read().values(), key=lambda domain: domain.name)

    def declare(self, name: str, actions: Iterable[str], signals: Iterable[str]) -> Domain:
        """Declare a domain, or add actions and signal kinds to one: names declared stay (decisions use them)."""
        wanted = new_domain(name, actions, signals)
        with self._store.writing() as connection:
            settings = dict(connection.execute(select(projects.c.settings).where(
                projects.c.id == self._store.project_id).with_for_update()).scalar_one())
            declared = dict(settings.get(SETTINGS_KEY) or {})
            before = declared.get(name) or (BUILT_IN[name].model_dump(exclude={"name"}) if name in BUILT_IN else None)
            if before is not None:
                wanted = Domain(name=name, actions=_union(before["actions"], wanted.actions),
                                signals=_union(before["signals"], wanted.signals))
            declared[name] = wanted.model_dump(exclude={"name"})
            connection.execute(update(projects).where(projects.c.id == self._store.project_id)
                               .values(settings={**settings, SETTINGS_KEY: declared}))
        self._known = None
        return wanted

    def _read(self) -> dict[str, Domain]:
        with self._store.reading() as connection:
            settings = connection.execute(select(projects.c.settings).where(
                projects.c.id == self._store.project_id)).scalar_one()
        known = dict(BUILT_IN)
        for name, parts in ((settings or {}).get(SETTINGS_KEY) or {}).items():
            known[name] = Domain(name=name, **parts)
        with self._lock:
            self._known = known
        return known


def _union(first: Sequence[str], second: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


class _Logged(RowReads[R]):
    """What decisions and signals share: written in batches of mappings of the call's arguments (``fields``), each
    of a declared domain (``_check`` checks the rest against it), idempotent by id, ``at`` their time."""

    fields: frozenset[str]
    time_column: str
    stamps: tuple[str, ...] = ()  # columns set to the time of the write

    def __init__(self, store: Store, rows: Area[R], domains: Domains) -> None:
        self._store, self._rows, self._domains = store, rows, domains

    def _check(self, domain: Domain, fields: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _write(self, given: Sequence[Mapping[str, Any]]) -> tuple[list[R], list[R]]:
        """Store ``given`` in one transaction; returns them all as records, and those that were new."""
        records = self._records(given)
        with self._store.writing() as connection:
            return records, self._insert_new(connection, records)

    def write_in(self, connection: Connection, given: Sequence[Mapping[str, Any]]) -> list[R]:
        """``_write`` inside a transaction of the caller's (a recorded batch); returns those that were new."""
        return self._insert_new(connection, self._records(given))

    def _insert_new(self, connection: Connection, records: list[R]) -> list[R]:
        new = _unstored(connection, self._rows.table, self._store.project_id, self._rows.noun, records)
        self._rows.insert_rows(connection, [self._rows.to_row(record) for record in new], unless_taken=("id",))
        return new

    def _records(self, given: Sequence[Mapping[str, Any]]) -> list[R]:
        noun, now = self._rows.noun, self._store.now()
        rows = []
        for position, fields in enumerate(given):
            unknown = set(fields) - self.fields
            if unknown:
                raise InvalidInputError(f"invalid {noun}: {noun} #{position}: unknown field(s) "
                                        f"{', '.join(sorted(map(str, unknown)))}; fields: {', '.join(sorted(self.fields))}")
            self._check(self._domains.get(fields.get("domain", "memory")), fields)
            row = {name: value for name, value in fields.items() if name != "at" and value is not None}
            rows.append({**row, **dict.fromkeys(self.stamps, now), "project_id": self._store.project_id,
                         self.time_column: now if fields.get("at") is None else fields["at"]})
        return build_records(self._rows.record, rows, noun)


class Decisions(_Logged[Decision]):
    """``store.decisions``: log what a policy decided and why, read the log back."""

    noun = DecisionRows.noun
    filterable = DecisionRows.filterable

    fields = DECISION_FIELDS
    time_column = "created_at"

    def __init__(self, store: Store, domains: Domains) -> None:
        super().__init__(store, DecisionRows(store), domains)

    # -- domains -------------------------------------------------------------------------------------------

    def declare(self, domain: str, *, actions: Iterable[str], signals: Iterable[str]) -> Domain:
        """Declare a domain with its actions and signal kinds (or add some to a declared one: names declared stay,
        ``memory``'s too). The project keeps it: every process and server on the database sees it."""
        return self._domains.declare(domain, actions, signals)

    def domains(self) -> list[Domain]:
        """The declared domains (``memory`` is built in), by name."""
        return self._domains.all()

    # -- writing -------------------------------------------------------------------------------------------

    def log(self, domain: str, subject_id: str, action: str, *, reason: str | None = None, state: Any = None,
            context: Any = None, policy_version: str | None = None, propensity: float | None = None,
            at: datetime | None = None, id: str | None = None) -> Decision:
        """Log one decision: ``action`` taken on ``subject_id`` in ``domain``, ``reason`` why, the ``state`` the
        policy saw (its features, JSON), ``context`` (anything else worth keeping), the ``policy_version`` that
        decided and the ``propensity`` it gave the action (0 < p <= 1; what off-policy estimates weigh by). ``at``:
        when (default now). ``id``: yours, to log it again without a second row (the same decision resent)."""
        fields = {"domain": domain, "subject_id": subject_id, "action": action, "reason": reason, "state": state,
                  "context": context, "policy_version": policy_version, "propensity": propensity, "at": at}
        if id is not None:
            fields["id"] = id
        return self._write([fields])[0][0]

    def log_many(self, decisions: Iterable[Mapping[str, Any]]) -> list[Decision]:
        """Log decisions in one transaction, each a mapping of ``log``'s arguments (``domain``, ``subject_id``,
        ``action``, ``reason``, ..., ``at``, ``id``). Returns those that were new: a decision whose id is stored
        already is not logged twice."""
        return self._write(mappings("decision", decisions))[1]

    def _check(self, domain: Domain, fields: Mapping[str, Any]) -> None:
        domain.check_action(fields.get("action"))

    # -- reading (and get, find, query, count) ---------------------------------------------------------------

    def list(self, domain: str | None = None, *, subject_id: str | None = None, action: str | None = None,
             policy_version: str | None = None, evaluated: bool | None = None, since: datetime | None = None,
             limit: int = DEFAULT_LIMIT, offset: int = 0) -> list[Decision]:
        """Decisions, newest first: of one domain (declared), one subject, one action, one policy version,
        evaluated or not yet, taken since a time; ``limit`` and ``offset`` page through them."""
        filters: dict[str, Any] = {key: value for key, value in (
            ("subject_id", subject_id), ("action", action), ("policy_version", policy_version),
            ("created_at__gte", since)) if value is not None}
        if domain is not None:
            filters["domain"] = self._domains.get(domain).name
        if evaluated is not None:
            if not isinstance(evaluated, bool):
                raise InvalidInputError(f"evaluated must be True or False, got {type(evaluated).__name__}")
            filters["evaluated_at__isnull"] = not evaluated
        return self._rows.query(sort="created_at", order="desc", limit=limit, offset=offset, **filters)


class Signals(_Logged[Signal]):
    """``store.signals``: what happened to a domain's subjects after the decisions about them."""

    noun = SignalRows.noun
    filterable = SignalRows.filterable

    fields = SIGNAL_FIELDS
    time_column = "time"
    stamps = ("recorded_at",)

    def __init__(self, store: Store, domains: Domains) -> None:
        super().__init__(store, SignalRows(store), domains)

    def add(self, subject_id: str, kind: str, value: float = 1.0, *, at: datetime | None = None,
            domain: str = "memory", data: Any = None, id: str | None = None) -> Signal:
        """Record one signal of ``subject_id``: a declared ``kind`` of ``domain`` (memory: ``hit``, ``quality``
        with the new score as ``value``, ``feedback`` +1/-1 with its text in ``data``), that happened ``at``
        (default now). ``id``: yours, to add it again without a second row."""
        fields = {"subject_id": subject_id, "kind": kind, "value": value, "at": at, "domain": domain, "data": data}
        if id is not None:
            fields["id"] = id
        return self._write([fields])[0][0]

    def add_many(self, signals: Iterable[Mapping[str, Any]]) -> list[Signal]:
        """Record signals in one transaction, each a mapping of ``add``'s arguments. Returns those that were new
        (a signal whose id is stored already is not added twice)."""
        return self._write(mappings("signal", signals))[1]

    def _check(self, domain: Domain, fields: Mapping[str, Any]) -> None:
        domain.check_signal(fields.get("kind"))


def _unstored(connection: Connection, table: Table, project_id: str, noun: str, records: Sequence[Any]) -> list[Any]:
    """The records whose id the project has not stored yet, each once (the first of a batch that repeats one).
    ConflictError for an id another project's row has: ids are unique across the database."""
    ids = [record.id for record in records]
    stored: set[str] = set()
    for start in range(0, len(ids), KEYS_PER_QUERY):
        for id, owner in connection.execute(select(table.c.id, table.c.project_id).where(
                table.c.id.in_(ids[start:start + KEYS_PER_QUERY]))):
            if owner != project_id:
                raise ConflictError(f"{noun} id {id!r} is taken: leave the id out and the store picks a new one")
            stored.add(id)
    new = []
    for record in records:
        if record.id not in stored:
            stored.add(record.id)
            new.append(record)
    return new
