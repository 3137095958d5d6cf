"""``GET /api/v1/events``: the change feed (``store.events``) as Server-Sent Events.

One thread per project in use follows the feed (a ``Hub``: woken by PostgreSQL's NOTIFY, or reading SQLite's
newest id every few milliseconds) and hands each new event to the subscribers' queues on the event loop; a
subscriber is an async generator, so an open stream holds no thread. A subscriber that reconnects with
``Last-Event-ID`` (or ``?after=``) first gets what it missed, read from the database up to where the hub
was when it subscribed, then the hub's events after that: nothing twice, nothing left out. A subscriber that
falls too far behind is ended, to reconnect and catch up from the database, rather than growing memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Header, Query, Request
from fastapi.responses import StreamingResponse

from ..errors import (AuthenticationError, FeedTrimmedError, InvalidInputError, PermissionDeniedError, RolloutDBError,
                      StoreUnavailableError)
from ..records import Event
from ..store import Store
from ..store.events import MAX_READ, TOPICS, Cursor
from ._projects import ProjectStores

QUEUE_TOPIC = "queue"  # the queue's counts: made by the server when rollouts change, not stored, so without an id
QUEUE_TOPICS = frozenset({"rollout", "attempt"})  # the changes that move the queue's counts
ERROR_TOPIC = "error"  # the last event of a stream that cannot go on (resync, or the token no longer valid)
QUEUE_EVERY_SECONDS = 1.0  # the queue's counts are sent at most this often
HEARTBEAT_SECONDS = 15.0  # a comment line this often keeps proxies from closing a quiet stream
SUBSCRIBER_BUFFER = 10_000  # events waiting for one subscriber; beyond, it is ended and catches up on reconnecting
MAX_SUBSCRIBERS = 1_000  # open streams per server process; more are answered 503
RETRY_SECONDS = 1.0
READER = "reader"  # the API token role a stream needs (a read): checked when it opens, then every recheck_seconds
logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Subscriber:
    topics: frozenset[str] | None
    run_id: str | None
    after: int  # the last id it has had: events up to it are not sent again
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_BUFFER))
    ended: bool = False  # its last item is queued: nothing more is

    def wants(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics

    def offer(self, item: tuple[str, Any] | None) -> None:
        if self.ended:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:  # too slow: end its stream; it resumes from the database
            self.ended = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    def end(self, error: RolloutDBError) -> None:
        """End its stream with ``error``, once it has had what is queued before."""
        self.offer((ERROR_TOPIC, error))
        self.ended = True


class Hub:
    """The feed of one project's store, followed by one thread while anyone subscribes."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop, on_idle: Callable[[Hub], None]) -> None:
        self.store = store
        self.loop = loop
        self.subscribers: set[Subscriber] = set()  # changed on the event loop only
        self.position = store.events.latest_id()  # the last id handed out; settled: nothing lands below it
        self._on_idle = on_idle
        self._stopping = threading.Event()
        self._last_queue_counts = float("-inf")
        self._queue_moved = False
        self._thread = threading.Thread(target=self._follow, name=f"rolloutdb-events-{store.project}", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        cursor = Cursor(self.position)
        while not self._stopping.is_set():
            try:
                with self.store.events.wake_ups() as wait:
                    while not self._stopping.is_set():
                        before = cursor.last
                        new = self.store.events.read(cursor)
                        trimmed = self.store.events.trimmed_between(before, new)
                        counts = self._queue_counts(new)
                        if trimmed is not None:  # before the events after the hole, which its streams never get
                            self.loop.call_soon_threadsafe(self._trimmed, trimmed)
                        if new or counts is not None:
                            self.loop.call_soon_threadsafe(self._dispatch, new, cursor.last, counts)
                        pause = self.store.events.pause(cursor)
                        wait(max(min(pause, self._queue_wait()), 0.0) if self._queue_moved else pause)
            except Exception:  # the database went away, or the listening connection broke: again, in a while
                logger.warning("following the events of project %r failed; trying again", self.store.project,
                               exc_info=True)
                self._stopping.wait(RETRY_SECONDS)

    def _queue_counts(self, new: list[Event]) -> dict[str, Any] | None:
        """The queue's counts once rollouts have moved and a subscriber wants them, at most every
        ``QUEUE_EVERY_SECONDS`` (the last move is sent when that time is up)."""
        wanted = any(subscriber.wants(QUEUE_TOPIC) for subscriber in list(self.subscribers))
        self._queue_moved = wanted and (self._queue_moved or any(event.topic in QUEUE_TOPICS for event in new))
        if not self._queue_moved or self._queue_wait() > 0:
            return None
        self._queue_moved, self._last_queue_counts = False, time.monotonic()
        return self.store.queue_summary().model_dump(mode="json")

    def _queue_wait(self) -> float:
        return self._last_queue_counts + QUEUE_EVERY_SECONDS - time.monotonic()

    def _dispatch(self, new: list[Event], position: int, counts: dict[str, Any] | None) -> None:
        self.position = max(self.position, position)
        for subscriber in self.subscribers:
            for event in new:
                if (event.id > subscriber.after and subscriber.wants(event.topic)
                        and (subscriber.run_id is None or event.run_id == subscriber.run_id)):
                    subscriber.offer((event.topic, event))
            if counts is not None and subscriber.wants(QUEUE_TOPIC):
                subscriber.offer((QUEUE_TOPIC, counts))

    def _trimmed(self, error: FeedTrimmedError) -> None:
        """A purge deleted events the hub had not read (up to ``error.trimmed_through``): the streams that had not
        had them are ended with ``error`` (to resync), rather than going on past the hole as if nothing were
        missing."""
        for subscriber in self.subscribers:
            if subscriber.after < error.trimmed_through:  # one that resumed after an id past it missed nothing
                subscriber.end(error)

    def leave(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self._stopping.set()
            self._on_idle(self)

    def stop(self) -> None:
        self._stopping.set()


class EventStreams:
    """The hubs of a server process, by project, and the count of open streams."""

    def __init__(self, stores: ProjectStores, max_subscribers: int = MAX_SUBSCRIBERS,
                 recheck_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.stores = stores
        self.max_subscribers = max_subscribers
        self.recheck_seconds = recheck_seconds  # how often an open stream's API token is checked again
        self.open = 0
        self._hubs: dict[str, Hub] = {}
        self._starting = asyncio.Lock()

    def close(self) -> None:
        for hub in self._hubs.values():
            hub.stop()

    async def stream(self, request: Request,
                     topic: Annotated[list[str] | None, Query(
                         description=f"Only these topics (repeat the parameter): {', '.join(TOPICS)}, "
                                     f"{QUEUE_TOPIC}.")] = None,
                     run: Annotated[str | None, Query(description="Only events of this run: name or id.")] = None,
                     after: Annotated[int | None, Query(
                         description="Only events after this id (as Last-Event-ID; the header wins).")] = None,
                     timeout: Annotated[float | None, Query(
                         description="End the stream after this many seconds (default: never).", gt=0)] = None,
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
        """Server-Sent Events of the project's changes as they commit, from any process: ``event:`` is the
        topic, ``data:`` the event as JSON, ``id:`` its id. A comment line comes every 15 s when nothing else
        does. Reconnect with ``Last-Event-ID`` to get what was missed, each event once."""
        if last_event_id is not None:
            if not last_event_id.isdigit():
                raise InvalidInputError(f"Last-Event-ID is an event's id (a whole number), got {last_event_id!r:.80}")
            after = int(last_event_id)
        if after is not None and after < 0:
            raise InvalidInputError(f"after is an event's id (a whole number), got {after}")
        if self.open >= self.max_subscribers:
            raise StoreUnavailableError(f"the server has {self.open} event streams open, its limit; try again later")
        topics = None if not topic else frozenset(topic)
        stored_topics = None if topics is None else sorted(topics - {QUEUE_TOPIC})

        def checked_run() -> str | None:  # the token, filters and reach checked before the stream starts: a status
            with self.stores.store(request, READER) as store:
                if after is not None:
                    store.events.query(after, limit=1)  # FeedTrimmedError (410) if purge trimmed past it
                return store.events.filters(stored_topics, run)[1]

        run_id = await anyio.to_thread.run_sync(checked_run)
        body = self._events(request, Subscriber(topics, run_id, -1), after, stored_topics, timeout)
        return StreamingResponse(body, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _subscribe(self, store: Store, subscriber: Subscriber, after: int | None) -> tuple[Hub, int]:
        """``subscriber`` added to its project's hub, from where the hub is (or from ``after`` if the hub is
        behind it); returns the hub and the id to catch up from (up to ``subscriber.after``)."""
        async with self._starting:  # one hub per project, however many streams open at once
            hub = self._hubs.get(store.project_id)
            if hub is None:
                hub = self._hubs[store.project_id] = await anyio.to_thread.run_sync(
                    Hub, store, asyncio.get_running_loop(), self._forget)
        # From here to the add, on the loop: no event is dispatched between reading the position and joining.
        start = hub.position if after is None else after
        subscriber.after = max(start, hub.position)
        hub.subscribers.add(subscriber)
        return hub, start

    def _forget(self, hub: Hub) -> None:
        if self._hubs.get(hub.store.project_id) is hub:
            del self._hubs[hub.store.project_id]

    async def _events(self, request: Request, subscriber: Subscriber, after: int | None,
                      stored_topics: list[str] | None, timeout: float | None) -> AsyncIterator[str]:
        deadline = None if timeout is None else time.monotonic() + timeout
        holding = self.stores.store(request, READER)  # the project's store stays open while the stream is
        store = await anyio.to_thread.run_sync(holding.__enter__)
        self.open += 1
        hub = None
        try:
            hub, start = await self._subscribe(store, subscriber, after)
            yield f": connected; {self.open} event streams open\n\n"
            if subscriber.wants(QUEUE_TOPIC):
                counts = await anyio.to_thread.run_sync(store.queue_summary)
                yield frame(QUEUE_TOPIC, counts.model_dump_json())
            if start < subscriber.after and stored_topics != []:
                try:
                    async for event in self._missed(store, (start, subscriber.after), stored_topics,
                                                    subscriber.run_id):
                        yield frame(event.topic, event.model_dump_json(), event.id)
                except FeedTrimmedError as exc:  # purged since the check at the start
                    yield error_frame(exc)
                    return
            sent = checked = time.monotonic()
            while True:
                now = time.monotonic()
                if self.stores.auth and now - checked >= self.recheck_seconds:
                    try:  # a token revoked or expired since the stream opened ends it
                        await anyio.to_thread.run_sync(self.stores.check, request, READER)
                    except (AuthenticationError, PermissionDeniedError) as exc:
                        yield error_frame(exc)
                        return
                    checked = now
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    return
                quiet = sent + HEARTBEAT_SECONDS - now
                waits = [quiet, *([checked + self.recheck_seconds - now] if self.stores.auth else []),
                         *([] if remaining is None else [remaining])]
                try:
                    item = await asyncio.wait_for(subscriber.queue.get(), max(min(waits), 0.001))
                except asyncio.TimeoutError:
                    if time.monotonic() - sent >= HEARTBEAT_SECONDS:  # a quiet while (the end comes sooner)
                        sent = time.monotonic()
                        yield ": heartbeat\n\n"
                    continue
                if item is None:  # it fell behind: the client reconnects and catches up
                    return
                sent = time.monotonic()
                topic, value = item
                if isinstance(value, RolloutDBError):  # a purge trimmed what it had not had: it resyncs
                    yield error_frame(value)
                    return
                if isinstance(value, Event):
                    yield frame(topic, value.model_dump_json(), value.id)
                else:
                    yield frame(topic, json.dumps(value, separators=(",", ":")))
        finally:
            self.open -= 1
            if hub is not None:
                hub.leave(subscriber)
            await anyio.to_thread.run_sync(holding.__exit__, None, None, None)

    @staticmethod
    async def _missed(store: Store, window: tuple[int, int], topics: list[str] | None,
                      run_id: str | None) -> AsyncIterator[Event]:
        """The events in (after, upto] from the database, page by page: settled, as the hub is past them."""
        after, upto = window
        while after < upto:
            page = await anyio.to_thread.run_sync(lambda: store.events.query(after, topics=topics, run=run_id,
                                                                            limit=MAX_READ))
            for event in page:
                if event.id > upto:
                    return
                yield event
            if len(page) < MAX_READ:
                return
            after = page[-1].id


def error_frame(exc: RolloutDBError) -> str:
    """The last event of a stream that cannot go on: ``event: error``, data as an error answer's body."""
    return frame(ERROR_TOPIC, json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}))


def frame(topic: str, data: str, id: int | None = None) -> str:
    """One Server-Sent Event (data is JSON: one line)."""
    return (f"id: {id}\n" if id is not None else "") + f"event: {topic}\ndata: {data}\n\n"
