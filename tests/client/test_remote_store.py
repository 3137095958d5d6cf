"""The remote store as the local one: the same methods with the same signatures for every route of the table,
found through ROLLOUTDB_URL too, and honest about the project it works on and what has no route."""

from __future__ import annotations

import inspect

import pytest

import rolloutdb
from rolloutdb.client import RemoteStore
from rolloutdb.client._store import AREAS, REMOTE_AREAS
from rolloutdb.errors import NotFoundError
from rolloutdb.server import ROUTES
from server.servers import running_server


def test_every_route_is_a_method_with_the_local_signature():
    for operation in ROUTES:
        owner, _, name = operation.call.rpartition(".")
        local, remote = (AREAS[owner], REMOTE_AREAS[owner]) if owner else (rolloutdb.Store, RemoteStore)
        assert inspect.signature(getattr(remote, name)) == inspect.signature(getattr(local, name)), operation.call
    for area, kind in AREAS.items():  # and every other public method of the area: get, count, conveniences
        for name, local in inspect.getmembers(kind, inspect.isfunction):
            if not name.startswith("_"):
                assert inspect.signature(getattr(REMOTE_AREAS[area], name)) == inspect.signature(local), name


def test_a_server_url_in_rolloutdb_url_connects_through_it_and_projects_are_kept(tmp_path, monkeypatch):
    database = f"sqlite:///{tmp_path / 'env.db'}"
    with running_server(database, tmp_path, "team-a") as server:
        monkeypatch.setenv("ROLLOUTDB_URL", server.base + "/")
        with rolloutdb.connect(project="team-a") as remote:
            assert isinstance(remote, RemoteStore) and remote.url == server.base
            remote.ping()  # the server's database answers
            run = remote.runs.create(name="from-env")
            with remote.jobs.start("a-job") as job:  # a job runs through the server too
                job.checkpoint(state={"at": 1}, message="through the server")
        with rolloutdb.connect(database, project="team-a") as local:
            assert local.runs.get("from-env") == run and local.project_id == remote.project_id
            assert (local.runs.get("a-job").status, local.runs.get("a-job").state) == ("completed", {"at": 1})
        with pytest.raises(NotFoundError, match="serves project 'team-a' only.*--all-projects"):
            rolloutdb.connect(project="team-b")
        with pytest.raises(rolloutdb.InvalidInputError, match="clock=, upgrade=, .* are for a database"):
            rolloutdb.connect(project="team-a", upgrade=True)
    with pytest.raises(rolloutdb.InvalidInputError, match="token and timeout are for a server"):
        rolloutdb.connect(database, token="t", timeout=5)
