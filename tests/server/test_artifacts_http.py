"""Artifacts over a real `rolloutdb serve`: content streamed up past the server's body limit but not past the
artifact limit, served back never for a browser to run, and each route to the roles it belongs to."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

import rolloutdb
from rolloutdb.errors import InvalidInputError, PermissionDeniedError, StoreUnavailableError
from server.servers import TEST_MAX_BODY_BYTES, error, running_server

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100


@pytest.mark.parametrize(("media_type", "served_as", "disposition"), [
    ("image/png", "image/png", "inline"),
    ("image/svg+xml", "image/svg+xml", "attachment"),  # an SVG may hold scripts
    ("text/html", "text/html; charset=utf-8", "attachment"),
    ("application/x-unknown", "application/x-unknown", "attachment"),
    ("text/html\r\nSet-Cookie: a=b", "application/octet-stream", "attachment"),  # stored as given, not sent so
])
def test_content_is_streamed_back_as_an_attachment_unless_an_image_and_never_sniffed(server, media_type, served_as,
                                                                                      disposition):
    data = PNG + media_type.encode()
    with rolloutdb.connect(server.base) as store:
        artifact = store.artifacts.put(data, media_type)
        assert artifact.media_type == media_type and store.artifacts.read(artifact) == data
    response = httpx.get(f"{server.base}/api/v1/artifacts/{artifact.sha256}/content")
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-type"] == served_as
    assert response.headers["content-disposition"].split(";")[0] == disposition
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert "set-cookie" not in response.headers
    error(httpx.get(f"{server.base}/api/v1/artifacts/{'0' * 64}/content"), 404, "NotFoundError")


def test_an_upload_streams_past_the_servers_body_limit(server):
    data = os.urandom(3 * TEST_MAX_BODY_BYTES + 17)
    with rolloutdb.connect(server.base) as store:
        artifact = store.artifacts.put(data, "application/octet-stream")
        with store.artifacts.open(artifact.sha256) as file:
            assert file.read() == data
    # Other routes still hold to it.
    error(httpx.post(f"{server.base}/api/v1/turns", content=b"[" + b" " * TEST_MAX_BODY_BYTES + b"]",
                     headers={"Content-Type": "application/json"}), 413, "InvalidInputError")


def test_an_artifact_over_the_servers_artifact_limit_is_refused_and_nothing_stored(tmp_path):
    limit = 100_000
    with running_server(f"sqlite:///{tmp_path / 'limit.db'}", tmp_path, None,
                        "--max-artifact-bytes", str(limit)) as limited, rolloutdb.connect(limited.base) as store:
        assert store.artifacts.put(b"x" * limit).size == limit
        too_large = b"y" * (limit + 1)
        with pytest.raises(InvalidInputError, match="over the limit of 100,000 bytes"):
            store.artifacts.put(too_large)  # refused by the client before it sends more than the limit
        # Sent anyway (not by the client), the server's store refuses it as it comes.
        message = error(httpx.post(f"{limited.base}/api/v1/artifacts", content=too_large), 422, "InvalidInputError")
        assert "over the limit of 100,000 bytes" in message
        with rolloutdb.connect(limited.url, project=limited.project) as database:
            assert [artifact.size for artifact in artifacts_of(database)] == [limit]


def test_a_blob_folder_the_server_cannot_write_is_503_not_an_internal_error(tmp_path, monkeypatch):
    (tmp_path / "taken").write_text("a file where the blob folder should be")
    monkeypatch.setenv("ROLLOUTDB_ARTIFACTS", str(tmp_path / "taken" / "blobs"))
    with running_server(f"sqlite:///{tmp_path / 'blobs.db'}", tmp_path) as server:
        answer = httpx.post(f"{server.base}/api/v1/artifacts", content=b"content")
        assert "cannot write artifacts to" in error(answer, 503, "StoreUnavailableError")
        assert answer.headers["retry-after"]
        with rolloutdb.connect(server.base) as store, pytest.raises(StoreUnavailableError, match="Not a directory"):
            store.artifacts.put(b"content")
        with rolloutdb.connect(server.url, project=server.project, artifacts="database") as database:
            assert artifacts_of(database) == []


def artifacts_of(store) -> list:
    from sqlalchemy import select

    from rolloutdb.schema import artifacts

    with store.engine.connect() as connection:
        return connection.execute(select(artifacts).where(artifacts.c.project_id == store.project_id)).all()


def test_readers_read_writers_put_and_link_admins_collect(auth_server):
    project = f"roles-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(auth_server.url, project=project) as database:
        turn = database.turns.create(rollout_id=database.rollouts.create().id, turn_index=0)
        shot = database.artifacts.put(PNG, "image/png", turn_id=turn.id, role="screenshot")
        tokens = {role: database.tokens.create(role).secret for role in ("reader", "writer", "admin")}
    connect = {role: rolloutdb.connect(auth_server.base, token=secret) for role, secret in tokens.items()}
    try:
        reader, writer, admin = connect["reader"], connect["writer"], connect["admin"]
        assert reader.artifacts.read(shot) == PNG and reader.artifacts.exists(shot.sha256)
        assert [link.role for link in reader.artifacts.links(turn_id=turn.id)] == ["screenshot"]
        assert reader.trajectory(turn.rollout_id).turns[0].artifacts[0].sha256 == shot.sha256
        for write in (lambda: reader.artifacts.put(b"new"), lambda: reader.artifacts.link(shot, turn_id=turn.id)):
            with pytest.raises(PermissionDeniedError, match="role is reader: this needs writer"):
                write()
        new = writer.artifacts.put(b"written", turn_id=turn.id, role="after")
        assert writer.artifacts.link(new, turn_id=turn.id, role="before").role == "before"
        with pytest.raises(PermissionDeniedError, match="role is writer: this needs admin"):
            writer.artifacts.gc(grace=0)
        assert admin.artifacts.gc(grace=0).artifacts == 0  # everything is linked
        with auth_server.client() as client:
            error(client.post("/artifacts", content=b"anonymous"), 401, "AuthenticationError")
            content = client.get(f"/artifacts/{shot.sha256}/content",
                                 headers={"Authorization": f"Bearer {tokens['reader']}"})
            assert (content.status_code, content.content) == (200, PNG)
    finally:
        for store in connect.values():
            store.close()
