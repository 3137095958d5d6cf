"""`rolloutdb tokens create | ls | revoke` on a database: the secret printed once, never listed."""

from __future__ import annotations

import json
import uuid

import rolloutdb
from cli.clitools import fails, line_containing, refused, succeeds


def test_create_ls_revoke(session_database_url):
    project = f"team-{uuid.uuid4().hex[:8]}"
    rolloutdb.create_project(project, session_database_url)
    made = succeeds(session_database_url, "tokens", "create", "--project", project, "--role", "writer",
                    "--expires", "30d", "--name", "rollout-workers")
    secret = made.splitlines()[-1]
    assert secret.startswith("rdb_") and f"of project {project!r}, valid until" in made
    with rolloutdb.connect(session_database_url, project=project) as store:
        token = store.tokens.verify(secret).token
    assert (token.role, token.name) == ("writer", "rollout-workers")

    listed = succeeds(session_database_url, "tokens", "ls", "--project", project)
    assert line_containing(listed, token.id)[:4] == [token.id, "rollout-workers", "writer", "valid"]
    as_json = succeeds(session_database_url, "tokens", "ls", "--project", project, "--json")
    assert [json.loads(line)["id"] for line in as_json.splitlines()] == [token.id]
    assert secret not in listed + as_json and "hash" not in as_json

    revoked = succeeds(session_database_url, "tokens", "revoke", token.id[:-6], "--project", project)
    assert f"Revoked token {token.id} (writer) of project {project!r}" in revoked
    assert "No tokens in project" in succeeds(session_database_url, "tokens", "ls", "--project", project)
    assert line_containing(succeeds(session_database_url, "tokens", "ls", "--project", project, "--revoked"),
                           token.id)[3] == "revoked"


def test_bad_input_is_refused_and_makes_no_token(session_database_url):
    project = f"team-{uuid.uuid4().hex[:8]}"
    assert f"no project {project!r}" in fails(session_database_url, "tokens", "create", "--project", project,
                                              "--role", "reader")
    rolloutdb.create_project(project, session_database_url)
    assert "cannot read '7x' as a duration" in fails(session_database_url, "tokens", "create", "--project", project,
                                                     "--role", "reader", "--expires", "7x")
    assert "owner" in refused(session_database_url, "tokens", "create", "--project", project, "--role", "owner")
    assert "not found" in fails(session_database_url, "tokens", "revoke", "nope", "--project", project)
    with rolloutdb.connect(session_database_url, project=project) as store:
        assert store.tokens.count() == 0
