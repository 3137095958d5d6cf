"""store.tokens: API tokens of a project: made with a secret shown once, listed without it, revoked, and checked
(``verify``) across projects with expiry and revocation taking effect at once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

import rolloutdb
from rolloutdb.errors import AuthenticationError, InvalidInputError, NotFoundError
from conftest import skip_on_http

NO_VERIFY = "verify is what a server does with a request's token: it has no route of its own"


def test_create_list_get_revoke(store):
    issued = store.tokens.create("writer", name="workers", expires=timedelta(days=30))
    token = issued.token
    assert issued.secret.startswith(f"rdb_{token.id}_") and len(issued.secret) > 70
    assert (token.role, token.name, token.project_id, token.revoked_at) == ("writer", "workers", store.project_id, None)
    assert token.expires_at - token.created_at == timedelta(days=30)
    assert "token_hash" not in token.model_dump() and issued.secret not in repr(token)
    assert store.tokens.query() == [token] and store.tokens.get(token.id) == token
    assert store.tokens.count(role="writer", revoked_at=None) == 1
    revoked = store.tokens.revoke(token.id)
    assert revoked.revoked_at is not None and store.tokens.revoke(token.id) == revoked  # once is enough
    assert store.tokens.count(revoked_at=None) == 0


def test_bad_arguments_are_refused_by_name(store):
    with pytest.raises(InvalidInputError, match="role must be one of reader, writer, admin"):
        store.tokens.create("owner")
    with pytest.raises(InvalidInputError, match="expires"):
        store.tokens.create("reader", expires=timedelta(seconds=-1))
    with pytest.raises(InvalidInputError, match="expires must be after now"):
        store.tokens.create("reader", expires=datetime.now(timezone.utc) - timedelta(seconds=1))
    with pytest.raises(InvalidInputError, match="expires_at"):
        store.tokens.create("reader", expires=datetime(2100, 1, 1))  # naive: which zone?
    with pytest.raises(InvalidInputError, match="expires"):
        store.tokens.create("reader", expires="tomorrow")
    with pytest.raises(InvalidInputError, match="name"):
        store.tokens.create("reader", name="x" * 201)
    with pytest.raises(NotFoundError):
        store.tokens.revoke("no-such-token")
    assert store.tokens.count() == 0


def test_verify_grants_the_token_project_until_revoked(store):
    skip_on_http(store, NO_VERIFY)
    issued = store.tokens.create("admin")
    with rolloutdb.connect(store.url, project=f"other-{uuid.uuid4().hex[:8]}") as other:
        grant = other.tokens.verify(issued.secret)  # from any project's store: a server does not know it yet
        assert (grant.project, grant.token.id, grant.token.role) == (store.project, issued.token.id, "admin")
        assert grant.token.last_used_at is not None
        with pytest.raises(NotFoundError):
            other.tokens.revoke(issued.token.id)  # another project's token is not there to revoke
    for wrong in (issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B"), "rdb_", "rdb_x_y", "nonsense", ""):
        with pytest.raises(AuthenticationError):
            store.tokens.verify(wrong)
    store.tokens.revoke(issued.token.id)
    with pytest.raises(AuthenticationError, match="revoked"):
        store.tokens.verify(issued.secret)


def test_an_expired_token_is_refused(store):
    skip_on_http(store, NO_VERIFY)
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    with rolloutdb.connect(store.url, project=store.project, clock=lambda: past) as earlier:
        issued = earlier.tokens.create("reader", expires=timedelta(minutes=59))
        assert earlier.tokens.verify(issued.secret).project == store.project  # valid then
    with pytest.raises(AuthenticationError, match="expired"):
        store.tokens.verify(issued.secret)


def test_last_used_is_written_at_most_once_a_minute(store):
    skip_on_http(store, NO_VERIFY)
    issued = store.tokens.create("reader")
    first = store.tokens.verify(issued.secret).token.last_used_at
    assert store.tokens.verify(issued.secret).token.last_used_at == first
    assert store.tokens.get(issued.token.id).last_used_at == first
