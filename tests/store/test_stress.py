"""Eight worker processes drain 2,000 rollouts from one database: each runs exactly once."""

import multiprocessing

import rolloutdb

WORKERS = 8
ROLLOUTS = 2000


def drain(url: str, project: str, worker: int, start, results) -> None:
    claimed, error = [], None
    try:
        with rolloutdb.connect(url, project=project) as store:
            start.wait()
            # Half the workers claim one at a time, half in batches: both paths must be exactly-once.
            batch = 1 if worker % 2 else 4
            while claims := store.rollouts.dequeue_many(batch, worker_id=f"w{worker}"):
                for claim in claims:
                    store.spans.add(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, trace_id="t",
                                    span_id=f"w{worker}", name="work")
                    store.attempts.update(claim.rollout.id, claim.attempt.id, status="succeeded")
                    claimed.append(claim.rollout.id)
    except Exception as exc:  # reported to the parent, which fails the test with it
        error = f"worker {worker}: {type(exc).__name__}: {exc}"
    results.put((claimed, error))


def test_workers_in_many_processes_run_every_rollout_exactly_once(store):
    enqueued = store.rollouts.enqueue_many([{"input": {"n": i}} for i in range(ROLLOUTS)])
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=drain, args=(store.url, store.project, n, start, results))
               for n in range(WORKERS)]
    for process in workers:
        process.start()
    start.set()
    outcomes = [results.get(timeout=600) for _ in workers]
    for process in workers:
        process.join(timeout=60)
    assert [error for _, error in outcomes if error] == []
    claimed = [rollout_id for ids, _ in outcomes for rollout_id in ids]
    assert len(claimed) == len(set(claimed)) == ROLLOUTS  # none twice, none lost
    assert set(claimed) == {r.id for r in enqueued}
    assert store.rollouts.count(status="succeeded") == ROLLOUTS
    assert store.attempts.count() == ROLLOUTS  # one attempt each: nobody claimed a rollout twice
    assert sum(1 for ids, _ in outcomes if ids) > 1  # the work really was shared
