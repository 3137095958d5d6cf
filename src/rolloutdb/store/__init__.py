"""The Store: one API over SQLite and PostgreSQL, bound to one project.

Areas hang off the store (``store.runs``, ``store.steps``, ``store.tasks``, ``store.validators``,
``store.groups``, ``store.rollouts``, ``store.attempts``, ``store.spans``, ``store.resources``,
``store.workers``, ``store.turns``, ``store.tokens``, ``store.scripts``, ``store.decisions``, ``store.signals``,
``store.samples``, ``store.checkpoints``, ``store.policies``); each has get / query / count, and the writes that
make sense for it. ``store.jobs`` runs and controls long jobs; ``store.events`` is the change feed live views follow;
``store.rewards`` evaluates the flywheel's decisions, ``store.run_flywheel`` turns the whole loop once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, literal, select

from .. import states
from ..config import DEFAULT_PROJECT, MAX_ARTIFACT_BYTES, display_url, is_server_url, resolve_url
from ..errors import ConflictError, InvalidInputError, NotFoundError, StoreUnavailableError
from ..ids import new_id, new_ids
from ..records import (ArchiveSummary, BundleSummary, ExportSummary, FlywheelReport, ImportSummary, MessagePolicy,
                       Project, QueueSummary, RunComparison, Selection, StatusChange, SummaryRow, Trajectory, utcnow)
from ..schema import projects, status_changes
from . import hooks
from ._wal import WalKeeper, WriteLock
from .advisor import ADVISOR_REFRESH_SECONDS, Advice, Advisor
from .artifacts import Artifacts, artifacts_home
from .attempts import Attempts
from .base import MAX_OFFSET, check_key, insert_ignoring_conflicts, whole_number
from .catalog import Tasks, Validators
from .checkpoints import Checkpoints
from .decisions import Decisions, Domains, Signals
from .comparison import compare_runs
from .events import Events
from .bundles import archive, export_bundle, import_bundle
from .export import export_rollouts
from .flywheel import (DEFAULT_ALPHA, DEFAULT_BOOTSTRAP, DEFAULT_CONFIDENCE, DEFAULT_EPSILON, DEFAULT_HOLDOUT,
                       run_flywheel)
from .engine import (BUSY_TIMEOUT_SECONDS, WRITE, create_store_engine, ensure_schema, file_identity, sqlite_file,
                     unavailable_as_error)
from .groups import Groups
from .health import check_health, queue_summary
from .jobs import Jobs
from .recording import Recording
from .resources import Resources
from .rewards import Rewards
from .retention import PurgeResult, purge
from .policies import Policies
from .rollouts import Rollouts
from .samples import Samples
from .runs import Runs
from .scripts import Scripts
from .spans import Spans
from .steps import Steps
from .summary import summarize
from .tokens import Tokens
from .trajectory import trajectory
from .turns import Turns
from .waiting import Waiter
from .workers import Workers

T = TypeVar("T")
_sqlite_write_locks: dict[str, WriteLock] = {}
_sqlite_write_locks_guard = threading.Lock()


def sqlite_write_lock(url: str) -> WriteLock:
    """One lock per SQLite file in this process. Threads queue on it instead of on SQLite's busy
    handler, which sleeps in growing steps; other processes still meet the busy timeout."""
    with _sqlite_write_locks_guard:
        return _sqlite_write_locks.setdefault(url, WriteLock())


class Store:
    """A connection to a RolloutDB database, scoped to one project. Use ``rolloutdb.connect()``."""

    def __init__(
        self,
        engine: Engine,
        url: str,
        project: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        health_check_interval: float = 5.0,
        poll_interval: float | None = None,
        create_project: bool = True,
        id_prefixes: Mapping[str, str] | None = None,
        resources_must_exist: bool = True,
        artifacts: str | os.PathLike | None = None,
        max_artifact_bytes: int = MAX_ARTIFACT_BYTES,
    ) -> None:
        self.engine = engine
        self.id_prefixes = checked_id_prefixes(id_prefixes or {})
        self.resources_must_exist = resources_must_exist
        self.url = url
        self.project = project
        self._clock = clock
        self._health_check_interval = health_check_interval
        self._last_health_check = float("-inf")
        self._health_lock = threading.Lock()
        default_poll = 0.5 if engine.dialect.name == "sqlite" else 5.0
        self.waiter = Waiter(self, poll_interval or min(default_poll, health_check_interval or default_poll))
        self._write_lock = sqlite_write_lock(self.url) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        self._sqlite_writer: tuple[int, Connection] | None = None  # (process id, connection): see _writer
        self._shared = threading.local()  # write_together's transaction, in the thread running it: see _joined
        database = sqlite_file(url)
        artifacts_folder = artifacts_home(artifacts, database)  # bad input refused before anything is written
        whole_number("max_artifact_bytes", max_artifact_bytes, 0, MAX_OFFSET)
        self._wal = None if database is None else WalKeeper(database, self._write_lock, BUSY_TIMEOUT_SECONDS)
        # SQLite's open connections keep using a database file removed or replaced under them: ping looks.
        self._database_file = None if database is None else (database, file_identity(database))
        self.project_id = self._ensure_project(project) if create_project else self._existing_project(project)
        self.runs = Runs(self)
        self.steps = Steps(self)
        self.validators = Validators(self)
        self.tasks = Tasks(self)
        self.groups = Groups(self)
        self.resources = Resources(self)
        self.rollouts = Rollouts(self)
        self.attempts = Attempts(self)
        self.spans = Spans(self)
        self.workers = Workers(self)
        self.turns = Turns(self)
        self.jobs = Jobs(self)
        self.recording = Recording(self)
        self.tokens = Tokens(self)
        self.events = Events(self)
        self.artifacts = Artifacts(self, artifacts_folder, max_artifact_bytes)
        self.scripts = Scripts(self)
        self._advisors: dict[str, tuple[Advisor, float]] = {}  # advise(): per domain, with when it was refreshed
        self._advisors_lock = threading.Lock()
        domains = Domains(self)
        self.decisions = Decisions(self, domains)
        self.signals = Signals(self, domains)
        self.rewards = Rewards(self, domains)
        self.samples = Samples(self)
        self.checkpoints = Checkpoints(self)
        self.policies = Policies(self)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def history(self, entity_type: str, entity_id: str) -> list[StatusChange]:
        """Every status change of one run, step, group, rollout or attempt, oldest first.

        A run may be named by its name as well as its id.
        """
        if not isinstance(entity_type, str) or entity_type not in states.TRANSITIONS:
            raise InvalidInputError(
                f"unknown entity type {entity_type!r:.80}; history is kept for {', '.join(states.TRANSITIONS)}"
            )
        check_key(entity_type, entity_id)
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
        with self.reading() as connection:
            return [StatusChange.model_validate(dict(row)) for row in connection.execute(statement).mappings()]

    def new_id(self, kind: str) -> str:
        """A new id for a ``"rollout"`` or an ``"attempt"``: a UUIDv7, after the prefix ``id_prefixes`` gives."""
        return self.id_prefixes.get(kind, "") + new_id()

    def new_ids(self, kind: str, count: int) -> list[str]:
        """``count`` new ids of ``kind`` (``new_id``'s), in increasing order, made at once."""
        prefix = self.id_prefixes.get(kind, "")
        return [prefix + made for made in new_ids(count)] if prefix else new_ids(count)

    def ping(self) -> None:
        """Ask the database for nothing, to see that it answers: StoreUnavailableError when it does not, or
        when the SQLite file it opened is no longer at its path."""
        self._check_database_file()
        with self.reading() as connection:
            connection.execute(select(literal(1))).scalar_one()

    def now(self) -> datetime:
        """The store's clock (UTC); injectable through ``connect(clock=...)`` for tests."""
        return self._clock()

    def check_health(self) -> int:
        """Mark overdue attempts timeout / unresponsive now; returns how many were marked.

        Store calls that depend on it (dequeue, waiting) also run it, at most every
        ``health_check_interval`` seconds."""
        self._last_health_check = time.monotonic()
        return check_health(self)

    def queue_summary(self) -> QueueSummary:
        """The rollout queue at a glance: rollouts by status, the longest wait, the attempts of unfinished
        rollouts by status, and the workers with when each was last heard of (a span is a heartbeat)."""
        return queue_summary(self)

    def maybe_check_health(self) -> None:
        """Run the health check if the last one is older than ``health_check_interval``."""
        if time.monotonic() - self._last_health_check < self._health_check_interval:
            return
        if self._health_lock.acquire(blocking=False):  # one check at a time; others need not wait for it
            try:
                self.check_health()
            finally:
                self._health_lock.release()

    def advisor(self, domain: str, *, epsilon: float | None = None, seed: int | None = None) -> Advisor:
        """The active policy of ``domain``, loaded once, to ask for the action to take in a state
        (``advise(state)``; ``decide(subject_id, state)`` logs the decision too). ``epsilon``: explore at this rate
        instead of the policy's; ``seed``: its draws, for repeatable runs. NotFoundError when no version is
        active."""
        return Advisor(self, domain, epsilon=epsilon, seed=seed)

    def advise(self, domain: str, state: Mapping[str, Any]) -> Advice:
        """One piece of advice from ``domain``'s active policy (``advisor(domain).advise(state)``), through an
        advisor this store keeps per domain and refreshes at most every ``ADVISOR_REFRESH_SECONDS``: for a caller
        that asks now and then, or through a server. Log the decision with its propensity and policy version."""
        with self._advisors_lock:
            advisor, refreshed = self._advisors.get(domain, (None, 0.0))
            if advisor is None:
                advisor, refreshed = self.advisor(domain), time.monotonic()
            elif time.monotonic() - refreshed > ADVISOR_REFRESH_SECONDS:
                advisor.refresh()
                refreshed = time.monotonic()
            self._advisors[domain] = (advisor, refreshed)
            return advisor.advise(state)

    def run_flywheel(self, domain: str, *, days: float | None = None, rules: Any = None, train: bool = False,
                     epsilon: float = DEFAULT_EPSILON, alpha: float = DEFAULT_ALPHA, holdout: float = DEFAULT_HOLDOUT,
                     bootstrap: int = DEFAULT_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE, seed: int = 0,
                     on_progress: Callable[[str, int, int], None] | None = None) -> FlywheelReport:
        """One turn of the learning flywheel for ``domain``: evaluate its due decisions' rewards by ``rules`` (as
        ``rewards.evaluate`` takes them; default: the built-in ones), build the samples of those taken in the last
        ``days`` (None: all), and with ``train`` fit a candidate policy (exploring at ``epsilon``, ridge ``alpha``)
        on all but a ``holdout`` share of them, estimate it off-policy on that share (IPS and doubly robust,
        ``bootstrap`` resamples, ``confidence`` intervals), checkpoint it, and activate it only if its gain over the
        logged decisions is above zero with that confidence. ``seed``: the split and the resamples.
        ``on_progress(stage, done, total)`` follows it (stages: ``flywheel.STAGES``)."""
        return run_flywheel(self, domain, days=days, rules=rules, train=train, epsilon=epsilon, alpha=alpha,
                            holdout=holdout, bootstrap=bootstrap, confidence=confidence, seed=seed,
                            on_progress=on_progress)

    def compare_runs(self, a: str, b: str) -> RunComparison:
        """Run ``b`` against run ``a`` (names or ids), per task and overall: success rate, mean reward,
        mean turns, and the differences ``b - a``."""
        return compare_runs(self, a, b)

    def summary(self, by: str = "task", run: str | None = None, since: datetime | None = None) -> list[SummaryRow]:
        """The project's rollouts per task (``by="task"``, by external id) or per day (``"day"``, UTC, by when
        they were created): rollouts, finished, success rate, mean turns and mean duration of the finished ones,
        and errors by type. ``run`` (name or id) and ``since`` narrow it to one run's, or those created since."""
        return summarize(self, by=by, run=run, since=since)

    def trajectory(self, rollout_id: str, *, attempt: str | None = None) -> Trajectory:
        """The rollout whole, in one call: its turns in order (those of the attempt, and those that name none),
        each with the artifacts it links (sha256, role, media type, size: ``artifacts.open`` reads one), and the
        spans of ``attempt`` (an attempt's id; None or ``"latest"``: the latest, if it has one).
        NotFoundError for a rollout, or an attempt of it, that is not there."""
        return trajectory(self, rollout_id, attempt)

    def purge(self, *, older_than: timedelta | None = None, keep_last: int | None = None,
              dry_run: bool = False, on_progress: Callable[[int, int], None] | None = None) -> PurgeResult:
        """Delete finished rollouts (and their attempts, spans and turns) older than ``older_than`` or
        beyond the ``keep_last`` most recent; ``dry_run`` only counts them. It goes in batches, each its own
        short transaction; ``on_progress(done, total)`` follows the rollouts batch by batch."""
        return purge(self, older_than=older_than, keep_last=keep_last, dry_run=dry_run, on_progress=on_progress)

    def export(self, format: str, selection: Selection | Mapping[str, Any] | None = None, *, out: str | os.PathLike,
               messages: MessagePolicy | Mapping[str, Any] | None = None, images: str = "files",
               on_progress: Callable[[int, int], None] | None = None) -> ExportSummary:
        """Write the rollouts of ``selection`` (a ``Selection`` or its fields) to ``out`` as training data in
        ``format`` (``rolloutdb.store.export.FORMATS``: TRL, verl, OpenAI), JSONL or Parquet by the file's suffix,
        streamed a page of rollouts at a time. ``messages`` says how a trajectory becomes chat messages;
        ``images``: screenshots as files beside ``out`` (``"files"``), embedded as the datasets Image feature
        (``"embed"``, Parquet), or left out (``"none"``). ``on_progress(rollouts read, rollouts selected)``
        follows it page by page. Returns what was written and what was skipped, and why. Local only: it
        streams from the database, not through a server."""
        return export_rollouts(self, format, selection, out, messages=messages, images=images, on_progress=on_progress)

    def export_bundle(self, selection: Selection | Mapping[str, Any] | None = None, *, out: str | os.PathLike,
                      on_progress: Callable[[str, int, int], None] | None = None) -> BundleSummary:
        """Write the rollouts of ``selection`` (a ``Selection`` or its fields; ``latest_attempt``, ``per_task``,
        ``dedupe`` and ``min_margin`` do not apply) to ``out`` as a bundle, ids as stored: every row of theirs and
        every row they point at (attempts, turns, spans, status history, runs, steps, groups, tasks, validators,
        scripts, resources, artifacts with their links and contents; see ``rolloutdb.store.bundles``), one JSONL
        file per table and a manifest of counts and checksums, in a ``.tar`` file or a new folder.
        ``on_progress(stage, done, in all)``. An empty selection writes an empty bundle (``rows`` says so).
        Local only."""
        return export_bundle(self, selection, out, on_progress=on_progress)

    def import_bundle(self, path: str | os.PathLike, *,
                      on_progress: Callable[[str, int, int], None] | None = None) -> ImportSummary:
        """Import a bundle (``export_bundle``'s) into this project: every file is checked against the manifest
        first, so a corrupted, truncated or newer-schema bundle (InvalidBundleError) changes nothing; then its
        rows go in in one transaction, those present already kept as they are (importing twice changes
        nothing). A row whose id another project of the database holds is a ConflictError. Local only."""
        return import_bundle(self, path, on_progress=on_progress)

    def archive(self, *, older_than: timedelta, to: str | os.PathLike,
                on_progress: Callable[[str, int, int], None] | None = None) -> ArchiveSummary:
        """Bundle the finished rollouts that ended more than ``older_than`` ago into a new ``.tar`` in the folder
        ``to``, read it back and check it against the database, then ``purge`` them; ``import_bundle`` restores
        them. Should anything fail (or be interrupted) before the check passes, nothing is purged. Local only."""
        return archive(self, older_than, to, on_progress=on_progress)

    def close(self) -> None:
        """Release the database connections; waits under way end (StoreUnavailableError)."""
        self.waiter.close()
        if self._wal is not None:
            self._wal.close()  # before taking the write lock, which its thread may be waiting for
        with self._write_lock:
            if self._sqlite_writer is not None and self._sqlite_writer[0] == os.getpid():
                self._sqlite_writer[1].close()
            self._sqlite_writer = None
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {display_url(self.url)} project={self.project!r}>"

    # -- transactions: every area goes through these two ---------------------------------------------
    # They, and the area methods that take a ``connection`` (``fetch_row``, ``change_rows``, ...), are the
    # building blocks the store's operations share: one area's operation calls another's inside its own
    # transaction. Code outside the store calls the operations, not these.

    @contextlib.contextmanager
    def reading(self, *, autocommit: bool = False) -> Iterator[Connection]:
        """A connection for reads (no write lock taken); inside ``write_together``, its transaction's, so that
        each call reads what the calls before it wrote. ``autocommit`` (not inside ``write_together``): on
        PostgreSQL, each statement its own transaction, for reads that need no snapshot common to their statements
        (in READ COMMITTED, a transaction's statements have none anyway): no BEGIN and ROLLBACK round trips, and
        psycopg keeps the statements it prepared, which it drops at every ROLLBACK. SQLite: unchanged
        (``_statements.Prepared`` begins no transaction)."""
        shared = self._joined()
        if shared is not None:
            yield shared
            return
        with unavailable_as_error(self.url), self.engine.connect() as connection:
            if autocommit and self.backend == "postgresql":
                connection.execution_options(isolation_level="AUTOCOMMIT")  # reset when the pool takes it back
            yield connection

    def _check_database_file(self) -> None:
        """StoreUnavailableError when the SQLite file this store opened is no longer at its path: its open
        connections would go on using the removed file, and what they wrote would never be read again."""
        if self._database_file is not None and file_identity(self._database_file[0]) != self._database_file[1]:
            raise StoreUnavailableError(f"the SQLite database file {self._database_file[0]!r} is gone: removed or "
                                        "replaced since this store opened it")

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises; the store's
        commit hooks (events, statistics) run inside it. Inside ``write_together``: a part of its transaction."""
        shared = self._joined()
        if shared is not None:
            try:
                with unavailable_as_error(self.url):
                    yield shared
            except BaseException:
                self._shared.failed = True  # even if its caller goes on: what it left in the transaction is unknown
                raise
            return
        self._check_database_file()
        with self._write_lock, unavailable_as_error(self.url), self._writer() as connection:
            with hooks.transaction(connection):
                yield connection
            if self._wal is not None:
                self._wal.written()

    def _joined(self) -> Connection | None:
        """The connection of the ``write_together`` transaction this thread is running, if any."""
        return getattr(self._shared, "connection", None)

    def write_together(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """Run ``calls`` (functions making this store's calls, with no effect but the store's writes) in one write
        transaction with one commit, each seeing what the calls before it wrote, as if each had run alone one
        after another. Should any of them fail, that transaction is rolled back and each runs again in a
        transaction of its own, so that each gets what it would have got alone. Returns what each returned or
        the exception it raised, in order (as ``asyncio.gather(..., return_exceptions=True)``). For many small
        concurrent writes (Agent Lightning's adapter): a commit, its hooks and a thread hop shared by all."""
        if len(calls) > 1 and self._joined() is None:
            try:
                return self._write_in_one_transaction(calls)
            except StoreUnavailableError as exc:
                return [exc] * len(calls)  # each alone would meet the same database
            except _SharedTransactionFailed:
                pass
        return each_alone(calls)

    def _write_in_one_transaction(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
        results: list[T | Exception] = []
        with self.writing() as connection:
            self._shared.connection, self._shared.failed = connection, False
            try:
                for call in calls:
                    try:
                        results.append(call())
                    except StoreUnavailableError:
                        raise
                    except Exception as exc:
                        raise _SharedTransactionFailed from exc
                    if self._shared.failed:
                        raise _SharedTransactionFailed
            finally:
                self._shared.connection = None
        return results

    @contextlib.contextmanager
    def _writer(self) -> Iterator[Connection]:
        """A connection for one write transaction. On SQLite it is always the same one (writes queue on the
        write lock anyway): SQLite empties a connection's page cache whenever another connection has
        written, so one writer keeps its cache warm. PostgreSQL: a pooled connection each time."""
        if self.backend != "sqlite":
            with self.engine.connect() as connection:
                yield connection.execution_options(**{WRITE: True})
            return
        if self._sqlite_writer is None or self._sqlite_writer[0] != os.getpid():  # none yet, or a forked child
            self._sqlite_writer = (os.getpid(), self.engine.connect().execution_options(**{WRITE: True}))
        connection = self._sqlite_writer[1]
        try:
            yield connection
        finally:
            if connection.invalidated or connection.closed:
                connection.close()
                self._sqlite_writer = None

    def _ensure_project(self, name: str) -> str:
        project = Project(name=name)
        with self.writing() as connection:
            connection.execute(insert_ignoring_conflicts(connection, projects), project.model_dump())
            return connection.execute(select(projects.c.id).where(projects.c.name == name)).scalar_one()

    def _existing_project(self, name: str) -> str:
        with self.reading() as connection:
            return existing_project_id(connection, name, self.url)


def each_alone(calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
    """Run ``calls`` one after another: what each returned, or the exception it raised."""
    outcomes: list[T | Exception] = []
    for call in calls:
        try:
            outcomes.append(call())
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


class _SharedTransactionFailed(Exception):
    """A call of ``write_together`` failed inside the shared transaction: each runs again alone."""


def existing_project_id(connection: Connection, name: str, url: str) -> str:
    """The id of the project ``name`` in the database at ``url``; NotFoundError naming the projects there."""
    found = connection.execute(select(projects.c.id).where(projects.c.name == name)).scalar_one_or_none()
    if found is None:
        names = connection.execute(select(projects.c.name).order_by(projects.c.name)).scalars().all()
        raise NotFoundError(
            f"no project {name!r} in {display_url(url)}; "
            + (f"its projects: {', '.join(map(repr, names))}" if names else "it has no projects yet")
            + f". `rolloutdb projects create {name}` creates it; a write through connect() does too")
    return found


# What Agent Lightning's code and tests expect of a store (its ids' shapes, rollouts naming resources not stored):
# how its adapter opens a database, and how `rolloutdb serve --agent-lightning` opens the server's.
AGENT_LIGHTNING_OPTIONS: dict[str, Any] = {"id_prefixes": {"rollout": "ro-", "attempt": "at-"},
                                           "resources_must_exist": False}


def connect(
    url: str | None = None,
    *,
    project: str | None = None,
    create: bool = True,
    upgrade: bool = False,
    clock: Callable[[], datetime] = utcnow,
    health_check_interval: float = 5.0,
    poll_interval: float | None = None,
    id_prefixes: Mapping[str, str] | None = None,
    resources_must_exist: bool = True,
    artifacts: str | os.PathLike | None = None,
    max_artifact_bytes: int = MAX_ARTIFACT_BYTES,
    token: str | None = None,
    **server_options: float,
) -> Store:
    """Open the RolloutDB database at ``url`` (see ``rolloutdb.config`` for where it is found otherwise).

    ``project``: the project whose rows the store reads and writes; None: ``DEFAULT_PROJECT`` ("default").

    A server's URL (``http://host:8765``) gives a ``rolloutdb.client.RemoteStore`` instead: the same API
    through the server. ``token`` (default: ``ROLLOUTDB_TOKEN``) is the API token it sends; the project is the
    token's, or without one the server's own, unless ``project`` names it. ``server_options`` are its
    ``timeout``, ``connect_timeout`` and ``retry_for`` (seconds). The options below that concern a database
    itself (``upgrade``, ``clock``, ...) are the server's business there; ``create=False`` keeps a server
    serving ``--all-projects`` from creating the project named (NotFoundError instead).

    A new database is created and migrated, and a new project created in it; with ``create=False``
    both must exist already (DatabaseNotFoundError, NotFoundError) and nothing is written — what
    reads use. One at an older schema raises SchemaOutOfDateError unless ``upgrade=True``. ``clock``
    replaces the wall clock (tests); ``health_check_interval`` is how often store calls may run the
    attempt watchdog; ``poll_interval`` how often a waiter looks for rollouts finished by other
    processes (default 0.5 s on SQLite; PostgreSQL is notified); ``id_prefixes`` starts the ids of new
    rollouts and attempts, e.g. ``{"rollout": "ro-", "attempt": "at-"}`` (Agent Lightning's shapes);
    ``resources_must_exist=False`` lets a rollout name resources not stored (yet), as Agent Lightning does.
    ``artifacts`` is where artifacts' content goes: ``"database"``, a folder or ``file:///dir``, or a folder fsspec
    reaches by URL (``s3://bucket/prefix`` with ``rolloutdb[s3]``) (default: ``ROLLOUTDB_ARTIFACTS``, else a
    SQLite file's folder ``<db>.artifacts``, else the database);
    ``max_artifact_bytes`` the largest content ``artifacts.put`` takes (default 50 MiB).
    """
    resolved = resolve_url(url)
    if project is not None:
        project_name(project)
    if is_server_url(resolved):
        from ..client import RemoteStore

        if (clock is not utcnow or upgrade or id_prefixes is not None or not resources_must_exist or artifacts is not None
                or max_artifact_bytes != MAX_ARTIFACT_BYTES):
            raise InvalidInputError("clock=, upgrade=, id_prefixes=, resources_must_exist=, artifacts= and "
                                    "max_artifact_bytes= are for a database: a "
                                    "server keeps its own settings and migrates its database with `rolloutdb db "
                                    "upgrade`")
        return RemoteStore(resolved, project, token=token, create=create, **server_options)  # type: ignore[return-value]
    if token is not None or server_options:
        raise InvalidInputError(f"token and {', '.join(server_options) or 'the timeouts'} are for a server's "
                                f"URL (http://...), not for the database at {display_url(resolved)}")
    with _opened(resolved, create=create, upgrade=upgrade) as engine:
        return Store(engine, resolved, DEFAULT_PROJECT if project is None else project, clock=clock, health_check_interval=health_check_interval,
                     poll_interval=poll_interval, create_project=create, id_prefixes=id_prefixes,
                     resources_must_exist=resources_must_exist, artifacts=artifacts,
                     max_artifact_bytes=max_artifact_bytes)


def list_projects(url: str | None = None) -> list[Project]:
    """The projects of the database at ``url``, by name. The database must exist; nothing is written."""
    with _connected_once(resolve_url(url), create=False) as connection:
        rows = connection.execute(select(projects).order_by(projects.c.name)).mappings().all()
    return [Project.model_validate(dict(row)) for row in rows]


def create_project(name: str, url: str | None = None) -> Project:
    """Create the project ``name`` (and the database, if there is none yet); ConflictError if it exists."""
    resolved = resolve_url(url)
    project = Project(name=project_name(name))
    with _connected_once(resolved, create=True) as connection:
        connection.execution_options(**{WRITE: True})
        with connection.begin():
            inserted = connection.execute(insert_ignoring_conflicts(connection, projects)
                                          .returning(projects.c.id), project.model_dump()).first()
    if inserted is None:
        raise ConflictError(f"project {name!r} exists in {display_url(resolved)}")
    return project


ID_PREFIXED = ("rollout", "attempt")


def checked_id_prefixes(prefixes: Mapping[str, str]) -> dict[str, str]:
    """``prefixes`` if each names a kind in ID_PREFIXED and is a short string, else InvalidInputError."""
    for kind, prefix in prefixes.items():
        if kind not in ID_PREFIXED:
            raise InvalidInputError(f"id_prefixes: no ids of kind {kind!r} are made; kinds: {', '.join(ID_PREFIXED)}")
        if not isinstance(prefix, str) or len(prefix) > 40:
            raise InvalidInputError(f"id_prefixes: the {kind} prefix must be a string of up to 40 characters, "
                                    f"got {prefix!r:.80}")
    return dict(prefixes)


def project_name(name: str) -> str:
    """``name`` if it can name a project, else InvalidInputError."""
    if not isinstance(name, str) or not name or len(name) > 200:
        raise InvalidInputError(f"project must be a name of 1 to 200 characters, got {name!r}")
    return name


@contextlib.contextmanager
def _connected_once(url: str, *, create: bool) -> Iterator[Connection]:
    """One connection to the database at ``url`` for a call that needs no Store; its engine goes with it."""
    with _opened(url, create=create) as engine:
        try:
            with unavailable_as_error(url), engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()


@contextlib.contextmanager
def _opened(url: str, *, create: bool, upgrade: bool = False) -> Iterator[Engine]:
    """An engine on the database at ``url``, its schema checked (and, if ``create``, made); disposed if the
    block fails, left to the block otherwise."""
    engine = create_store_engine(url, create=create)
    try:
        with unavailable_as_error(url):
            ensure_schema(engine, upgrade_if_needed=upgrade, create=create)
        yield engine
    except BaseException:
        engine.dispose()
        raise


__all__ = ["AGENT_LIGHTNING_OPTIONS", "DEFAULT_PROJECT", "PurgeResult", "Store", "connect", "create_project", "list_projects"]
