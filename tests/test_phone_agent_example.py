"""The phone agent example (examples/phone_agent.py): recorded with screenshots, scripted, replayed, summarised."""

import importlib.util
import io
from pathlib import Path

from PIL import Image

import rolloutdb

EXAMPLE = Path(__file__).parent.parent / "examples" / "phone_agent.py"


def load_example():
    spec = importlib.util.spec_from_file_location("phone_agent", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_stores_the_screens_it_drew_and_replays_its_scripts(fresh_database_url, capsys):
    example = load_example()
    example.main(["--url", fresh_database_url, "--episodes", "3", "--replays", "3", "--seed", "1"])
    printed = capsys.readouterr().out
    with rolloutdb.connect(fresh_database_url) as store:
        turns = store.turns.query(limit=None)
        shown = 0
        for turn in turns:
            [link] = store.artifacts.links(turn_id=turn.id)
            stored = Image.open(io.BytesIO(store.artifacts.read(link.sha256)))
            assert stored.format == "PNG" and store.artifacts.get(link.sha256).media_type == "image/png"
            # The screen the turn saw, drawn again from its observation: the stored pixels are those drawn.
            assert stored.convert("RGB").tobytes() == example.render(turn.observation).tobytes()
            shown += 1
        assert shown == len(turns) > 0
        for key in example.TASKS:
            [script] = store.scripts.list(task=key)
            assert script.active and script.replay_count == 3 and all(a["type"] in ("tap", "type")
                                                                      for a in script.actions)
            replays = store.rollouts.query(script_id=script.id, limit=None)
            assert len(replays) == 3 and sum(r.success for r in replays) == script.success_count
            assert f"script {key!r} v1" in printed
        summary = {row.key: row for row in store.summary(by="task")}
        assert {key: summary[key].rollouts for key in example.TASKS} == {key: 3 + 3 for key in example.TASKS}
