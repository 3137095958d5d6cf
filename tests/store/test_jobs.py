"""Long jobs controlled from another process: pause at the next checkpoint, resume from the saved
stage and state, cancel, failure, one active job per key, and a killed job that stays resumable."""

import asyncio
import multiprocessing
import os
import signal
import time

import pytest
from sqlalchemy import func, select

import rolloutdb
from rolloutdb.errors import ConflictError, InvalidInputError, InvalidTransitionError
from rolloutdb.schema import run_events, status_changes, steps
from conftest import skip_on_http


STAGES = [("init", 10), ("ddl", 30), ("docs", 40), ("examples", 20)]


def run_job(url: str, project: str, items: int, fail_at: int | None = None) -> None:
    """The job's code, as its own process runs it: resumes from the saved stage and item."""
    with rolloutdb.connect(url, project=project) as store:
        with store.jobs.start("index", stages=STAGES, key="dataset-1", write_interval=0.05) as job:
            done = (job.state or {}).get("done", 0)
            if job.stage_name in (None, "init"):
                job.stage("init")
                job.checkpoint(state={"done": 0}, message="loaded the schema")
                job.stage("ddl")
            for item in range(done, items):
                if item == fail_at:
                    raise RuntimeError(f"bad table {item}")
                time.sleep(0.02)
                job.progress((item + 1) / items)
                job.checkpoint(state={"done": item + 1}, message=f"table {item}")
            job.stage("docs")
            job.checkpoint(message="docs indexed")


def start(url, project, items, fail_at=None):
    process = multiprocessing.get_context("spawn").Process(target=run_job, args=(url, project, items, fail_at))
    process.start()
    return process


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_pause_stops_the_job_at_a_checkpoint_and_resume_finishes_it(store):
    process = start(store.url, store.project, items=200)
    wait_for(lambda: store.runs.count(name="index") and (store.jobs.get("index").run.state or {}).get("done", 0) > 3)
    store.jobs.request_pause("index", reason="free the GPU")
    process.join(timeout=60)
    assert process.exitcode == 0  # pausing is a normal way out of the job
    paused = store.jobs.get("index").run
    saved = paused.state["done"]
    assert paused.status == "paused" and paused.stage == "ddl" and 3 < saved < 200
    assert paused.progress == pytest.approx(10 + 30 * saved / 200)

    store.jobs.request_resume("index")
    assert store.jobs.query(control="resume")[0].name == "index"
    second = start(store.url, store.project, items=200)
    second.join(timeout=120)
    done = store.jobs.get("index").run
    assert (done.status, done.progress, done.state["done"], done.control) == ("completed", 100.0, 200, None)
    messages = [event.message for event in store.jobs.logs("index", limit=1000)]
    # Every table logged exactly once across both processes: the resumed one went on from the saved item.
    assert sorted(m for m in messages if m.startswith("table ")) == sorted(f"table {i}" for i in range(200))
    assert messages.count("resumed") == 1
    assert [c.new_status for c in store.history("run", "index")] == ["running", "paused", "running", "completed"]


def test_progress_never_goes_back_and_each_message_is_one_log_row(store):
    with store.jobs.start("steady", stages=STAGES, write_interval=10.0) as job:  # writes coalesced to the forced ones
        job.stage("ddl")
        for fraction in (0.5, 0.2, 0.9):
            job.progress(fraction)
            job.checkpoint(message=f"at {fraction}")
        assert job.progress_percent == pytest.approx(10 + 30 * 0.9)
    events = store.jobs.logs("steady")
    assert [e.message for e in events if e.message.startswith("at ")] == ["at 0.5", "at 0.2", "at 0.9"]
    progress = [e.progress for e in events]
    assert progress == sorted(progress) and progress[-1] == 100.0


def test_cancel_ends_the_job_at_its_next_checkpoint(store):
    process = start(store.url, store.project, items=500)
    wait_for(lambda: store.runs.count(name="index") and store.jobs.get("index").run.stage == "ddl")
    store.jobs.request_cancel("index")
    process.join(timeout=60)
    run = store.jobs.get("index").run
    assert process.exitcode == 0 and run.status == "cancelled" and run.state["done"] < 500


def test_a_failing_job_records_its_error(store):
    process = start(store.url, store.project, items=10, fail_at=4)
    process.join(timeout=60)
    run = store.jobs.get("index").run
    assert process.exitcode != 0
    assert run.status == "failed" and run.error.startswith("RuntimeError: bad table 4")
    assert "run_job" in run.error  # a traceback summary says where
    assert run.state == {"done": 4}


def test_a_run_changed_to_take_an_active_jobs_concurrency_key_is_a_conflict(store):
    with store.jobs.start("first", key="dataset-1"):
        waiting = store.runs.create(name="waiting", concurrency_key="dataset-1")
        with pytest.raises(ConflictError) as raised:
            store.runs.update(waiting.id, status="running")
        assert str(raised.value) == (f"another job with concurrency key 'dataset-1' is active in project "
                                     f"{store.project!r}: only one job per key can be active")
        other = store.runs.create(name="other", status="running")
        with pytest.raises(ConflictError, match="concurrency key 'dataset-1' is active"):
            store.runs.update(other.id, concurrency_key="dataset-1")
        store.runs.create(name="pending")
        with pytest.raises(ConflictError, match="concurrency key 'dataset-1' is active"):
            store.jobs.start("pending", key="dataset-1")  # started, it would take the key
    assert (store.runs.get("waiting").status, store.runs.get("other").concurrency_key) == ("pending", None)
    assert store.runs.get("pending").status == "pending"


def test_one_active_job_per_concurrency_key(store):
    with store.jobs.start("first", key="dataset-1"):
        with pytest.raises(ConflictError, match="'first' is running with concurrency key 'dataset-1'"):
            store.jobs.start("second", key="dataset-1")
        with store.jobs.start("elsewhere", key="dataset-2"):
            pass
    assert store.runs.count(name="second") == 0
    with store.jobs.start("second", key="dataset-1"):  # the first one has ended
        pass
    assert store.jobs.get("second").run.status == "completed"


def test_a_killed_job_is_visibly_stale_and_can_be_resumed(store):
    process = start(store.url, store.project, items=10_000)
    wait_for(lambda: store.runs.count(name="index") and (store.jobs.get("index").run.state or {}).get("done", 0) > 2)
    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=30)
    time.sleep(0.3)
    assert store.jobs.get("index", stale_after=0.2).stale
    assert not store.jobs.get("index").stale  # within the default minute it still counts as alive
    with pytest.raises(ConflictError, match="already running"):
        store.jobs.start("index", stale_after=60)
    with store.jobs.start("index", stale_after=0.2) as job:  # a stale job is taken over where it stopped
        assert job.resumed and job.state["done"] > 2 and job.stage_name == "ddl"
    assert store.jobs.get("index").run.status == "completed"


@pytest.mark.parametrize(
    ("setup", "call", "message"),
    [
        (lambda s: s.jobs.start("j").__exit__(None, None, None), lambda s: s.jobs.request_pause("j"),
         "cannot pause job 'j': it is completed"),
        (lambda s: s.jobs.start("j"), lambda s: s.jobs.request_resume("j"), "cannot resume job 'j': it is running"),
        (lambda s: s.jobs.start("j"), lambda s: s.jobs.delete("j"), "job 'j' is running: cancel it first"),
        (lambda s: s.jobs.start("j").__exit__(None, None, None), lambda s: s.jobs.request_cancel("j"),
         "it has already ended"),
    ],
)
def test_control_calls_check_the_state_first(store, setup, call, message):
    setup(store)
    before = store.jobs.get("j").run
    with pytest.raises(InvalidTransitionError, match=message):
        call(store)
    assert store.jobs.get("j").run == before


def test_bad_stage_plans_and_stages_are_rejected(store):
    with pytest.raises(InvalidInputError, match="add up to 100"):
        store.jobs.start("j", stages=[("a", 50), ("b", 40)])
    with pytest.raises(InvalidInputError, match="positive share"):
        store.jobs.start("j", stages=[("a", -5), ("b", 105)])
    assert store.runs.count() == 0
    with store.jobs.start("j", stages=[("a", 50), ("b", 50)]) as job:
        with pytest.raises(InvalidInputError, match="unknown stage 'c'"):
            job.stage("c")
        with pytest.raises(InvalidInputError, match="between 0 and 1"):
            job.progress(1.5)


def rows_of_run(store, run_id):
    """How many rows of the run's status history, log and steps are stored, read from the tables."""
    with store.reading() as connection:
        return {
            "history": connection.execute(select(func.count()).select_from(status_changes).where(
                status_changes.c.entity_type == "run", status_changes.c.entity_id == run_id)).scalar_one(),
            "log": connection.execute(select(func.count()).select_from(run_events)
                                      .where(run_events.c.run_id == run_id)).scalar_one(),
            "steps": connection.execute(select(func.count()).select_from(steps)
                                        .where(steps.c.run_id == run_id)).scalar_one(),
        }


def test_delete_removes_an_ended_job_and_its_log(store):
    skip_on_http(store, "it counts rows on the database connection of a local store")
    for name in ("old", "kept"):
        with store.jobs.start(name) as job:
            job.checkpoint(message="hello")
        store.steps.create(run_id=store.jobs.get(name).run.id, number=0)
    old, kept = store.jobs.get("old").run.id, store.jobs.get("kept").run.id
    before, kept_before = rows_of_run(store, old), rows_of_run(store, kept)
    assert before["history"] >= 2 and before["log"] >= 1 and before["steps"] == 1  # there is something to delete
    store.jobs.delete("old")
    assert [run.name for run in store.runs.query()] == ["kept"]
    assert rows_of_run(store, old) == {"history": 0, "log": 0, "steps": 0}
    assert rows_of_run(store, kept) == kept_before  # another job's rows stay


def test_the_async_twin_pauses_the_same_way(store):
    async def job_code():
        async with store.jobs.start_async("async-job", stages=[("only", 100)], write_interval=0.0) as job:
            await job.stage("only")
            for i in range(1000):
                await job.checkpoint(state={"i": i})
                if i == 3:
                    await asyncio.to_thread(store.jobs.request_pause, "async-job")
        return job.state

    assert asyncio.run(job_code()) == {"i": 4}
    assert store.jobs.get("async-job").run.status == "paused"


def test_a_log_or_state_the_database_cannot_hold_is_refused_at_the_call_and_the_job_goes_on(store):
    with store.jobs.start("nan-job") as job:
        with pytest.raises(InvalidInputError, match=r"data\.loss: nan is not a JSON number"):
            job.log("step", data={"loss": float("nan")})
        with pytest.raises(InvalidInputError, match=r"state\.seen\[0\]: a string holds a NUL character"):
            job.checkpoint(state={"seen": ["a\x00"]})
        job.log("step", data={"loss": 0.5})
        job.checkpoint(state={"seen": ["a"]})
    assert store.runs.get("nan-job").status == "completed" and store.runs.get("nan-job").state == {"seen": ["a"]}
    assert [event.data for event in store.jobs.logs("nan-job") if event.message == "step"] == [{"loss": 0.5}]


@pytest.mark.parametrize("name", ["a\x00b", "\ud800"])
def test_a_job_name_the_database_cannot_hold_is_refused_and_nothing_is_written(store, name):
    # Found by the generated bad-input test: on PostgreSQL the name reached the lookup and the driver refused it.
    with pytest.raises(InvalidInputError, match="name"):
        store.jobs.start(name)
    assert store.runs.count() == 0
