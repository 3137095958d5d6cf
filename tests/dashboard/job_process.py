"""A job for the dashboard to watch and pause: it moves its progress a little every 0.2 s, checkpointing each
time, until a pause (or cancel) stops it at a checkpoint; then it exits. Run as a process of its own:
python job_process.py URL PROJECT NAME"""

import sys
import time

import rolloutdb

url, project, name = sys.argv[1:4]
with rolloutdb.connect(url, project=project) as store:
    with store.jobs.start(name, stages=[("warmup", 20), ("work", 80)]) as job:
        job.stage("work")
        for i in range(1000):
            job.progress(i / 1000)
            job.checkpoint(state={"done": i}, message=f"item {i}")
            time.sleep(0.2)
print("stopped", flush=True)
