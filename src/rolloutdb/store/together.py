"""Concurrent writes run together: a group of writes in one transaction (``Store.write_together``), those that can
be merged into one store call (a batch kind, as spans or attempt updates) merged. A merged call writes many rows in
the statements one call would, which is what pays: grouped but unmerged, the writes measured slower than alone.

``write_group`` runs one group; ``WriteGroups`` forms the groups of concurrent threads (the server's requests);
Agent Lightning's adapter forms those of an event loop's coroutines with the same ``write_group``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Batch:
    """How a write can go in one store call with the other writes of its ``kind`` in a group (writes merge only
    with writes of an equal kind): ``items`` are its part of that call's list; ``call_many(items)`` makes the call;
    ``share(result, parts)`` gives each write, by its part, what it would have got alone."""

    kind: Hashable
    items: list[Any]
    call_many: Callable[[list[Any]], Any]
    share: Callable[[Any, list[list[Any]]], list[Any]]


@dataclass
class Write:
    call: Callable[[], Any]  # the write alone
    batch: Batch | None = None


def write_group(store: Any, writes: list[Write]) -> list[Any]:
    """Run a group of writes in one transaction (``Store.write_together``), those of one batch kind as one call;
    returns each write's result or exception. A merged call that fails runs again as its writes, each alone, so
    that a bad write fails only itself, with its own error."""
    planned: list[list[Write]] = []
    batched: dict[Hashable, list[Write]] = {}
    for write in writes:
        if write.batch is None:
            planned.append([write])
        elif write.batch.kind in batched:
            batched[write.batch.kind].append(write)
        else:
            planned.append(batched.setdefault(write.batch.kind, [write]))

    def call_of(members: list[Write]) -> Callable[[], Any]:
        if len(members) == 1:
            return members[0].call
        batch = members[0].batch
        return lambda: batch.call_many([item for member in members for item in member.batch.items])

    outcomes = store.write_together([call_of(members) for members in planned])
    by_write: dict[int, Any] = {}
    for members, outcome in zip(planned, outcomes):
        if len(members) == 1:
            by_write[id(members[0])] = outcome
        elif isinstance(outcome, Exception):
            for member, alone in zip(members, store.write_together([member.call for member in members])):
                by_write[id(member)] = alone
        else:
            for member, share in zip(members, members[0].batch.share(outcome, [m.batch.items for m in members])):
                by_write[id(member)] = share
    return [by_write[id(write)] for write in writes]


def split(result: list[Any], parts: list[list[Any]]) -> list[list[Any]]:
    """``result`` (one value per item of the parts, in order) cut back into the parts: a ``Batch.share``."""
    shares, start = [], 0
    for part in parts:
        shares.append(result[start:start + len(part)])
        start += len(part)
    return shares


def shared_by(key_of_record: Callable[[Any], Hashable],
              key_of_item: Callable[[Any], Hashable]) -> Callable[[list[Any], list[list[Any]]], list[list[Any]]]:
    """A ``Batch.share`` for a call that returns the rows it stored of its items (``spans.add_many``: the new
    ones), each caller's own by key: a key sent by two callers is the first one's (the later one was a duplicate,
    as it would have been alone), and a row not stored, a duplicate, is in nobody's share."""

    def share(stored: list[Any], parts: list[list[Any]]) -> list[list[Any]]:
        unclaimed = {key_of_record(row): row for row in stored}
        return [[unclaimed.pop(key) for key in map(key_of_item, part) if key in unclaimed] for part in parts]

    return share


@dataclass(eq=False)
class _Turn:
    write: Write
    woken: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # set before ``woken``: this turn runs the next group rather than waiting in it
    outcome: Any = None


class WriteGroups:
    """The writes of concurrent threads on one store, run together: a write that comes while a group is running
    waits, and joins the next group, which the first of them runs (in its own thread) for every write waiting by
    then (``write_group``). Nothing waits when the store is idle: a lone write runs at once, in a group of one."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._waiting: list[_Turn] = []
        self._running = False

    def run(self, call: Callable[[], T], batch: Batch | None = None) -> T:
        """What ``call`` returns (or raises), run in a group; with ``batch``, merged with its kind's writes."""
        turn = _Turn(Write(call, batch))
        with self._lock:
            self._waiting.append(turn)
            if not self._running:
                self._running = turn.leads = True
        if not turn.leads:
            turn.woken.wait()  # for its outcome, or to lead the next group
        if turn.leads:
            self._lead()
        if isinstance(turn.outcome, BaseException):
            raise turn.outcome
        return turn.outcome

    def _lead(self) -> None:
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            outcomes = write_group(self._store, [turn.write for turn in group])
        except BaseException as exc:  # not a write's own error (write_together returns those): every write's
            outcomes = [exc] * len(group)
        finally:
            with self._lock:  # the next group's leader: the first that came while this one ran
                if self._waiting:
                    self._waiting[0].leads = True
                    self._waiting[0].woken.set()
                else:
                    self._running = False
        for turn, outcome in zip(group, outcomes):
            turn.outcome = outcome
            turn.woken.set()
