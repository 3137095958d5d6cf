"""Rewards over time: per UTC day or hour and action, the decisions taken, those evaluated and their mean reward
(what the dashboard's Flywheel page charts); on every backend and through a server."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from rolloutdb.errors import InvalidInputError, NotDeclaredError

DAY = timedelta(days=1)


def expected(decisions, form: str) -> list[tuple[str, str, int, int, float | None]]:
    """The periods computed from the decisions as the store returns them, one by one."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for decision in decisions:
        groups[(decision.created_at.astimezone(timezone.utc).strftime(form), decision.action)].append(decision)
    rows = []
    for (period, action), members in sorted(groups.items()):
        rewards = [d.reward for d in members if d.reward is not None]
        rows.append((period, action, len(members), len(rewards), rounded(sum(rewards) / len(rewards)) if rewards else None))
    return rows


def rounded(mean: float) -> float:
    return round(mean, 9)  # the database's average and Python's sum may differ in the last bits


def shown(periods) -> list[tuple[str, str, int, int, float | None]]:
    return [(p.period, p.action, p.decisions, p.evaluated, None if p.reward_mean is None else rounded(p.reward_mean))
            for p in periods]


def test_rewards_over_time_per_day_and_hour_and_action(store):
    start = (datetime.now(timezone.utc) - 20 * DAY).replace(hour=9, minute=0, second=0, microsecond=0)
    taken = [(start, "insert", "m1"), (start + timedelta(minutes=20), "ignore", "m2"),
             (start + timedelta(hours=1), "insert", "m3"), (start + DAY, "delete", "m2"),
             (start + 2 * DAY, "insert", "m4")]
    store.decisions.log_many([{"subject_id": subject, "action": action, "state": {"length": 3}, "at": at}
                              for at, action, subject in taken])
    store.decisions.log("memory", "m5", "insert", state={"length": 1})  # now: not due, so never evaluated
    store.signals.add_many([{"subject_id": "m1", "kind": "hit", "at": start + DAY},
                            {"subject_id": "m3", "kind": "hit", "at": start + DAY}])
    store.rewards.evaluate("memory")
    decisions = store.decisions.list("memory", limit=100)
    assert len([d for d in decisions if d.reward is not None]) == 5
    by_day = store.rewards.over_time("memory")
    assert shown(by_day) == expected(decisions, "%Y-%m-%d")
    assert [p.period for p in by_day][:2] == [start.strftime("%Y-%m-%d")] * 2
    by_hour = store.rewards.over_time("memory", every="hour")
    assert shown(by_hour) == expected(decisions, "%Y-%m-%dT%H:00")
    assert by_hour[0].period == start.strftime("%Y-%m-%dT09:00")
    since = store.rewards.over_time("memory", since=start + DAY)
    assert shown(since) == expected([d for d in decisions if d.created_at >= start + DAY], "%Y-%m-%d")


def test_rewards_over_time_refuses_what_it_cannot_group_by(store):
    with pytest.raises(InvalidInputError, match="every must be one of day, hour"):
        store.rewards.over_time("memory", every="week")
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        store.rewards.over_time("memory", since=datetime(2026, 1, 1))
    with pytest.raises(NotDeclaredError):
        store.rewards.over_time("chess")
    assert store.rewards.over_time("memory") == []
