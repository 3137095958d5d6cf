"""Data for the dashboard to show, written through the store as a training loop, workers and a GUI agent would:
a recorded training run with its baseline and evals (the demo), a GUI rollout with screenshots and spans, a
script with replays, resources, a worker holding a rollout, and a run whose name is markup."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta

from PIL import Image, ImageDraw

import rolloutdb
from rolloutdb.demo import train_demo

HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'
SCREEN = (360, 640)


@dataclass
class Seeded:
    train: str  # the demo's training run
    baseline: str
    final_eval: str
    gui_rollout: str
    screenshots: dict[str, bytes] = field(default_factory=dict)  # sha256 -> the bytes stored
    actions: list[dict] = field(default_factory=list)  # the GUI rollout's actions, turn by turn
    worker: str = "worker-a"
    held_rollout: str = ""
    script: str = ""
    resources: str = ""


def screen(color: tuple[int, int, int], label: str) -> bytes:
    image = Image.new("RGB", SCREEN, color)
    ImageDraw.Draw(image).text((20, 20), label, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def seed(store: rolloutdb.Store) -> Seeded:
    demo = train_demo(store, steps=3, seed=1)
    seeded = Seeded(train=demo.train, baseline=demo.baseline, final_eval=demo.final_eval, gui_rollout="")
    store.runs.create(name=HOSTILE_NAME, kind="job", config={"note": "<script>window.__pwned=2</script>"})
    [task] = store.tasks.save([{"external_id": "open-settings", "instruction": "open the settings",
                                "dataset": "phone", "split": "test"}])
    claim = store.rollouts.start({"goal": "open settings"}, task_id=task.id, worker_id="gui-worker")
    rollout, attempt = claim.rollout, claim.attempt
    seeded.gui_rollout = rollout.id
    seeded.actions = [{"type": "tap", "x": 120, "y": 500, "element": "Settings"},
                      {"type": "swipe", "x": 180, "y": 560, "x2": 180, "y2": 160},
                      {"type": "done"}]
    shots = [{"screenshot": screen((200, 220, 255), "home")},
             {"before": screen((220, 255, 220), "settings"), "after": screen((255, 240, 200), "scrolled")},
             {"screenshot": screen((240, 240, 240), "done")}]
    for index, (action, images) in enumerate(zip(seeded.actions, shots)):
        turn = store.turns.create(rollout_id=rollout.id, attempt_id=attempt.id, turn_index=index, kind="action",
                                  thinking=f"step {index}: <b>think</b>", action=action,
                                  action_result={"screen": f"screen-{index}"}, duration_seconds=0.5 + index,
                                  reward=1.0 if index == 2 else 0.0, done=index == 2, success=True)
        for role, content in images.items():
            stored = store.artifacts.put(content, "image/png", role=role, turn_id=turn.id)
            seeded.screenshots[stored.sha256] = content
    start = rollout.started_at or store.now()
    store.spans.add_many([
        {"rollout_id": rollout.id, "attempt_id": attempt.id, "trace_id": "t1", "span_id": "root", "name": "episode",
         "start_time": start, "end_time": start + timedelta(seconds=3)},
        {"rollout_id": rollout.id, "attempt_id": attempt.id, "trace_id": "t1", "span_id": "llm-1", "parent_id": "root",
         "name": "llm.call", "start_time": start + timedelta(seconds=0.1), "end_time": start + timedelta(seconds=1.1)},
        {"rollout_id": rollout.id, "attempt_id": attempt.id, "trace_id": "t1", "span_id": "tool-1",
         "parent_id": "root", "name": "tool.tap", "start_time": start + timedelta(seconds=1.2),
         "end_time": start + timedelta(seconds=1.5)},
    ])
    store.attempts.update(rollout.id, attempt.id, status="succeeded")
    store.rollouts.update(rollout.id, reward=1.0, success=True, validation={"passed": True, "checked": "settings"})
    script = store.scripts.record(rollout.id, name="open-settings-script")
    store.scripts.report(script.id, success=True, seconds=2.0)
    store.scripts.report(script.id, success=False, seconds=4.0)
    seeded.script = script.id
    seeded.resources = store.resources.add({"prompt": "you are a phone agent", "model": "tiny"}).id
    queued = store.rollouts.enqueue({"goal": "waiting"}, task_id=task.id)
    store.rollouts.enqueue({"goal": "still waiting"}, task_id=task.id)
    store.workers.heartbeat(seeded.worker, stats={"gpu": 0})
    claim = store.rollouts.dequeue(worker_id=seeded.worker)
    assert claim is not None and claim.rollout.id == queued.id
    seeded.held_rollout = queued.id
    return seeded
