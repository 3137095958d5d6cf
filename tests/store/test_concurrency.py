"""Several processes writing to one database at once, from its very first connect."""

import multiprocessing


import rolloutdb

WRITERS = 3
RUNS_PER_WRITER = 60


def write_runs(url: str, writer: int, start, errors) -> None:
    start.wait()
    try:
        with rolloutdb.connect(url) as store:  # the first connect migrates: writers race for it too
            for i in range(RUNS_PER_WRITER):
                run = store.runs.create(name=f"w{writer}-{i}")
                store.steps.create(run_id=run.id, number=0)
                store.runs.update(run.id, status="running")
                store.runs.update(run.id, status="completed", progress=100.0)
    except Exception as exc:  # reported to the parent: a child's traceback would be lost
        errors.put(f"writer {writer}: {type(exc).__name__}: {exc}")


def test_processes_write_to_one_database_at_once_without_lock_errors(fresh_database_url):
    context = multiprocessing.get_context("spawn")
    start, errors = context.Event(), context.Queue()
    writers = [context.Process(target=write_runs, args=(fresh_database_url, n, start, errors)) for n in range(WRITERS)]
    for process in writers:
        process.start()
    start.set()
    for process in writers:
        process.join(timeout=120)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert failures == []
    assert [process.exitcode for process in writers] == [0] * WRITERS
    with rolloutdb.connect(fresh_database_url) as store:
        assert store.runs.count(status="completed") == WRITERS * RUNS_PER_WRITER
        assert store.steps.count() == WRITERS * RUNS_PER_WRITER
        some_run = store.runs.get("w1-7")
        assert [c.new_status for c in store.history("run", some_run.id)] == ["pending", "running", "completed"]
