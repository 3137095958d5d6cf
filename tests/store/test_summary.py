"""store.summary: the project's rollouts per task and per day."""

from datetime import datetime, timedelta, timezone

import pytest

from rolloutdb.errors import InvalidInputError, NotFoundError

DAY_1 = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc)
DAY_2 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def finished(store, task, when, *, seconds, success, turns, run=None, error=None, status=None, turn_errors=()):
    rollout = store.rollouts.create(
        task_id=task and task.id, run_id=run, status=status or ("succeeded" if success else "failed"),
        success=success, error=error, created_at=when, started_at=when, ended_at=when + timedelta(seconds=seconds))
    for index in range(turns):
        store.turns.create(rollout_id=rollout.id, turn_index=index, action={"type": "tap", "x": 1, "y": 2},
                           error=turn_errors[index] if index < len(turn_errors) else None)
    return rollout


@pytest.fixture
def recorded(store):
    wifi, mail = store.tasks.save([{"external_id": "wifi-on"}, {"external_id": "send-mail"}])
    run = store.runs.create(name="eval").id
    finished(store, wifi, DAY_1, seconds=10, success=True, turns=2, run=run)
    finished(store, wifi, DAY_2, seconds=20, success=False, turns=4, error="TimeoutError: after 20s", run=run,
             turn_errors=["ElementNotFound: 'Wi-Fi'", "ElementNotFound: 'Save'", "tap missed"])
    finished(store, mail, DAY_2, seconds=30, success=False, turns=3, error="TimeoutError: after 30s",
             turn_errors=["TimeoutError: the tap took 5s"])
    finished(store, mail, DAY_2, seconds=6, success=False, turns=0, error="no element 'Send'")
    finished(store, None, DAY_2, seconds=1, success=True, turns=1)
    store.rollouts.create(task_id=mail.id, created_at=DAY_2)  # queued: counted, not yet in the figures
    return store


def test_summary_per_task(recorded):
    rows = {row.key: row for row in recorded.summary(by="task")}
    assert list(rows) == ["(no task)", "send-mail", "wifi-on"]
    wifi, mail = rows["wifi-on"], rows["send-mail"]
    assert (wifi.rollouts, wifi.finished, wifi.success_rate, wifi.turns_mean) == (2, 2, 0.5, 3.0)
    assert wifi.duration_mean_seconds == pytest.approx(15.0) and wifi.errors == {"TimeoutError": 1}
    assert (mail.rollouts, mail.finished, mail.success_rate, mail.turns_mean) == (3, 2, 0.0, 1.5)
    assert mail.duration_mean_seconds == pytest.approx(18.0)
    assert mail.errors == {"TimeoutError": 1, "no element 'Send'": 1}
    # The turns' errors by type, most frequent first: a GUI agent's failed steps, of finished rollouts or not.
    assert list(wifi.turn_errors.items()) == [("ElementNotFound", 2), ("tap missed", 1)]
    assert mail.turn_errors == {"TimeoutError": 1} and rows["(no task)"].turn_errors == {}
    assert mail.task_id is not None and rows["(no task)"].task_id is None


def test_summary_per_day_narrowed_to_a_run_or_a_time(recorded):
    days = recorded.summary(by="day")
    assert [(row.key, row.rollouts, row.finished) for row in days] == [("2026-03-01", 1, 1), ("2026-03-02", 5, 4)]
    assert days[1].errors == {"TimeoutError": 2, "no element 'Send'": 1}
    assert days[1].turn_errors == {"ElementNotFound": 2, "TimeoutError": 1, "tap missed": 1}
    assert days[0].turn_errors == {}
    in_run = recorded.summary(by="day", run="eval")
    assert [(row.key, row.rollouts, row.success_rate) for row in in_run] == [("2026-03-01", 1, 1.0),
                                                                           ("2026-03-02", 1, 0.0)]
    assert [row.key for row in recorded.summary(since=DAY_2)] == ["(no task)", "send-mail", "wifi-on"]
    assert recorded.summary(since=DAY_2 + timedelta(days=1)) == []


def test_summary_refuses_bad_input(store):
    for bad in ({"by": "week"}, {"by": None}, {"since": "yesterday"}, {"since": datetime(2026, 1, 1)}):
        with pytest.raises(InvalidInputError):
            store.summary(**bad)
    with pytest.raises(NotFoundError):
        store.summary(run="no-such-run")
