"""Turns of GUI agents: their step type and structured actions round-trip on every backend; a GUI-shaped action
that is not a valid one is refused naming the key, and nothing is written; free-form actions are kept as given."""

import pytest

from rolloutdb.errors import InvalidInputError

GUI_TURN = {
    "kind": "action", "thinking": "the login button is at the bottom",
    "action": {"type": "tap", "x": 540, "y": 1820.5, "element": {"id": "login", "text": "Log in"}, "why": "log in"},
    "action_result": {"screen": "home"}, "duration_seconds": 1.25, "success": True, "error": None,
}


@pytest.fixture
def rollout(store):
    return store.rollouts.create(input={"app": "mail"})


def test_a_gui_turn_s_fields_round_trip(store, rollout):
    created = store.turns.create(rollout_id=rollout.id, turn_index=0, **GUI_TURN)
    failed = store.turns.create(rollout_id=rollout.id, turn_index=1, kind="error", action={"type": "back"},
                                success=False, error="the app crashed")
    stored = store.turns.get(created.id)
    assert {name: getattr(stored, name) for name in GUI_TURN} == GUI_TURN
    assert [turn.id for turn in store.turns.query(rollout_id=rollout.id, kind="error")] == [failed.id]
    assert store.turns.count(rollout_id=rollout.id, kind=["action", "error"]) == 2


FREE_FORM_AND_VALID = [
    "+2", ["tap", 3, 4], {"move": "left"},
    {"type": "function", "function": {"name": "search"}},  # a type of no GUI action, and no coordinates
    {"type": "swipe", "x": 0, "y": 100.5, "direction": "up"}, {"type": "home"},
]


def test_free_form_and_valid_actions_are_kept_as_given(store, rollout):
    for index, action in enumerate(FREE_FORM_AND_VALID):
        turn = store.turns.create(rollout_id=rollout.id, turn_index=index, action=action)
        assert store.turns.get(turn.id).action == action


BAD_ACTIONS = [
    ({"type": "tap", "x": -1, "y": 5}, "action.x"),
    ({"type": "tap", "x": 1, "y": "5"}, "action.y"),
    ({"type": "tap", "x": True, "y": 5}, "action.x"),
    ({"type": "tap", "x": 3}, "action.y"),
    ({"type": "tap"}, "action.x"),
    ({"type": "swipe", "x": 1, "y": 1, "x2": 4}, "action.y2"),
    ({"type": "scroll", "direction": "sideways"}, "action.direction"),
    ({"type": "type"}, "action.text"),
    ({"type": "teleport", "x": 1, "y": 2}, "action.type"),  # unknown, with coordinates: a GUI action's shape
]


def test_a_bad_gui_action_is_refused_naming_the_key_and_nothing_is_written(store, rollout):
    for action, field in BAD_ACTIONS:
        with pytest.raises(InvalidInputError, match=rf"^invalid turn: {field}: "):
            store.turns.create(rollout_id=rollout.id, turn_index=0, action=action)
    with pytest.raises(InvalidInputError, match="^invalid turn: kind: "):
        store.turns.create(rollout_id=rollout.id, turn_index=0, kind="daydream")
    assert store.turns.count(rollout_id=rollout.id) == 0
