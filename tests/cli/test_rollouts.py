"""`rolloutdb rollouts`, `queue` and `purge`, on a fresh SQLite file and a fresh PostgreSQL database."""

from datetime import timedelta

import pytest

import rolloutdb
from rolloutdb.cli.output import format_time
from rolloutdb.errors import NotFoundError
from cli.clitools import RUN, connect_in_the_past, fails, in_order, line_containing, line_with, refused, succeeds


# -- the queue, rollouts and retention -------------------------------------------------------------------------

ROLLOUT_STATUSES = ["queuing", "preparing", "running", "requeuing", "succeeded", "failed", "cancelled"]


def status_rows(output: str) -> list[list[str]]:
    """The rows of `rolloutdb queue`'s table of rollouts by status, as printed."""
    return [line_with(output, f"{status} ").split() for status in ROLLOUT_STATUSES]


def test_queue_shows_rollouts_by_status_the_longest_wait_and_the_workers(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        claimed = store.rollouts.enqueue({"n": 0})
        assert store.rollouts.dequeue(worker_id="worker-1").rollout.id == claimed.id
        store.workers.heartbeat("worker-2")
    with connect_in_the_past(fresh_database_url, timedelta(hours=2)) as store:
        waiting_longest = store.rollouts.enqueue({"n": 1})
    with rolloutdb.connect(fresh_database_url) as store:
        store.rollouts.enqueue({"n": 2})

    output = succeeds(fresh_database_url, "queue")
    assert status_rows(output) == [["queuing", "2"], ["preparing", "1"], ["running", "0"], ["requeuing", "0"],
                                   ["succeeded", "0"], ["failed", "0"], ["cancelled", "0"]]
    assert output.index("queuing ") < output.index("preparing ") < output.index("cancelled ")
    assert line_with(output, "waiting").split()[:2] == ["waiting", "2"]
    oldest = line_with(output, "oldest queued")
    assert format_time(waiting_longest.queued_at) in oldest and "(2h 00m ago)" in oldest
    assert line_with(output, "attempts").split()[1:4] == ["1:", "1", "preparing"]  # of unfinished rollouts
    assert "no stale attempts" in line_with(output, "health check")
    busy = line_with(output, "worker-1").split()
    assert busy[:2] == ["worker-1", "busy"] and claimed.id.startswith(busy[2])  # its rollout, by a short id
    assert busy[-1] == "ago"  # its last dequeue, seconds ago
    heartbeat_only = line_with(output, "worker-2").split()
    assert heartbeat_only[:3] == ["worker-2", "unknown", "-"]
    assert heartbeat_only[-3:] == [heartbeat_only[-3], "ago", "-"]  # a heartbeat seconds ago; never dequeued


def test_queue_runs_the_health_check_first_so_stale_attempts_show_as_timed_out(fresh_database_url):
    with connect_in_the_past(fresh_database_url, timedelta(minutes=10)) as store:
        stale = store.rollouts.enqueue("x", config={"timeout_seconds": 60, "max_attempts": 2,
                                                    "retry_condition": ["timeout"]})
        store.rollouts.dequeue(worker_id="worker-1")

    output = succeeds(fresh_database_url, "queue")
    assert ["requeuing", "1"] in status_rows(output) and ["running", "0"] in status_rows(output)
    assert "marked 1 stale attempt timeout or unresponsive" in line_with(output, "health check")
    assert "1: 1 timeout" in line_with(output, "attempts")
    assert line_with(output, "worker-1").split()[:3] == ["worker-1", "unknown", "-"]
    with rolloutdb.connect(fresh_database_url) as store:
        assert store.rollouts.get(stale.id).status == "requeuing"
        assert store.attempts.latest(stale.id).status == "timeout"


def test_queue_of_an_empty_project_says_there_are_no_workers(fresh_database_url):
    succeeds(fresh_database_url, "init")
    output = succeeds(fresh_database_url, "queue")
    assert all(row[1] == "0" for row in status_rows(output))
    assert "oldest queued" not in output and "No workers in project 'default'." in output


def rollout_rows(output: str) -> dict[str, list[str]]:
    """The rows of `rolloutdb rollouts ls --wide` (full ids) by rollout id."""
    return {line.split()[0]: line.split() for line in output.splitlines()
            if line.strip() and len(line.split()[0]) == 36 and line.split()[0].count("-") == 4}


def test_rollouts_ls_lists_newest_first_and_filters_by_status_and_run(demo_url):
    with rolloutdb.connect(demo_url) as store:
        run = store.runs.create(name="eval-queue", kind="eval")
        queued = [store.rollouts.enqueue({"n": i}, run_id=run.id, step=0, mode="val") for i in range(3)]
        failed = store.rollouts.query(run_id=store.runs.get(RUN).id, status="failed", limit=None)

    output = succeeds(demo_url, "rollouts", "ls", "--wide")
    rows = rollout_rows(output)
    assert len(rows) == 20 and "20 of 27 rollouts shown" in output
    assert list(rows)[:3] == [rollout.id for rollout in reversed(queued)]  # newest first
    assert rows[queued[0].id][:6] == [queued[0].id, "queuing", "val", "0", "-", "eval-queue/0"]

    only_queuing = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--status", "queuing"))
    assert set(only_queuing) == {rollout.id for rollout in queued}
    only_failed = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--status", "failed", "--limit", "100"))
    assert set(only_failed) == {rollout.id for rollout in failed}
    assert all(row[1:3] == ["failed", "train"] and row[5].startswith(f"{RUN}/") for row in only_failed.values())
    either = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--status", "failed", "--status", "queuing",
                                   "--limit", "100"))
    assert set(either) == set(only_failed) | set(only_queuing)

    of_run = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--run", "eval-queue", "--asc"))
    assert list(of_run) == [rollout.id for rollout in queued]  # oldest first with --asc
    assert rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--run", run.id, "--asc")) == of_run
    of_demo = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--run", RUN, "--step", "1", "--limit", "100"))
    assert len(of_demo) == 8 and all(row[5] == f"{RUN}/1" for row in of_demo.values())
    lowest = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--run", RUN, "--sort", "reward", "--asc",
                                   "--limit", "1"))
    assert [row[4] for row in lowest.values()] == ["0"]

    assert "No rollouts in project 'default' match the filters." in succeeds(
        demo_url, "rollouts", "ls", "--mode", "test")
    assert "no run with id or name 'nope'" in fails(demo_url, "rollouts", "ls", "--run", "nope")
    assert "'done' is not one of 'queuing'" in refused(demo_url, "rollouts", "ls", "--status", "done")
    assert "'eval' is not one of 'train', 'val', 'test'" in refused(demo_url, "rollouts", "ls", "--mode", "eval")
    assert "cannot sort rollouts by 'colour'" in fails(demo_url, "rollouts", "ls", "--sort", "colour")


def test_rollouts_show_prints_the_attempts_spans_and_history_of_a_retried_rollout(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        rollout = store.rollouts.enqueue({"prompt": "2+2"}, mode="train", metadata={"source": "cli-test"},
                                         config={"max_attempts": 2, "retry_condition": ["failed"]})
        first = store.rollouts.dequeue(worker_id="worker-1").attempt
        store.spans.add_many([{"rollout_id": rollout.id, "attempt_id": first.id, "trace_id": "trace-1",
                               "span_id": f"first-{i}", "name": "first-try"} for i in range(2)])
        store.attempts.update(rollout.id, status="failed", reason="sandbox crashed")
        second = store.rollouts.dequeue(worker_id="worker-2").attempt
        store.spans.add_many([{"rollout_id": rollout.id, "attempt_id": second.id, "trace_id": "trace-2",
                               "span_id": f"span-{i}", "parent_id": "span-0" if i else None, "name": f"step-{i}"}
                              for i in range(12)])
        store.attempts.update(rollout.id, status="succeeded")
        store.rollouts.update(rollout.id, reward=0.5, success=True)

    output = succeeds(fresh_database_url, "rollouts", "show", rollout.id)
    assert line_with(output, "rollout").split() == ["rollout", rollout.id]
    assert line_with(output, "status").split() == ["status", "succeeded"]
    assert line_with(output, "attempts").split() == ["attempts", "2"]
    assert line_with(output, "reward").split() == ["reward", "0.5"]
    assert line_with(output, "input").split(maxsplit=1) == ["input", '{"prompt": "2+2"}']
    assert line_with(output, "metadata").split(maxsplit=1) == ["metadata", '{"source": "cli-test"}']
    assert '"max_attempts": 2' in line_with(output, "config")

    assert line_containing(output, "worker-1")[:3] == ["1", "failed", "worker-1"]
    assert line_containing(output, "worker-2")[:3] == ["2", "succeeded", "worker-2"]
    assert "Spans of attempt 2 (first 10 of 12)" in output
    assert line_containing(output, "step-1") == ["2", "step-1", "-", "trace-2", "span-1", "span-0"]
    assert "step-9" in output and "step-10" not in output and "first-try" not in output

    assert in_order(output, "(new) → queuing", "queuing → preparing", "preparing → running",
                    "running → requeuing", "requeuing → preparing", "preparing → running", "running → succeeded")
    assert line_containing(output, "running → requeuing")[-2:] == ["sandbox", "crashed"]
    assert "rollout 'nope' not found in project 'default'" in fails(fresh_database_url, "rollouts", "show", "nope")


def test_rollouts_show_of_a_queued_rollout_says_it_has_no_attempts(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        rollout = store.rollouts.enqueue("just text")
    output = succeeds(fresh_database_url, "rollouts", "show", rollout.id)
    assert line_with(output, "status").split() == ["status", "queuing"]
    assert line_with(output, "input").split() == ["input", '"just', 'text"']  # JSON: a string is quoted
    assert "No attempts." in output and "(new) → queuing" in output


@pytest.fixture
def purge_url(fresh_database_url) -> dict[str, str]:
    """A fresh database with two rollouts that finished two days ago, one that finished now, one running and one
    queued. Each finished rollout has one attempt, two spans and one turn. Returns the url and the ids."""
    def finish(store, name):
        claim = store.rollouts.start(name)
        store.spans.add_many([{"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "trace_id": "t",
                               "span_id": f"s{i}", "name": "n"} for i in range(2)])
        store.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=0)
        store.attempts.update(claim.rollout.id, status="succeeded")
        return claim.rollout.id

    with connect_in_the_past(fresh_database_url, timedelta(days=2)) as store:
        ids = {"oldest": finish(store, "oldest"), "old": finish(store, "old")}
    with rolloutdb.connect(fresh_database_url) as store:
        ids |= {"new": finish(store, "new"), "running": store.rollouts.start("running").rollout.id,
                "queued": store.rollouts.enqueue("queued").id}
    return {"url": fresh_database_url, **ids}


def purge_counts(output: str) -> list[list[str]]:
    return [line_with(output, f"{table} ").split() for table in ("rollouts", "attempts", "spans", "turns")]


def remaining_rollouts(url: str) -> set[str]:
    with rolloutdb.connect(url) as store:
        return {rollout.id for rollout in store.rollouts.query(limit=None)}


def test_purge_dry_run_reports_counts_and_deletes_nothing(purge_url):
    url = purge_url["url"]
    output = succeeds(url, "purge", "--keep-last", "1", "--dry-run")
    assert "Would delete" in output and "Deleted" not in output
    assert purge_counts(output) == [["rollouts", "2"], ["attempts", "2"], ["spans", "4"], ["turns", "2"]]
    # --older-than reads units and their combinations: the two old rollouts ended two days ago.
    assert purge_counts(succeeds(url, "purge", "--older-than", "1d12h", "--dry-run"))[0] == ["rollouts", "2"]
    assert purge_counts(succeeds(url, "purge", "--older-than", "2d1h", "--dry-run"))[0] == ["rollouts", "0"]
    assert purge_counts(succeeds(url, "purge", "--older-than", "0s", "--dry-run"))[0] == ["rollouts", "3"]
    assert purge_counts(succeeds(url, "purge", "--keep-last", "0", "--dry-run", "--yes"))[0] == ["rollouts", "3"]
    assert len(remaining_rollouts(url)) == 5


def test_purge_keep_last_with_yes_deletes_the_oldest_finished_rollouts_and_keeps_unfinished_ones(purge_url):
    url = purge_url["url"]
    output = succeeds(url, "purge", "--keep-last", "1", "--yes")
    assert "Deleted" in output
    assert purge_counts(output) == [["rollouts", "2"], ["attempts", "2"], ["spans", "4"], ["turns", "2"]]
    assert remaining_rollouts(url) == {purge_url["new"], purge_url["running"], purge_url["queued"]}
    with rolloutdb.connect(url) as store:
        with pytest.raises(NotFoundError):
            store.rollouts.get(purge_url["oldest"])
        assert store.history("rollout", purge_url["oldest"]) == []
        assert store.spans.count(rollout_id=purge_url["old"]) == 0 and store.turns.count() == 1
    assert purge_counts(succeeds(url, "purge", "--keep-last", "1", "--yes"))[0] == ["rollouts", "0"]


@pytest.mark.parametrize(("arguments", "message"), [
    (["--older-than", "7x"], "cannot read '7x' as a duration: give a number and a unit s, m, h or d"),
    (["--older-than", "12h1d", "--yes"], "cannot read '12h1d' as a duration"),
    (["--older-than", "1.5h", "--dry-run"], "cannot read '1.5h' as a duration"),
    (["--keep-last", "1"], "purge would delete 2 finished rollouts with 2 attempts, 4 spans and 2 turns; "
                           "nothing was deleted. Pass --yes to delete them"),
    (["--yes"], "purge needs older_than, keep_last or both"),
    (["--keep-last", "-1", "--yes"], "keep_last must be a whole number from 0"),
])
def test_purge_refuses_bad_input_and_a_missing_yes_and_changes_nothing(purge_url, arguments, message):
    assert message in fails(purge_url["url"], "purge", *arguments)
    assert len(remaining_rollouts(purge_url["url"])) == 5




def test_rollouts_show_prints_the_trajectory_the_task_by_name_and_span_attributes(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        task = store.tasks.save([{"external_id": "add-7", "instruction": "reach 7", "input": {"target": 7}}])[0]
        claim = store.rollouts.start({"target": 7}, task_id=task.id, worker_id="w")
        for index, (value, action, reward) in enumerate([(5, "+2", 0.0), (7, "stop", 1.0)]):
            store.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=index,
                               observation={"value": value}, action=action, reward=reward, done=index == 1,
                               kind="action" if index == 0 else None)
        store.spans.add(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s",
                        name="llm.call", attributes={"tokens": 512})
    output = succeeds(fresh_database_url, "rollouts", "show", claim.rollout.id[:20])  # a start of the id will do
    assert line_with(output, "rollout").split() == ["rollout", claim.rollout.id]
    assert line_with(output, "task").split(maxsplit=1) == ["task", "add-7: reach 7"]
    assert "Trajectory" in output
    assert line_with(output, "0 ").split() == ["0", "action", '{"value":', "5}", '"+2"', "0", "no", "-"]
    assert line_with(output, "1 ").split() == ["1", "-", '{"value":', "7}", '"stop"', "1", "yes", "-"]
    assert line_containing(output, "llm.call")[:4] == ["1", "llm.call", '{"tokens":', "512}"]


def test_an_ambiguous_short_id_is_a_clear_error(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        first, second = store.rollouts.create(id="twin-a", input=1), store.rollouts.create(id="twin-b", input=2)
    error = fails(fresh_database_url, "rollouts", "show", "twin")
    assert error.startswith("Error: rollout id 'twin' is ambiguous") and f"{first.id}, {second.id}" in error
    assert "rollout 'twin-c' not found" in fails(fresh_database_url, "rollouts", "show", "twin-c")
    assert line_with(succeeds(fresh_database_url, "history", "rollout", "twin-b"), "History").endswith("twin-b")


def test_queue_hears_a_worker_through_the_spans_of_its_attempts(fresh_database_url):
    with connect_in_the_past(fresh_database_url, timedelta(minutes=5)) as store:
        store.rollouts.enqueue("x")
        claim = store.rollouts.dequeue(worker_id="span-sender")
    before = line_with(succeeds(fresh_database_url, "queue"), "span-sender").split()
    assert before[:2] == ["span-sender", "busy"] and before[3] == "-"  # claimed five minutes ago, silent since
    with rolloutdb.connect(fresh_database_url) as store:
        store.spans.add(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s",
                        name="tool.call")
    after = line_with(succeeds(fresh_database_url, "queue"), "span-sender").split()
    assert after[3].endswith("s") and after[4] == "ago"  # heard of seconds ago: its span


def test_purge_says_how_much_space_it_freed_and_vacuum_gives_it_back(tmp_path):
    url = f"sqlite:///{tmp_path / 'purged.db'}"  # SQLite: the file shrinks (PostgreSQL: see the store's test)
    with connect_in_the_past(url, timedelta(days=2)) as store:
        for claim in [store.rollouts.start({"padding": "x" * 2000}) for _ in range(100)]:
            store.attempts.update(claim.rollout.id, status="succeeded")
    size = (tmp_path / "purged.db").stat().st_size
    output = succeeds(url, "purge", "--older-than", "1d", "--yes")
    assert purge_counts(output)[0] == ["rollouts", "100"]
    freed = line_with(output, "Freed")
    assert "inside the database file" in freed and "--vacuum shrinks it" in freed and not freed.startswith("Freed 0 B")
    with connect_in_the_past(url, timedelta(days=2)) as store:
        for claim in [store.rollouts.start({"padding": "x" * 2000}) for _ in range(100)]:
            store.attempts.update(claim.rollout.id, status="succeeded")
    output = succeeds(url, "purge", "--older-than", "1d", "--yes", "--vacuum")
    assert line_with(output, "Vacuumed: the database went from")
    assert (tmp_path / "purged.db").stat().st_size < size


def test_another_projects_rows_are_not_found_as_if_they_did_not_exist(demo_url):
    with rolloutdb.connect(demo_url) as store:
        theirs = store.rollouts.query(limit=1)[0].id
    rolloutdb.connect(demo_url, project="other").close()
    unknown = "01a00000-0000-7000-8000-000000000000"
    for command in (["rollouts", "show"], ["history", "rollout"], ["runs", "show"]):
        given = theirs if command[0] != "runs" else RUN
        answer = fails(demo_url, "--project", "other", *command, given).replace(given, "ID")
        assert answer == fails(demo_url, "--project", "other", *command, unknown).replace(unknown, "ID")
    assert theirs not in succeeds(demo_url, "--project", "other", "rollouts", "ls", "--wide", "--json")


def test_gc_deletes_unlinked_artifacts_older_than_the_grace_period(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        turn = store.turns.create(rollout_id=store.rollouts.create().id, turn_index=0)
        kept = store.artifacts.put(b"linked", turn_id=turn.id, role="screenshot")
        orphan = store.artifacts.put(b"orphan")
    assert "Deleted 0 artifacts (0 B) and 0 links" in succeeds(fresh_database_url, "gc")
    assert "Deleted 1 artifact (6 B) and 0 links" in succeeds(fresh_database_url, "gc", "--grace", "0s")
    with rolloutdb.connect(fresh_database_url) as store:
        assert store.artifacts.exists(kept.sha256) and not store.artifacts.exists(orphan.sha256)
    fails(fresh_database_url, "gc", "--grace", "soon")


def test_gc_from_the_command_line_never_takes_what_writers_are_linking(fresh_database_url):
    """`rolloutdb gc --grace 0s`, over and over, while two processes put screenshots linked in the put (and scratch
    content linked by nothing): every screenshot stays readable; gc takes the scratch content only."""
    import multiprocessing

    from store.test_artifacts import put_and_link

    rounds = 25
    with rolloutdb.connect(fresh_database_url, project="gc"):
        pass  # migrated and the project made before the race
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    writers = [context.Process(target=put_and_link, args=(fresh_database_url, None, rounds, True, start, results,
                                                          f"writer-{n}")) for n in range(2)]
    for writer in writers:
        writer.start()
    start.set()
    sweeps = 0
    while any(writer.is_alive() for writer in writers) or sweeps == 0:
        assert "Deleted" in succeeds(fresh_database_url, "--project", "gc", "gc", "--grace", "0s")
        sweeps += 1
    for writer in writers:
        writer.join(timeout=120)
    assert [results.get(timeout=5) for _ in writers] == ["ok", "ok"]
    succeeds(fresh_database_url, "--project", "gc", "gc", "--grace", "0s")
    with rolloutdb.connect(fresh_database_url, project="gc") as store:
        shown = set()
        for turn in store.turns.query(limit=None):
            (link,) = store.artifacts.links(turn_id=turn.id)
            shown.add(store.artifacts.read(link.sha256))
        assert shown == {f"writer-{n}screenshot {i}".encode() for n in range(2) for i in range(rounds)}
        assert sweeps > 1 and store.artifacts.gc(grace=0).artifacts == 0  # the scratch content was all taken


def test_gc_through_a_server(session_backends):
    url = session_backends.server_url("sqlite")
    project = "gc-over-http"
    with rolloutdb.connect(url, project=project) as store:
        turn = store.turns.create(rollout_id=store.rollouts.create().id, turn_index=0)
        kept = store.artifacts.put(b"linked", turn_id=turn.id, role="screenshot")
        orphan = store.artifacts.put(b"orphan")
    assert "Deleted 1 artifact (6 B)" in succeeds(url, "--project", project, "gc", "--grace", "0s")
    with rolloutdb.connect(url, project=project) as store:
        assert store.artifacts.exists(kept.sha256) and not store.artifacts.exists(orphan.sha256)
