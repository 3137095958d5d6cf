"""A phone agent recorded whole: every screen as a screenshot, a script from its first success, replays, a summary.

    python examples/phone_agent.py [--url URL] [--episodes 6] [--replays 4] [--seed 7]

A small simulated settings app draws its screens with Pillow (real PNG images). An exploring agent taps and
types through two tasks ("turn Wi-Fi on", "rename the phone"); each turn is recorded with its thinking, its
action (a GUI action: type, coordinates, text, target element), its result, its duration and the screen it saw.
The first success of each task becomes a script (``store.scripts.record``), which is then replayed on new
episodes: each replay is a rollout that names its script, with its screenshots, and its outcome counts in the
script's success rate and mean time. The per-task summary is printed at the end.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from typing import Any

from PIL import Image, ImageDraw

import rolloutdb

WIDTH, HEIGHT = 180, 320
ROW_HEIGHT = 48
# Each screen's rows: (element id, label, where a tap on it leads); taps elsewhere change nothing.
SCREENS: dict[str, list[tuple[str, str, str]]] = {
    "home": [("app:settings", "Settings", "settings"), ("app:camera", "Camera", "home")],
    "settings": [("row:wifi", "Wi-Fi", "wifi"), ("row:about", "About phone", "about"), ("nav:back", "< Back", "home")],
    "wifi": [("toggle:wifi", "Wi-Fi switch", "wifi"), ("nav:back", "< Back", "settings")],
    "about": [("field:name", "Device name", "about"), ("nav:back", "< Back", "settings")],
    "update": [("button:later", "Later", "home"), ("button:install", "Install now", "update")],
}
UPDATE_PROMPT = 0.3  # how often the app opens on an "update available" dialog, which a replayed script may not expect
TASKS = {
    "wifi-on": ("Turn Wi-Fi on", lambda state: state["wifi"]),
    "rename-phone": ("Name the phone 'lab-7'", lambda state: state["name"] == "lab-7"),
}
MAX_TURNS = 12


def row_center(index: int) -> tuple[int, int]:
    return WIDTH // 2, 40 + index * ROW_HEIGHT + ROW_HEIGHT // 2


def render(state: dict[str, Any]) -> Image.Image:
    """The screen the app shows in ``state``: a title bar and one row per element (deterministic: the same state
    draws the same pixels)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 32), fill=(30, 90, 160))
    draw.text((8, 10), state["screen"].title(), fill="white")
    for index, (element, label, _) in enumerate(SCREENS[state["screen"]]):
        top = 40 + index * ROW_HEIGHT
        draw.rectangle((4, top, WIDTH - 4, top + ROW_HEIGHT - 6), outline=(180, 180, 180))
        text = label
        if element == "toggle:wifi":
            text += "  [on]" if state["wifi"] else "  [off]"
        if element == "field:name":
            text += f": {state['name']}"
        draw.text((12, top + 14), text, fill="black")
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def apply(state: dict[str, Any], action: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The app after ``action``, and what the action did (its result)."""
    state = dict(state)
    rows = SCREENS[state["screen"]]
    index = (action["y"] - 40) // ROW_HEIGHT if "y" in action else -1
    if not 0 <= index < len(rows):
        return state, {"changed": False, "reason": "nothing there"}
    element, _, target = rows[index]
    if action["type"] == "type" and element == "field:name":
        state["name"] = action["text"]
    elif action["type"] == "tap" and element == "toggle:wifi":
        state["wifi"] = not state["wifi"]
    elif action["type"] == "tap":
        state["screen"] = target
    else:
        return state, {"changed": False, "reason": f"{action['type']} does nothing on {element}"}
    return state, {"changed": True, "element": element}


def explore(state: dict[str, Any], task: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """The agent's next move (thinking, action): it knows the way, but one tap in four goes to a random row."""
    wanted = {"wifi-on": {"home": "app:settings", "settings": "row:wifi", "wifi": "toggle:wifi"},
              "rename-phone": {"home": "app:settings", "settings": "row:about", "about": "field:name"}}[task]
    wanted = {**wanted, "update": "button:later"}
    rows = [element for element, _, _ in SCREENS[state["screen"]]]
    target = wanted.get(state["screen"], "nav:back")
    if rng.random() < 0.25:
        target = rng.choice(rows)
    x, y = row_center(rows.index(target))
    if target == "field:name":
        return "the name field: type the new name", {"type": "type", "x": x, "y": y, "text": "lab-7",
                                                      "element": target}
    return f"on {state['screen']}: tap {target}", {"type": "tap", "x": x, "y": y, "element": target}


def new_state(rng: random.Random) -> dict[str, Any]:
    return {"screen": "update" if rng.random() < UPDATE_PROMPT else "home", "wifi": False, "name": "phone"}


def train(url: str, run: str, tasks: dict[str, rolloutdb.Task], episodes: int, rng: random.Random) -> dict[str, str]:
    """Record ``episodes`` exploring episodes per task; the id of each task's first successful rollout."""
    first_success: dict[str, str] = {}
    with rolloutdb.Recorder(url, run=run, total_steps=1) as recorder, recorder.step(0) as step:
        for key, task in tasks.items():
            group = step.group(task=task, size=episodes)
            for episode in range(episodes):
                with group.rollout(input={"goal": task.instruction, "episode": episode}) as rollout:
                    state, solved = new_state(rng), False
                    for _ in range(MAX_TURNS):
                        began = time.perf_counter()
                        thinking, action = explore(state, key, rng)
                        seen = state
                        state, result = apply(state, action)
                        solved = TASKS[key][1](state)
                        rollout.turn(observation=seen, thinking=thinking, action=action, action_result=result,
                                     kind="action", success=result["changed"],
                                     duration_seconds=time.perf_counter() - began, screenshot=png(render(seen)))
                        if solved:
                            rollout.turn(observation=state, kind="completion", done=True,
                                         screenshot=png(render(state)))
                            break
                    rollout.finish(reward=1.0 if solved else 0.0, success=solved)
                    if solved:
                        first_success.setdefault(key, rollout.id)
    return first_success


def replay(store: rolloutdb.Store, task: rolloutdb.Task, script: rolloutdb.Script, rng: random.Random) -> bool:
    """Play the script's actions on a fresh app: a rollout naming its script, a turn and a screenshot per action;
    the outcome is reported to the script."""
    began = time.perf_counter()
    claim = store.rollouts.start(input={"goal": task.instruction, "replay": script.version}, task_id=task.id,
                                 script_id=script.id)
    state = new_state(rng)
    for index, action in enumerate(script.actions):
        seen = state
        state, result = apply(state, action)
        turn = store.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=index,
                                  observation=seen, action=action, action_result=result, kind="action",
                                  success=result["changed"])
        store.artifacts.put(png(render(seen)), "image/png", role="screenshot", turn_id=turn.id)
    solved = TASKS[task.external_id][1](state)
    store.attempts.update(claim.rollout.id, status="succeeded" if solved else "failed")
    store.rollouts.update(claim.rollout.id, reward=1.0 if solved else 0.0, success=solved,
                          **({} if solved else {"error": f"ReplayFailed: ended on {state['screen']}, task not done"}))
    store.scripts.report(script.id, success=solved, seconds=time.perf_counter() - began)
    return solved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="database URL (default: ROLLOUTDB_URL, ..., ./rolloutdb.db)")
    parser.add_argument("--episodes", type=int, default=6, help="exploring episodes per task")
    parser.add_argument("--replays", type=int, default=6, help="replays of each task's script")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with rolloutdb.connect(args.url) as store:
        url = store.url
        tasks = {task.external_id: task for task in store.tasks.save(
            [{"external_id": key, "instruction": goal} for key, (goal, _) in TASKS.items()])}
    run = f"phone-agent-{time.strftime('%Y%m%d-%H%M%S')}-{rng.randrange(16 ** 4):04x}"
    first_success = train(url, run, tasks, args.episodes, rng)
    with rolloutdb.connect(url) as store:
        for key, rollout_id in first_success.items():
            script = store.scripts.record(rollout_id, name="main", device="simulated phone", model="explorer")
            print(f"script {key!r} v{script.version}: {script.total_steps} steps from rollout {rollout_id}")
            for _ in range(args.replays):
                replay(store, tasks[key], script, rng)
            best = store.scripts.best(key)
            print(f"  replayed {best.replay_count}x: success rate {best.success_rate:.0%}, "
                  f"mean {best.mean_execution_seconds * 1000:.1f} ms")
        print(f"\n{'task':<14}{'rollouts':>9}{'success':>9}{'turns':>7}  errors")
        for row in store.summary(by="task"):
            print(f"{row.key:<14}{row.rollouts:>9}{row.success_rate or 0:>9.0%}{row.turns_mean or 0:>7.1f}  "
                  f"{row.errors or ''}")


if __name__ == "__main__":
    main()
