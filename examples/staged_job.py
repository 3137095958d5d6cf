"""A long staged job that can be paused, resumed and cancelled from another terminal.

Terminal 1:   python examples/staged_job.py          (run it again after a pause: it resumes)
Terminal 2:   rolloutdb jobs watch build-index
              rolloutdb jobs pause build-index   /   rolloutdb jobs resume build-index   /   rolloutdb jobs cancel build-index

It builds a pretend text-to-SQL index: DDL statements, then documents, then question-SQL examples.
"""

from __future__ import annotations

import argparse
import time

import rolloutdb

STAGES = [("init", 10), ("ddl", 30), ("docs", 40), ("examples", 20)]
WORK = {"ddl": 60, "docs": 80, "examples": 40}  # items per stage


def build_index(store: rolloutdb.Store, name: str, item_seconds: float) -> None:
    with store.jobs.start(name, stages=STAGES, key="dataset:sales") as job:
        if job.resumed:
            print(f"resuming {name} at stage {job.stage_name} with state {job.state}")
        state = job.state or {"stage": "init", "done": 0}
        if state["stage"] == "init":
            job.stage("init")
            time.sleep(item_seconds * 5)
            state = {"stage": "ddl", "done": 0}
            job.checkpoint(state=state, message="connected to the warehouse")
        for stage in ("ddl", "docs", "examples"):
            if list(WORK).index(stage) < list(WORK).index(state["stage"]):
                continue  # finished before the pause
            job.stage(stage)
            start = state["done"] if state["stage"] == stage else 0
            for item in range(start, WORK[stage]):
                time.sleep(item_seconds)  # the real work: embed a table, a document, an example
                job.progress((item + 1) / WORK[stage])
                state = {"stage": stage, "done": item + 1}
                job.checkpoint(state=state, message=f"{stage} {item + 1}/{WORK[stage]}")
            state = {"stage": stage, "done": WORK[stage]}
    print(f"{name}: {store.jobs.get(name).run.status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="database URL (default: ROLLOUTDB_URL, ..., ./rolloutdb.db)")
    parser.add_argument("--name", default="build-index")
    parser.add_argument("--item-seconds", type=float, default=0.1, help="time each item takes")
    args = parser.parse_args()
    with rolloutdb.connect(args.url) as store:
        build_index(store, args.name, args.item_seconds)


if __name__ == "__main__":
    main()
