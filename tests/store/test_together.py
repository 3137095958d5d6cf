"""store.together.WriteGroups: concurrent threads' writes run in groups, merged by batch kind, each thread getting
its own result or error; a lone write waits for nothing."""

from __future__ import annotations

import threading
import time

import pytest

from rolloutdb.store import each_alone
from rolloutdb.store.together import Batch, WriteGroups, split


class GroupsSeen:
    """A store's write_together without a database: the calls one after another, each group's size noted."""

    def __init__(self) -> None:
        self.groups: list[int] = []

    def write_together(self, calls):
        self.groups.append(len(calls))
        return each_alone(calls)


def tenfold(items: list[int]) -> list[int]:
    if -1 in items:
        raise ValueError("item -1 is refused")
    return [item * 10 for item in items]


def test_a_lone_write_runs_at_once_in_a_group_of_its_own():
    store = GroupsSeen()
    runner = WriteGroups(store)
    started = time.monotonic()
    assert runner.run(lambda: "alone") == "alone"
    assert runner.run(lambda: [3], Batch("k", [3], tenfold, split)) == [3]  # a group of one: the write alone
    with pytest.raises(ValueError, match="refused"):
        runner.run(lambda: tenfold([-1]), Batch("k", [-1], tenfold, split))
    assert store.groups == [1, 1, 1] and time.monotonic() - started < 0.5


def test_writes_that_come_while_a_group_runs_go_together_in_the_next_and_each_gets_its_own_outcome():
    store = GroupsSeen()
    runner = WriteGroups(store)
    running, release = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def first() -> str:
        running.set()
        release.wait(10)
        return "first"

    def caller(name: str, call, batch=None) -> None:
        try:
            outcomes[name] = runner.run(call, batch)
        except Exception as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=caller, args=("first", first))]
    threads[0].start()
    assert running.wait(10)
    for item in (1, 2, -1, 3):  # -1 fails the merged call: each then runs alone, and only -1's caller fails
        threads.append(threading.Thread(target=caller, args=(f"batch {item}", lambda item=item: tenfold([item]),
                                                             Batch("k", [item], tenfold, split))))
    threads.append(threading.Thread(target=caller, args=("other kind", lambda: tenfold([7]), Batch("j", [7], tenfold, split))))
    threads.append(threading.Thread(target=caller, args=("plain", lambda: 1 / 0)))
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.3)  # all of them waiting for the first group
    release.set()
    for thread in threads:
        thread.join(10)

    assert outcomes["first"] == "first"
    assert [outcomes[f"batch {item}"] for item in (1, 2, 3)] == [[10], [20], [30]]
    assert isinstance(outcomes["batch -1"], ValueError) and "refused" in str(outcomes["batch -1"])
    assert outcomes["other kind"] == [70]  # the only one of its kind: its call alone
    assert isinstance(outcomes["plain"], ZeroDivisionError)
    # The first group; the next, every write that waited: kind k merged, kind j, the plain write; then kind k's
    # merged call having failed, its four writes alone.
    assert store.groups == [1, 3, 4]
