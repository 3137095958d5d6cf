"""A persistent Agent Lightning store: ``LightningStore`` (agentlightning 0.3.x) backed by RolloutDB.

    from rolloutdb.integrations.agentlightning import RolloutDBLightningStore
    store = RolloutDBLightningStore("sqlite:///./agl.db")            # or postgresql://...
    trainer = agl.Trainer(..., store=store)

Rollouts, attempts, spans, resources and workers live in the database, so they survive restarts, stay
out of the trainer's memory, and are shared by runner processes on any number of machines. Every call
runs the synchronous RolloutDB store in a worker thread, so the event loop never blocks.

It keeps Agent Lightning's contract as its own stores and tests define it: their ids (``ro-``, ``at-``,
``rs-``), span sequence ids counted per rollout, their error messages, paginated queries, and its clock
(``time.time``) for timestamps and health checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import weakref
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

from agentlightning.store.base import (
    UNSET,
    LightningStore,
    LightningStoreCapabilities,
    LightningStoreStatistics,
    Unset,
)
from agentlightning.types import (
    Attempt,
    AttemptedRollout,
    EnqueueRolloutRequest,
    NamedResources,
    ResourcesUpdate,
    PaginatedResult,
    Rollout,
    RolloutConfig,
    Span,
    Worker,
)
from opentelemetry.sdk.trace import ReadableSpan
from pydantic import TypeAdapter

import rolloutdb
from rolloutdb import records
from rolloutdb.config import is_server_url, resolve_url
from rolloutdb.errors import ConflictError, NotFoundError, RolloutDBError, StoreUnavailableError
from rolloutdb.store.together import Batch, Write, shared_by, split, write_group

T = TypeVar("T")
logger = logging.getLogger(__name__)
NAMED_RESOURCES = TypeAdapter(NamedResources)
# The ids Agent Lightning's own stores make (its code and tests expect these shapes).
AGL_ID_PREFIXES = rolloutdb.store.AGENT_LIGHTNING_OPTIONS["id_prefixes"]
# Agent Lightning's field names -> RolloutDB's, for sorting (its JSON fields are not sortable).
ROLLOUT_SORT = {"rollout_id": "id", "start_time": "created_at", "end_time": "ended_at", "status": "status",
                "mode": "mode", "resources_id": "resources_id"}
ATTEMPT_SORT = {"rollout_id": "rollout_id", "attempt_id": "id", "sequence_id": "sequence", "start_time": "started_at",
                "end_time": "ended_at", "status": "status", "worker_id": "worker_id",
                "last_heartbeat_time": "last_heartbeat_at"}
SPAN_SORT = {name: name for name in ("rollout_id", "attempt_id", "sequence_id", "trace_id", "span_id", "parent_id",
                                     "name", "start_time", "end_time")}
RESOURCES_SORT = {"resources_id": "id", "create_time": "created_at", "update_time": "updated_at", "version": "version"}
WORKER_SORT = {"worker_id": "id", "status": "status", "last_heartbeat_time": "last_heartbeat_at",
               "last_dequeue_time": "last_dequeue_at", "last_busy_time": "last_busy_at",
               "last_idle_time": "last_idle_at", "current_rollout_id": "current_rollout_id",
               "current_attempt_id": "current_attempt_id"}
WAIT_SLICE_SECONDS = 0.5  # a wait blocks a worker thread this long at most, so a cancelled wait ends soon after
# Threads that run store calls at once: as many as the PostgreSQL pool's connections (engine.POOL_SIZE +
# POOL_OVERFLOW), so that concurrent calls commit together instead of queueing for asyncio's default
# executor (as few as 5 threads on a small machine), and waits do not hold up the other calls.
MAX_THREADS = 32


# -- conversions ------------------------------------------------------------------------------------------


def agl_clock() -> datetime:
    """Agent Lightning's clock, ``time.time`` (its tests move it), as the store's UTC datetime."""
    return datetime.fromtimestamp(time.time(), timezone.utc)


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _datetime(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def to_agl_attempt(attempt: records.Attempt) -> Attempt:
    return Attempt(rollout_id=attempt.rollout_id, attempt_id=attempt.id, sequence_id=attempt.sequence,
                   start_time=_seconds(attempt.started_at or attempt.created_at), end_time=_seconds(attempt.ended_at),
                   status=attempt.status, worker_id=attempt.worker_id,
                   last_heartbeat_time=_seconds(attempt.last_heartbeat_at), metadata=attempt.metadata)


def to_agl_rollout(rollout: records.Rollout, attempt: records.Attempt | None = None) -> Rollout:
    fields = dict(rollout_id=rollout.id, input=rollout.input, start_time=_seconds(rollout.created_at),
                  end_time=_seconds(rollout.ended_at), mode=rollout.mode, resources_id=rollout.resources_id,
                  status=rollout.status, config=RolloutConfig(**rollout.config.model_dump()),
                  metadata=rollout.metadata)
    return AttemptedRollout(**fields, attempt=to_agl_attempt(attempt)) if attempt else Rollout(**fields)


def to_agl_claim(claim: records.Claim) -> AttemptedRollout:
    return to_agl_rollout(claim.rollout, claim.attempt)  # type: ignore[return-value]


def to_agl_span(span: records.Span) -> Span:
    return Span.model_validate({
        "rollout_id": span.rollout_id, "attempt_id": span.attempt_id, "sequence_id": span.sequence_id,
        "trace_id": span.trace_id, "span_id": span.span_id, "parent_id": span.parent_id, "name": span.name,
        "status": span.status, "attributes": span.attributes, "events": span.events, "links": span.links,
        "start_time": _seconds(span.start_time), "end_time": _seconds(span.end_time), "context": span.context,
        "parent": span.parent, "resource": span.resource,
    })


def from_agl_span(span: Span) -> dict[str, Any]:
    fields = span.model_dump(mode="json")
    fields["start_time"], fields["end_time"] = _datetime(span.start_time), _datetime(span.end_time)
    known = set(records.Span.model_fields)
    return {key: value for key, value in fields.items() if key in known}


def to_agl_resources(resources: records.Resources) -> ResourcesUpdate:
    return ResourcesUpdate(resources_id=resources.id, create_time=resources.created_at.timestamp(),
                           update_time=resources.updated_at.timestamp(), version=resources.version,
                           resources=NAMED_RESOURCES.validate_python(resources.resources))


def from_agl_resources(resources: NamedResources) -> dict[str, Any]:
    return NAMED_RESOURCES.dump_python(resources, mode="json")


def to_agl_worker(worker: records.Worker) -> Worker:
    return Worker(worker_id=worker.id, status=worker.status, heartbeat_stats=worker.heartbeat_stats,
                  last_heartbeat_time=_seconds(worker.last_heartbeat_at),
                  last_dequeue_time=_seconds(worker.last_dequeue_at), last_busy_time=_seconds(worker.last_busy_at),
                  last_idle_time=_seconds(worker.last_idle_at), current_rollout_id=worker.current_rollout_id,
                  current_attempt_id=worker.current_attempt_id)


def _sort(sort_by: str | None, fields: dict[str, str], default: str, what: str) -> str:
    if sort_by is None:
        return default
    if sort_by not in fields:
        raise ValueError(f"cannot sort {what} by {sort_by!r}; sortable fields: {', '.join(sorted(fields))}")
    return fields[sort_by]


def _page(limit: int) -> int | None:
    return None if limit < 0 else limit


def _match(filter_logic: str) -> str:
    if filter_logic not in ("and", "or"):
        raise ValueError(f"filter_logic must be 'and' or 'or', got {filter_logic!r}")
    return "all" if filter_logic == "and" else "any"


def _paginated(items: Sequence[T], limit: int, offset: int, total: int) -> PaginatedResult[T]:
    return PaginatedResult(items=list(items), limit=limit, offset=offset, total=total)


@dataclass
class _Write(Write):
    done: asyncio.Future | None = None  # where its caller waits for its outcome


class _WritesTogether:
    """The writes of concurrent coroutines of one event loop, run together: a write that comes while a group is
    running waits for the next group, which takes every write waiting then and runs them in one thread and one
    transaction (``write_group``). Nothing waits when the store is idle. (More groups at once, sharing the
    waiting writes, measured no faster on PostgreSQL either.)"""

    def __init__(self, store: Any, threads: ThreadPoolExecutor) -> None:
        self.store, self.threads = store, threads
        self.waiting: list[_Write] = []
        self.running = False

    async def run(self, call: Callable[[], T], batch: Batch | None = None) -> T:
        loop = asyncio.get_running_loop()
        write = _Write(call, batch, loop.create_future())
        self.waiting.append(write)
        if not self.running:
            self.running = True
            loop.create_task(self._run_groups())
        return await write.done

    async def _run_groups(self) -> None:
        try:
            while self.waiting:
                group, self.waiting = self.waiting, []
                try:
                    outcomes = await asyncio.get_running_loop().run_in_executor(
                        self.threads, write_group, self.store, group)
                except BaseException as exc:  # the loop is closing, or the threads are gone
                    outcomes = [exc] * len(group)
                for write, outcome in zip(group, outcomes):
                    if write.done.done():  # its caller was cancelled meanwhile
                        continue
                    if isinstance(outcome, BaseException):
                        write.done.set_exception(outcome)
                    else:
                        write.done.set_result(outcome)
        finally:
            self.running = False


# A caller's spans among those stored: Agent Lightning's spans are told apart by rollout, sequence id and span id.
_spans_by_caller = shared_by(lambda span: (span.rollout_id, span.sequence_id, span.span_id),
                             lambda span: (span["rollout_id"], span["sequence_id"], span["span_id"]))


def _changes(**fields: Any) -> dict[str, Any]:
    """The fields the caller set (Agent Lightning passes UNSET for the others)."""
    return {key: value for key, value in fields.items() if not isinstance(value, Unset)}


class RolloutDBLightningStore(LightningStore):
    """Agent Lightning's store contract on a RolloutDB database (SQLite file or PostgreSQL)."""

    def __init__(self, url: str | None = None, *, project: str | None = None,
                 store: rolloutdb.Store | None = None, max_threads: int = MAX_THREADS,
                 **connect_options: Any) -> None:
        """Connect to ``url`` (``connect_options`` as ``rolloutdb.connect`` takes them; Agent Lightning's clock,
        id shapes and loose resources ids unless they say otherwise), or use ``store`` as it is.
        ``project``: None for ``rolloutdb.connect``'s default (on a database "default"; through a server the
        token's). A server's URL (``http://host:8765``, ``token=`` as ``connect`` takes it) keeps the server's
        own settings: its clock, and Agent Lightning's id shapes and loose resources ids if it was started with
        ``rolloutdb serve --agent-lightning``.
        ``max_threads``: how many store calls run at once (each in a thread of its own)."""
        super().__init__()
        given = store
        if store is None:
            if not is_server_url(resolve_url(url)):
                connect_options = {"clock": agl_clock, **rolloutdb.store.AGENT_LIGHTNING_OPTIONS, **connect_options}
            store = rolloutdb.connect(url, project=project, **connect_options)
        self.store = store
        self._owns_store = store is not given  # closed by close(); a store the caller gave stays the caller's
        self._closed = False
        self._started = time.monotonic()
        self._threads = ThreadPoolExecutor(max_threads, thread_name_prefix="rolloutdb-agl")
        self._writes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _WritesTogether] = \
            weakref.WeakKeyDictionary()

    @property
    def capabilities(self) -> LightningStoreCapabilities:
        # One database shared by every thread, event loop and process.
        return LightningStoreCapabilities(thread_safe=True, async_safe=True, zero_copy=True, otlp_traces=False)

    async def _run(self, call: Callable[..., T], *args: Any, health_check: bool = False, write: bool = False,
                   batch: Batch | None = None, missing: Sequence[tuple[str, str | None]] = (), **kwargs: Any) -> T:
        """Run a store call off the event loop; the contract's errors for bad ids and updates are ValueError.

        ``health_check``: first run the store's health check if it is due (before the calls Agent Lightning's
        stores check it). ``write``: a call that writes, run together with the other coroutines' (see
        ``_WritesTogether``), in one store call with others of its kind if it has a ``batch``. ``missing``: the
        (rollout, attempt or None) the call names, for Agent Lightning's message when one of them is not there."""
        if self._closed:
            raise StoreUnavailableError("this RolloutDBLightningStore is closed")

        def call_in_thread() -> T:
            if health_check:
                self.store.maybe_check_health()
            try:
                return call(*args, **kwargs)
            except NotFoundError as exc:
                raise self._not_found(missing) or exc

        try:
            if write:
                return await self._writes_together().run(call_in_thread, batch)
            return await asyncio.get_running_loop().run_in_executor(self._threads, call_in_thread)
        except StoreUnavailableError:
            raise
        except RolloutDBError as exc:
            raise ValueError(str(exc)) from exc

    async def close(self) -> None:
        """End the adapter's threads once the calls running in them are done, and close the store it opened (not a
        store given to it). Later calls raise StoreUnavailableError; closing again does nothing."""
        if self._closed:
            return
        self._closed = True

        def shut_down() -> None:  # in a thread: waiting for running calls must not hold up the event loop
            self._threads.shutdown(wait=True)
            if self._owns_store:
                self.store.close()

        await asyncio.get_running_loop().run_in_executor(None, shut_down)

    async def _write(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``_run`` for a call that writes."""
        return await self._run(call, *args, write=True, **kwargs)

    async def _write_batch(self, batch: Batch, **kwargs: Any) -> Any:
        """``_write`` of a call that can go in one store call with others of its kind: alone, ``batch``'s
        call of its own items."""
        return await self._write(batch.call_many, batch.items, batch=batch, **kwargs)

    def _writes_together(self) -> _WritesTogether:
        loop = asyncio.get_running_loop()
        writes = self._writes.get(loop)
        if writes is None:
            writes = self._writes[loop] = _WritesTogether(self.store, self._threads)
        return writes

    def _not_found(self, named: Sequence[tuple[str, str | None]]) -> ValueError | None:
        """Agent Lightning's error for the first of these rollouts (or attempts of them) that is not stored;
        looked up only once a call has failed."""
        for rollout_id, attempt_id in named:
            if not self.store.rollouts.count(id=rollout_id):
                return ValueError(f"Rollout {rollout_id} not found")
            if attempt_id is None or attempt_id == "latest" and self.store.attempts.count(rollout_id=rollout_id):
                continue
            if not self.store.attempts.count(rollout_id=rollout_id):
                return ValueError(f"No attempts found for rollout {rollout_id}")
            if not self.store.attempts.count(rollout_id=rollout_id, id=attempt_id):
                return ValueError(f"Attempt {attempt_id} not found for rollout {rollout_id}")
        return None

    async def statistics(self) -> LightningStoreStatistics:
        store = self.store

        def counts() -> LightningStoreStatistics:
            return LightningStoreStatistics(
                name=type(self).__name__, total_rollouts=store.rollouts.count(), total_attempts=store.attempts.count(),
                total_spans=store.spans.count(), total_resources=store.resources.count(),
                total_workers=store.workers.count(), uptime=time.monotonic() - self._started)

        return await self._run(counts)

    # -- rollouts ---------------------------------------------------------------------------------------

    @staticmethod
    def _rollout_fields(mode: Any, resources_id: Any, config: RolloutConfig | None,
                        metadata: dict[str, Any] | None) -> dict[str, Any]:
        return {"mode": mode, "resources_id": resources_id,
                "config": (config or RolloutConfig()).model_dump(), "metadata": dict(metadata or {})}

    async def start_rollout(self, input: Any, mode: Any = None, resources_id: str | None = None,
                            config: RolloutConfig | None = None, metadata: dict[str, Any] | None = None,
                            worker_id: str | None = None) -> AttemptedRollout:
        request = {"input": input, **self._rollout_fields(mode, resources_id, config, metadata)}

        def start_many(requests: list[dict[str, Any]]) -> list[records.Claim]:  # alone, or for a group's callers
            self.store.maybe_check_health()
            return self.store.rollouts.start_many(requests, worker_id=worker_id)

        [claim] = await self._write_batch(Batch(f"start by {worker_id}", [request], start_many, split))
        return to_agl_claim(claim)

    async def enqueue_rollout(self, input: Any, mode: Any = None, resources_id: str | None = None,
                              config: RolloutConfig | None = None, metadata: dict[str, Any] | None = None) -> Rollout:
        rollout = await self._write(self.store.rollouts.enqueue, input, health_check=True,
                                    **self._rollout_fields(mode, resources_id, config, metadata))
        return to_agl_rollout(rollout)

    async def enqueue_many_rollouts(self, rollouts: Sequence[EnqueueRolloutRequest]) -> Sequence[Rollout]:
        requests = [{"input": request.input, **self._rollout_fields(request.mode, request.resources_id,
                                                                      request.config, request.metadata)}
                    for request in rollouts]
        enqueued = await self._write(self.store.rollouts.enqueue_many, requests, health_check=True)
        return [to_agl_rollout(rollout) for rollout in enqueued]

    async def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        claim = await self._write(self.store.rollouts.dequeue, worker_id)
        return None if claim is None else to_agl_claim(claim)

    async def dequeue_many_rollouts(self, *, limit: int = 1, worker_id: str | None = None) -> Sequence[AttemptedRollout]:
        claims = await self._write(self.store.rollouts.dequeue_many, limit, worker_id=worker_id)
        return [to_agl_claim(claim) for claim in claims]

    async def start_attempt(self, rollout_id: str, worker_id: str | None = None) -> AttemptedRollout:
        return to_agl_claim(await self._write(self.store.attempts.start, rollout_id, worker_id, health_check=True,
                                              missing=[(rollout_id, None)]))

    async def query_rollouts(self, *, status_in: Sequence[str] | None = None,
                             rollout_id_in: Sequence[str] | None = None, rollout_id_contains: str | None = None,
                             filter_logic: Literal["and", "or"] = "and", sort_by: str | None = None,
                             sort_order: Literal["asc", "desc"] = "asc", limit: int = -1, offset: int = 0,
                             status: Sequence[str] | None = None, rollout_ids: Sequence[str] | None = None,
                             ) -> PaginatedResult[Rollout]:
        filters: dict[str, Any] = {}
        if (status_in if status_in is not None else status) is not None:
            filters["status"] = list(status_in if status_in is not None else status)
        if (rollout_id_in if rollout_id_in is not None else rollout_ids) is not None:
            filters["id"] = list(rollout_id_in if rollout_id_in is not None else rollout_ids)
        if rollout_id_contains is not None:
            filters["id__contains"] = rollout_id_contains
        store = self.store

        def query() -> PaginatedResult[Rollout]:
            match = _match(filter_logic)
            found = store.rollouts.query(sort=_sort(sort_by, ROLLOUT_SORT, "created_at", "rollouts"),
                                         order=sort_order, limit=_page(limit), offset=offset, match=match, **filters)
            latest = {attempt.rollout_id: attempt for attempt in store.attempts.query(
                rollout_id=[rollout.id for rollout in found], sort="sequence", limit=None)} if found else {}
            return _paginated([to_agl_rollout(rollout, latest.get(rollout.id)) for rollout in found], limit, offset,
                              store.rollouts.count(match=match, **filters))

        return await self._run(query, health_check=True)

    async def get_rollout_by_id(self, rollout_id: str) -> Rollout | None:
        store = self.store

        def get() -> Rollout | None:
            found = store.rollouts.query(id=rollout_id, limit=1)
            return to_agl_rollout(found[0], store.attempts.latest(rollout_id)) if found else None

        return await self._run(get, health_check=True)

    async def update_rollout(self, rollout_id: str, input: Any = UNSET, mode: Any = UNSET, resources_id: Any = UNSET,
                             status: Any = UNSET, config: Any = UNSET, metadata: Any = UNSET) -> Rollout:
        changes = _changes(input=input, mode=mode, resources_id=resources_id, status=status, config=config,
                           metadata=metadata)
        if "config" in changes:
            changes["config"] = (changes["config"] or RolloutConfig()).model_dump()
        if "metadata" in changes:
            changes["metadata"] = dict(changes["metadata"] or {})
        store = self.store

        def update() -> records.Rollout:
            try:
                return store.rollouts.update(rollout_id, **changes)
            except NotFoundError:
                if store.rollouts.count(id=rollout_id):
                    raise  # the resources it names are missing
                raise ValueError(f"Item does not exist with primary key(s): rollout_id={rollout_id!r}") from None

        return to_agl_rollout(await self._write(update, health_check=True))

    async def wait_for_rollouts(self, *, rollout_ids: list[str], timeout: float | None = None) -> list[Rollout]:
        """The rollouts among ``rollout_ids`` that have finished, once all have or ``timeout`` seconds have
        passed (None: no limit). Unknown ids are left out, as Agent Lightning's stores do."""
        store = self.store
        known = await self._run(lambda: {rollout.id for rollout in store.rollouts.query(id=list(rollout_ids),
                                                                                        limit=None)},
                                health_check=True)
        waited = [rollout_id for rollout_id in dict.fromkeys(rollout_ids) if rollout_id in known]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # in slices, so that cancelling the wait frees its thread soon
            left = WAIT_SLICE_SECONDS if deadline is None else max(0.0, deadline - time.monotonic())
            finished = await self._run(store.rollouts.wait, waited, min(left, WAIT_SLICE_SECONDS))
            if len(finished) == len(waited) or deadline is not None and time.monotonic() >= deadline:
                by_id = {rollout.id: rollout for rollout in finished}
                return [to_agl_rollout(by_id[rollout_id]) for rollout_id in waited if rollout_id in by_id]

    # -- attempts ---------------------------------------------------------------------------------------

    async def query_attempts(self, rollout_id: str, *, sort_by: str | None = "sequence_id",
                             sort_order: Literal["asc", "desc"] = "asc", limit: int = -1,
                             offset: int = 0) -> PaginatedResult[Attempt]:
        store = self.store

        def query() -> PaginatedResult[Attempt]:
            store.rollouts.get(rollout_id)  # an unknown rollout is an error, not an empty list
            found = store.attempts.query(rollout_id=rollout_id, sort=_sort(sort_by, ATTEMPT_SORT, "sequence", "attempts"),
                                         order=sort_order, limit=_page(limit), offset=offset)
            return _paginated([to_agl_attempt(attempt) for attempt in found], limit, offset,
                              store.attempts.count(rollout_id=rollout_id))

        return await self._run(query, health_check=True)

    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        attempt = await self._run(self.store.attempts.latest, rollout_id, health_check=True)
        return None if attempt is None else to_agl_attempt(attempt)

    async def update_attempt(self, rollout_id: str, attempt_id: str, status: Any = UNSET, worker_id: Any = UNSET,
                             last_heartbeat_time: Any = UNSET, metadata: Any = UNSET) -> Attempt:
        changes = _changes(status=status, worker_id=worker_id, metadata=metadata)
        if "metadata" in changes:
            changes["metadata"] = dict(changes["metadata"] or {})
        if not isinstance(last_heartbeat_time, Unset):
            changes["last_heartbeat_at"] = _datetime(last_heartbeat_time)
        def update_many(updates: list[dict[str, Any]]) -> list[records.Attempt]:  # alone, or for a group's callers
            self.store.maybe_check_health()
            return self.store.attempts.update_many(updates)

        [attempt] = await self._write_batch(
            Batch("attempt updates", [{"rollout_id": rollout_id, "attempt_id": attempt_id, **changes}], update_many,
                  split), missing=[(rollout_id, attempt_id)])
        return to_agl_attempt(attempt)

    # -- spans ------------------------------------------------------------------------------------------

    async def add_span(self, span: Span) -> Span | None:
        added = await self.add_many_spans([span])
        return added[0] if added else None

    async def add_many_spans(self, spans: Sequence[Span]) -> Sequence[Span]:
        """Store the spans; returns those that were new, as given (a span whose sequence id or span id its
        attempt has already is skipped, and logged as Agent Lightning's stores do)."""
        def add_many(items: list[dict[str, Any]]) -> list[records.Span]:  # alone, or for a group's callers
            return self.store.spans.add_many(items, unique_span_ids=True)

        stored = await self._write_batch(
            Batch("spans", [from_agl_span(span) for span in spans], add_many, _spans_by_caller),
            missing=list(dict.fromkeys((span.rollout_id, span.attempt_id) for span in spans)))
        new = {(span.rollout_id, span.sequence_id, span.span_id) for span in stored}
        added = [span for span in spans if (span.rollout_id, span.sequence_id, span.span_id) in new]
        for span in spans:
            if (span.rollout_id, span.sequence_id, span.span_id) not in new:
                logger.error("Duplicated span added for rollout=%s, attempt=%s, span=%s (sequence id %s). Skipping.",
                             span.rollout_id, span.attempt_id, span.span_id, span.sequence_id)
        return added

    async def add_otel_span(self, rollout_id: str, attempt_id: str, readable_span: ReadableSpan,
                            sequence_id: int | None = None) -> Span | None:
        if sequence_id is None:
            sequence_id = await self.get_next_span_sequence_id(rollout_id, attempt_id)
        return await self.add_span(Span.from_opentelemetry(readable_span, rollout_id, attempt_id, sequence_id))

    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        return (await self.get_many_span_sequence_ids([(rollout_id, attempt_id)]))[0]

    async def get_many_span_sequence_ids(self, rollout_attempt_ids: Sequence[tuple[str, str]]) -> Sequence[int]:
        """Sequence ids count per rollout, across its attempts, as in Agent Lightning's stores."""
        pairs = list(rollout_attempt_ids)
        return await self._write_batch(
            Batch("sequence ids", pairs, self.store.spans.next_sequence_ids_across_attempts, split),
            missing=[(rollout_id, None) for rollout_id, _ in pairs])

    async def query_spans(self, rollout_id: str, attempt_id: str | None = None, *, trace_id: str | None = None,
                          trace_id_contains: str | None = None, span_id: str | None = None,
                          span_id_contains: str | None = None, parent_id: str | None = None,
                          parent_id_contains: str | None = None, name: str | None = None,
                          name_contains: str | None = None, filter_logic: Literal["and", "or"] = "and",
                          limit: int = -1, offset: int = 0, sort_by: str | None = "sequence_id",
                          sort_order: Literal["asc", "desc"] = "asc") -> PaginatedResult[Span]:
        filters = {"trace_id": trace_id, "trace_id__contains": trace_id_contains, "span_id": span_id,
                   "span_id__contains": span_id_contains, "parent_id": parent_id,
                   "parent_id__contains": parent_id_contains, "name": name, "name__contains": name_contains}
        store = self.store

        given = {key: value for key, value in filters.items() if value is not None}

        def query() -> PaginatedResult[Span]:
            match = _match(filter_logic)
            found = store.spans.query(rollout_id, attempt_id, match=match,
                                      sort=_sort(sort_by, SPAN_SORT, "sequence_id", "spans"), order=sort_order,
                                      limit=_page(limit), offset=offset, **given)
            return _paginated([to_agl_span(span) for span in found], limit, offset,
                              store.spans.count(rollout_id, attempt_id, match=match, **given))

        return await self._run(query, health_check=True)

    # -- resources --------------------------------------------------------------------------------------

    async def add_resources(self, resources: NamedResources) -> ResourcesUpdate:
        # Agent Lightning's shape: "rs-" and 12 hex digits.
        return to_agl_resources(await self._write(self.store.resources.add, from_agl_resources(resources),
                                                  id=f"rs-{secrets.token_hex(6)}"))

    async def update_resources(self, resources_id: str, resources: NamedResources) -> ResourcesUpdate:
        """Replace a snapshot (its version goes up), or create it under that id: Agent Lightning's own
        stores do, and its Trainer relies on it to set up the initial resources as "default"."""
        named = from_agl_resources(resources)
        store = self.store

        def update_or_add() -> records.Resources:
            with contextlib.suppress(NotFoundError):
                return store.resources.update(resources_id, named)
            try:
                return store.resources.add(named, id=resources_id)
            except ConflictError:  # another caller added it meanwhile: this update goes on top
                return store.resources.update(resources_id, named)

        return to_agl_resources(await self._write(update_or_add, health_check=True))

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate | None:
        found = await self._run(self.store.resources.query, id=resources_id, limit=1)
        return to_agl_resources(found[0]) if found else None

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        latest = await self._run(self.store.resources.latest)
        return None if latest is None else to_agl_resources(latest)

    async def query_resources(self, *, resources_id: str | None = None, resources_id_contains: str | None = None,
                              sort_by: str | None = None, sort_order: Literal["asc", "desc"] = "asc",
                              limit: int = -1, offset: int = 0) -> PaginatedResult[ResourcesUpdate]:
        filters = {key: value for key, value in (("id", resources_id), ("id__contains", resources_id_contains))
                   if value is not None}
        store = self.store

        def query() -> PaginatedResult[ResourcesUpdate]:
            found = store.resources.query(sort=_sort(sort_by, RESOURCES_SORT, "created_at", "resources"),
                                          order=sort_order, limit=_page(limit), offset=offset, **filters)
            return _paginated([to_agl_resources(resources) for resources in found], limit, offset,
                              store.resources.count(**filters))

        return await self._run(query)

    # -- workers ----------------------------------------------------------------------------------------

    async def query_workers(self, *, status_in: Sequence[str] | None = None, worker_id_contains: str | None = None,
                            filter_logic: Literal["and", "or"] = "and", sort_by: str | None = None,
                            sort_order: Literal["asc", "desc"] = "asc", limit: int = -1,
                            offset: int = 0) -> PaginatedResult[Worker]:
        filters: dict[str, Any] = {}
        if status_in is not None:
            filters["status"] = list(status_in)
        if worker_id_contains is not None:
            filters["id__contains"] = worker_id_contains
        store = self.store

        def query() -> PaginatedResult[Worker]:
            match = _match(filter_logic)
            found = store.workers.query(sort=_sort(sort_by, WORKER_SORT, "id", "workers"), order=sort_order,
                                        limit=_page(limit), offset=offset, match=match, **filters)
            return _paginated([to_agl_worker(worker) for worker in found], limit, offset,
                              store.workers.count(match=match, **filters))

        return await self._run(query, health_check=True)

    async def get_worker_by_id(self, worker_id: str) -> Worker | None:
        found = await self._run(self.store.workers.query, id=worker_id, limit=1)
        return to_agl_worker(found[0]) if found else None

    async def update_worker(self, worker_id: str, heartbeat_stats: Any = UNSET) -> Worker:
        if heartbeat_stats is None:
            raise TypeError("heartbeat_stats must be a dict of figures, or left out; None is neither")
        stats = None if isinstance(heartbeat_stats, Unset) else heartbeat_stats
        return to_agl_worker(await self._write(self.store.workers.heartbeat, worker_id, stats))


__all__ = ["AGL_ID_PREFIXES", "RolloutDBLightningStore", "agl_clock", "to_agl_attempt", "to_agl_rollout", "to_agl_span"]
