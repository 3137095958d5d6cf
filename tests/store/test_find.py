"""Finding a row by its id or by a unique start of it (the short ids listings print), on every backend."""

import uuid

import pytest

import rolloutdb
from rolloutdb.errors import AmbiguousIdError, InvalidInputError, NotFoundError


def test_a_whole_id_or_the_unique_start_of_one_finds_the_row(store):
    rollout = store.rollouts.create(id=unique("abc-1234"), input=1)
    store.rollouts.create(id=unique("abd-0000"), input=2)
    assert store.rollouts.find(rollout.id) == rollout
    assert store.rollouts.find("abc") == rollout
    assert store.rollouts.find("abc-12").id == rollout.id


def test_a_start_shared_by_several_ids_is_ambiguous_and_names_them(store):
    first, second = store.rollouts.create(id=unique("same-1"), input=1), store.rollouts.create(id=unique("same-2"), input=2)
    with pytest.raises(AmbiguousIdError) as raised:
        store.rollouts.find("same")
    assert "rollout id 'same' is ambiguous" in str(raised.value)
    assert f"{first.id}, {second.id}" in str(raised.value) and "give more of the id" in str(raised.value)
    assert isinstance(raised.value, InvalidInputError)  # bad input, like any other


def unique(id: str) -> str:
    """``id`` with a tail of its own: ids are unique across the projects of the tests' shared database."""
    return f"{id}-{uuid.uuid4().hex[:8]}"


def test_a_start_no_id_has_is_not_found(store):
    store.rollouts.create(id=unique("only"), input=1)
    with pytest.raises(NotFoundError, match="rollout 'nope' not found"):
        store.rollouts.find("nope")
    with pytest.raises(NotFoundError):
        store.rollouts.find("")


@pytest.mark.parametrize("pattern", ["%", "_", "only%", "o_ly", "\\"])
def test_like_wildcards_in_a_prefix_match_only_themselves(store, pattern):
    store.rollouts.create(id=unique("only"), input=1)  # the project's one rollout: an unescaped % would find it
    with pytest.raises(NotFoundError):
        store.rollouts.find(pattern)


def test_prefixes_stay_inside_the_project(store, session_database_url):
    mine = store.rollouts.create(id=unique("mine"), input=1)
    with rolloutdb.connect(session_database_url, project=f"{store.project}-other") as other:
        theirs = other.rollouts.create(id=unique("mine"), input=2)
        assert other.rollouts.find("mine").id == theirs.id
    assert store.rollouts.find("mine").id == mine.id


def test_a_run_is_found_by_name_then_id_then_the_start_of_its_id(store):
    run = store.runs.create(name="grpo")
    assert store.runs.find("grpo") == run
    assert store.runs.find(run.id[:30]) == run
    with pytest.raises(NotFoundError, match="no run with id or name 'gr'"):
        store.runs.find("gr")
