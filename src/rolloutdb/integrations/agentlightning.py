"""A persistent Agent Lightning store: ``LightningStore`` (agentlightning 0.3.x) backed by RolloutDB.

    from rolloutdb.integrations.agentlightning import RolloutDBLightningStore
    store = RolloutDBLightningStore("sqlite:///./agl.db")            # or postgresql://...
    trainer = agl.Trainer(..., store=store)

Rollouts, attempts, spans, resources and workers live in the database, so they survive restarts, stay
out of the trainer's memory, and are shared by runner processes on any number of machines. Every call
runs the synchronous RolloutDB store in a worker thread, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    Rollout,
    RolloutConfig,
    Span,
    Worker,
)
from opentelemetry.sdk.trace import ReadableSpan
from pydantic import TypeAdapter

import rolloutdb
from rolloutdb import records
from rolloutdb.errors import NotFoundError, RolloutDBError, StoreUnavailableError

T = TypeVar("T")
NAMED_RESOURCES = TypeAdapter(NamedResources)
# Agent Lightning's field names -> RolloutDB's, for sorting.
ROLLOUT_SORT = {"rollout_id": "id", "start_time": "created_at", "end_time": "ended_at", "status": "status"}
ATTEMPT_SORT = {"sequence_id": "sequence", "start_time": "started_at", "end_time": "ended_at", "status": "status",
                "last_heartbeat_time": "last_heartbeat_at"}
SPAN_SORT = {"sequence_id": "sequence_id", "start_time": "start_time", "end_time": "end_time", "name": "name"}
RESOURCES_SORT = {"resources_id": "id", "create_time": "created_at", "update_time": "updated_at", "version": "version"}
WORKER_SORT = {"worker_id": "id", "status": "status", "last_heartbeat_time": "last_heartbeat_at",
               "last_dequeue_time": "last_dequeue_at"}


# -- conversions ------------------------------------------------------------------------------------------


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


def _sort(sort_by: str | None, fields: dict[str, str], default: str) -> str:
    if sort_by is None:
        return default
    if sort_by not in fields:
        raise ValueError(f"cannot sort by {sort_by!r}; sortable fields: {', '.join(sorted(fields))}")
    return fields[sort_by]


def _page(limit: int) -> int | None:
    return None if limit < 0 else limit


def _match(filter_logic: str) -> str:
    if filter_logic not in ("and", "or"):
        raise ValueError(f"filter_logic must be 'and' or 'or', got {filter_logic!r}")
    return "all" if filter_logic == "and" else "any"


def _changes(**fields: Any) -> dict[str, Any]:
    """The fields the caller set (Agent Lightning passes UNSET for the others)."""
    return {key: value for key, value in fields.items() if not isinstance(value, Unset)}


class RolloutDBLightningStore(LightningStore):
    """Agent Lightning's store contract on a RolloutDB database (SQLite file or PostgreSQL)."""

    def __init__(self, url: str | None = None, *, project: str = rolloutdb.store.DEFAULT_PROJECT,
                 store: rolloutdb.Store | None = None, **connect_options: Any) -> None:
        super().__init__()
        self.store = store if store is not None else rolloutdb.connect(url, project=project, **connect_options)

    @property
    def capabilities(self) -> LightningStoreCapabilities:
        # One database shared by every thread, event loop and process.
        return LightningStoreCapabilities(thread_safe=True, async_safe=True, zero_copy=True, otlp_traces=False)

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call off the event loop; the contract's errors for bad ids and updates are ValueError."""
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except StoreUnavailableError:
            raise
        except RolloutDBError as exc:
            raise ValueError(str(exc)) from exc

    async def statistics(self) -> LightningStoreStatistics:
        store = self.store

        def counts() -> LightningStoreStatistics:
            return LightningStoreStatistics(
                name=type(self).__name__, total_rollouts=store.rollouts.count(), total_attempts=store.attempts.count(),
                total_spans=store.spans.count(), total_resources=store.resources.count(),
                total_workers=store.workers.count())

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
        claim = await self._run(self.store.rollouts.start, input, worker_id=worker_id,
                                **self._rollout_fields(mode, resources_id, config, metadata))
        return to_agl_claim(claim)

    async def enqueue_rollout(self, input: Any, mode: Any = None, resources_id: str | None = None,
                              config: RolloutConfig | None = None, metadata: dict[str, Any] | None = None) -> Rollout:
        rollout = await self._run(self.store.rollouts.enqueue, input,
                                  **self._rollout_fields(mode, resources_id, config, metadata))
        return to_agl_rollout(rollout)

    async def enqueue_many_rollouts(self, rollouts: Sequence[EnqueueRolloutRequest]) -> Sequence[Rollout]:
        requests = [{"input": request.input, **self._rollout_fields(request.mode, request.resources_id,
                                                                      request.config, request.metadata)}
                    for request in rollouts]
        return [to_agl_rollout(rollout) for rollout in await self._run(self.store.rollouts.enqueue_many, requests)]

    async def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        claim = await self._run(self.store.rollouts.dequeue, worker_id)
        return None if claim is None else to_agl_claim(claim)

    async def dequeue_many_rollouts(self, *, limit: int = 1, worker_id: str | None = None) -> Sequence[AttemptedRollout]:
        claims = await self._run(self.store.rollouts.dequeue_many, limit, worker_id=worker_id)
        return [to_agl_claim(claim) for claim in claims]

    async def start_attempt(self, rollout_id: str, worker_id: str | None = None) -> AttemptedRollout:
        return to_agl_claim(await self._run(self.store.attempts.start, rollout_id, worker_id))

    async def query_rollouts(self, *, status_in: Sequence[str] | None = None,
                             rollout_id_in: Sequence[str] | None = None, rollout_id_contains: str | None = None,
                             filter_logic: Literal["and", "or"] = "and", sort_by: str | None = None,
                             sort_order: Literal["asc", "desc"] = "asc", limit: int = -1, offset: int = 0,
                             status: Sequence[str] | None = None, rollout_ids: Sequence[str] | None = None,
                             ) -> Sequence[Rollout]:
        filters: dict[str, Any] = {}
        if (status_in if status_in is not None else status) is not None:
            filters["status"] = list(status_in if status_in is not None else status)
        if (rollout_id_in if rollout_id_in is not None else rollout_ids) is not None:
            filters["id"] = list(rollout_id_in if rollout_id_in is not None else rollout_ids)
        if rollout_id_contains is not None:
            filters["id__contains"] = rollout_id_contains
        store = self.store

        def query() -> list[Rollout]:
            found = store.rollouts.query(sort=_sort(sort_by, ROLLOUT_SORT, "created_at"), order=sort_order,
                                         limit=_page(limit), offset=offset, match=_match(filter_logic), **filters)
            latest = {attempt.rollout_id: attempt for attempt in store.attempts.query(
                rollout_id=[rollout.id for rollout in found], sort="sequence", limit=None)} if found else {}
            return [to_agl_rollout(rollout, latest.get(rollout.id)) for rollout in found]

        return await self._run(query)

    async def get_rollout_by_id(self, rollout_id: str) -> Rollout | None:
        store = self.store

        def get() -> Rollout | None:
            found = store.rollouts.query(id=rollout_id, limit=1)
            return to_agl_rollout(found[0], store.attempts.latest(rollout_id)) if found else None

        return await self._run(get)

    async def update_rollout(self, rollout_id: str, input: Any = UNSET, mode: Any = UNSET, resources_id: Any = UNSET,
                             status: Any = UNSET, config: Any = UNSET, metadata: Any = UNSET) -> Rollout:
        changes = _changes(input=input, mode=mode, resources_id=resources_id, status=status, config=config,
                           metadata=metadata)
        if "config" in changes:
            changes["config"] = (changes["config"] or RolloutConfig()).model_dump()
        if "metadata" in changes:
            changes["metadata"] = dict(changes["metadata"] or {})
        rollout = await self._run(self.store.rollouts.update, rollout_id, **changes)
        return to_agl_rollout(rollout)

    async def wait_for_rollouts(self, *, rollout_ids: list[str], timeout: float | None = None) -> list[Rollout]:
        finished = await self._run(self.store.rollouts.wait, rollout_ids, timeout)
        return [to_agl_rollout(rollout) for rollout in finished]

    # -- attempts ---------------------------------------------------------------------------------------

    async def query_attempts(self, rollout_id: str, *, sort_by: str | None = "sequence_id",
                             sort_order: Literal["asc", "desc"] = "asc", limit: int = -1,
                             offset: int = 0) -> Sequence[Attempt]:
        store = self.store

        def query() -> list[Attempt]:
            store.rollouts.get(rollout_id)  # an unknown rollout is an error, not an empty list
            return [to_agl_attempt(attempt) for attempt in store.attempts.query(
                rollout_id=rollout_id, sort=_sort(sort_by, ATTEMPT_SORT, "sequence"), order=sort_order,
                limit=_page(limit), offset=offset)]

        return await self._run(query)

    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        attempt = await self._run(self.store.attempts.latest, rollout_id)
        return None if attempt is None else to_agl_attempt(attempt)

    async def update_attempt(self, rollout_id: str, attempt_id: str, status: Any = UNSET, worker_id: Any = UNSET,
                             last_heartbeat_time: Any = UNSET, metadata: Any = UNSET) -> Attempt:
        changes = _changes(status=status, worker_id=worker_id, metadata=metadata)
        if "metadata" in changes:
            changes["metadata"] = dict(changes["metadata"] or {})
        if not isinstance(last_heartbeat_time, Unset):
            changes["last_heartbeat_at"] = _datetime(last_heartbeat_time)
        attempt = await self._run(self.store.attempts.update, rollout_id, attempt_id, **changes)
        return to_agl_attempt(attempt)

    # -- spans ------------------------------------------------------------------------------------------

    async def add_span(self, span: Span) -> Span | None:
        stored = await self._run(self.store.spans.add, **from_agl_span(span))
        return None if stored is None else to_agl_span(stored)

    async def add_many_spans(self, spans: Sequence[Span]) -> Sequence[Span]:
        stored = await self._run(self.store.spans.add_many, [from_agl_span(span) for span in spans])
        return [to_agl_span(span) for span in stored]

    async def add_otel_span(self, rollout_id: str, attempt_id: str, readable_span: ReadableSpan,
                            sequence_id: int | None = None) -> Span | None:
        if sequence_id is None:
            sequence_id = await self.get_next_span_sequence_id(rollout_id, attempt_id)
        return await self.add_span(Span.from_opentelemetry(readable_span, rollout_id, attempt_id, sequence_id))

    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        return await self._run(self.store.spans.next_sequence_id, rollout_id, attempt_id)

    async def get_many_span_sequence_ids(self, rollout_attempt_ids: Sequence[tuple[str, str]]) -> Sequence[int]:
        return await self._run(self.store.spans.next_sequence_ids, list(rollout_attempt_ids))

    async def query_spans(self, rollout_id: str, attempt_id: str | None = None, *, trace_id: str | None = None,
                          trace_id_contains: str | None = None, span_id: str | None = None,
                          span_id_contains: str | None = None, parent_id: str | None = None,
                          parent_id_contains: str | None = None, name: str | None = None,
                          name_contains: str | None = None, filter_logic: Literal["and", "or"] = "and",
                          limit: int = -1, offset: int = 0, sort_by: str | None = "sequence_id",
                          sort_order: Literal["asc", "desc"] = "asc") -> Sequence[Span]:
        filters = {"trace_id": trace_id, "trace_id__contains": trace_id_contains, "span_id": span_id,
                   "span_id__contains": span_id_contains, "parent_id": parent_id,
                   "parent_id__contains": parent_id_contains, "name": name, "name__contains": name_contains}
        store = self.store

        def query() -> list[records.Span]:
            store.rollouts.get(rollout_id)  # an unknown rollout is an error, not an empty list
            return store.spans.query(rollout_id, attempt_id, match=_match(filter_logic),
                                     sort=_sort(sort_by, SPAN_SORT, "sequence_id"), order=sort_order,
                                     limit=_page(limit), offset=offset,
                                     **{key: value for key, value in filters.items() if value is not None})

        return [to_agl_span(span) for span in await self._run(query)]

    # -- resources --------------------------------------------------------------------------------------

    async def add_resources(self, resources: NamedResources) -> ResourcesUpdate:
        return to_agl_resources(await self._run(self.store.resources.add, from_agl_resources(resources)))

    async def update_resources(self, resources_id: str, resources: NamedResources) -> ResourcesUpdate:
        """Replace a snapshot (its version goes up), or create it under that id: Agent Lightning's own
        stores do, and its Trainer relies on it to set up the initial resources as "default"."""
        named = from_agl_resources(resources)
        store = self.store

        def update_or_add() -> records.Resources:
            with contextlib.suppress(NotFoundError):
                return store.resources.update(resources_id, named)
            return store.resources.add(named, id=resources_id)

        return to_agl_resources(await self._run(update_or_add))

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate | None:
        found = await self._run(self.store.resources.query, id=resources_id, limit=1)
        return to_agl_resources(found[0]) if found else None

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        latest = await self._run(self.store.resources.latest)
        return None if latest is None else to_agl_resources(latest)

    async def query_resources(self, *, resources_id: str | None = None, resources_id_contains: str | None = None,
                              sort_by: str | None = None, sort_order: Literal["asc", "desc"] = "asc",
                              limit: int = -1, offset: int = 0) -> Sequence[ResourcesUpdate]:
        filters = {key: value for key, value in (("id", resources_id), ("id__contains", resources_id_contains))
                   if value is not None}
        found = await self._run(self.store.resources.query, sort=_sort(sort_by, RESOURCES_SORT, "created_at"),
                                order=sort_order, limit=_page(limit), offset=offset, **filters)
        return [to_agl_resources(resources) for resources in found]

    # -- workers ----------------------------------------------------------------------------------------

    async def query_workers(self, *, status_in: Sequence[str] | None = None, worker_id_contains: str | None = None,
                            filter_logic: Literal["and", "or"] = "and", sort_by: str | None = None,
                            sort_order: Literal["asc", "desc"] = "asc", limit: int = -1,
                            offset: int = 0) -> Sequence[Worker]:
        filters: dict[str, Any] = {}
        if status_in is not None:
            filters["status"] = list(status_in)
        if worker_id_contains is not None:
            filters["id__contains"] = worker_id_contains
        found = await self._run(self.store.workers.query, sort=_sort(sort_by, WORKER_SORT, "id"), order=sort_order,
                                limit=_page(limit), offset=offset, match=_match(filter_logic), **filters)
        return [to_agl_worker(worker) for worker in found]

    async def get_worker_by_id(self, worker_id: str) -> Worker | None:
        found = await self._run(self.store.workers.query, id=worker_id, limit=1)
        return to_agl_worker(found[0]) if found else None

    async def update_worker(self, worker_id: str, heartbeat_stats: Any = UNSET) -> Worker:
        stats = None if isinstance(heartbeat_stats, Unset) else heartbeat_stats
        return to_agl_worker(await self._run(self.store.workers.heartbeat, worker_id, stats))


__all__ = ["RolloutDBLightningStore", "to_agl_attempt", "to_agl_rollout", "to_agl_span"]
