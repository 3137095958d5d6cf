"""The Recorder through a real `rolloutdb serve --auth`: it records into its API token's project unless told
another, takes the token as ``token=`` or ``ROLLOUTDB_TOKEN``, and is refused at once a project not the token's."""

from __future__ import annotations

import uuid

import pytest

import rolloutdb
from rolloutdb.config import TOKEN_VAR
from rolloutdb.errors import InvalidInputError, PermissionDeniedError
from server.servers import Server


def writer_token(server: Server) -> tuple[str, str]:
    """A new project of the server's database and a writer's token of it."""
    project = f"rec-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(server.url, project=project) as store:
        return project, store.tokens.create("writer").secret


def record_two_steps(recorder: rolloutdb.Recorder) -> None:
    for number in range(2):
        with recorder.step(number) as step:
            step.log(loss=1.0 / (number + 1))
    recorder.finish()


def steps_of(server: Server, project: str, run: str) -> list[int]:
    with rolloutdb.connect(server.url, project=project, create=False) as store:
        return [step.number for step in store.steps.query(run_id=store.runs.get(run).id)]


def test_a_recorder_without_a_project_records_into_its_tokens(auth_server, tmp_path):
    project, secret = writer_token(auth_server)
    with rolloutdb.Recorder(auth_server.base, run="train", token=secret, journal_dir=tmp_path) as recorder:
        assert recorder.project == project
        record_two_steps(recorder)
    assert steps_of(auth_server, project, "train") == [0, 1]


def test_the_token_may_come_from_the_environment(auth_server, tmp_path, monkeypatch):
    project, secret = writer_token(auth_server)
    monkeypatch.setenv(TOKEN_VAR, secret)
    with rolloutdb.Recorder(auth_server.base, run="train", journal_dir=tmp_path) as recorder:
        record_two_steps(recorder)
    assert steps_of(auth_server, project, "train") == [0, 1]


def test_a_project_not_the_tokens_is_refused_at_once(auth_server, tmp_path):
    _, secret = writer_token(auth_server)
    with pytest.raises(PermissionDeniedError, match="not 'someone-else'"):
        rolloutdb.Recorder(auth_server.base, run="train", token=secret, project="someone-else", journal_dir=tmp_path)


def test_a_token_is_refused_for_a_database(auth_server, tmp_path):
    with pytest.raises(InvalidInputError, match="token= is for a server"):
        rolloutdb.Recorder(auth_server.url, run="train", token="rdb_x", journal_dir=tmp_path)


def test_screenshots_are_refused_at_the_call_through_a_server_and_the_turn_is_not_recorded(auth_server, tmp_path):
    project, secret = writer_token(auth_server)
    with rolloutdb.Recorder(auth_server.base, run="train", token=secret, journal_dir=tmp_path) as recorder:
        with recorder.step(0) as step, step.group(task="t").rollout() as rollout:
            with pytest.raises(InvalidInputError, match="through a server yet"):
                rollout.turn(action={"type": "back"}, screenshot=b"\x89PNG")
            rollout.turn(action={"type": "back"})
    with rolloutdb.connect(auth_server.url, project=project, create=False) as store:
        assert [turn.turn_index for turn in store.turns.query()] == [0]
