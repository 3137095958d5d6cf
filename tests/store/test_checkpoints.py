"""Checkpoints: numbered versions of a named policy, weights kept as a linked artifact, one active version,
activate and roll back."""

import concurrent.futures
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import rolloutdb
from conftest import BACKENDS
from rolloutdb.errors import ConflictError, InvalidInputError, NotFoundError


@pytest.fixture(params=BACKENDS)
def store(request, session_backends):
    """Checkpoints are local: a server runs the flywheel itself, and hands out the active policy (test_flywheel)."""
    with rolloutdb.connect(session_backends.database_url(request.param),
                           project=f"test-{uuid.uuid4().hex[:12]}") as store:
        yield store


def test_versions_count_up_per_name_and_the_weights_read_back(store):
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    first = store.checkpoints.save("policy:memory", b"weights-1", metrics={"dr": 0.4},
                                   window=(start, start + timedelta(days=7)))
    second = store.checkpoints.save("policy:memory", b"weights-2")
    other = store.checkpoints.save("policy:chat", b"weights-1")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert (first.window_start, first.window_end, first.metrics) == (start, start + timedelta(days=7), {"dr": 0.4})
    assert store.checkpoints.read(first) == b"weights-1" and store.checkpoints.read(second.id) == b"weights-2"
    assert first.uri == f"artifact:{first.sha256}"
    assert store.checkpoints.latest("policy:memory").id == second.id
    assert store.checkpoints.get(first.id).latest is False
    assert store.checkpoints.version("policy:memory", 1).id == first.id
    assert [c.version for c in store.checkpoints.list("policy:memory")] == [2, 1]
    assert store.checkpoints.active("policy:memory") is None  # saved, not activated


def test_weights_are_kept_from_gc_while_their_checkpoint_exists(store):
    saved = store.checkpoints.save("policy:memory", b"weights")
    assert store.artifacts.gc(grace=0).artifacts == 0
    assert store.checkpoints.read(saved) == b"weights"
    assert [link.owner_type for link in store.artifacts.links(checkpoint_id=saved.id)] == ["checkpoint"]


def test_one_version_is_active_and_rollback_returns_to_the_one_in_use_before(store):
    v1 = store.checkpoints.save("policy:memory", b"1", activate=True)
    v2 = store.checkpoints.save("policy:memory", b"2")  # rejected by its evaluation: never active
    v3 = store.checkpoints.save("policy:memory", b"3", activate=True)
    assert store.checkpoints.active("policy:memory").id == v3.id
    assert store.checkpoints.get(v1.id).active is False
    assert store.checkpoints.rollback("policy:memory").id == v1.id  # v2 was never in use
    assert [c.active for c in store.checkpoints.list("policy:memory")] == [False, False, True]
    with pytest.raises(ConflictError, match="none to roll back to"):
        store.checkpoints.rollback("policy:memory")
    assert store.checkpoints.activate(v2).active is True
    assert store.checkpoints.active("policy:memory").id == v2.id


def test_bad_input_is_refused_and_changes_nothing(store):
    with pytest.raises(InvalidInputError, match="weights .* or the uri"):
        store.checkpoints.save("policy:memory")
    with pytest.raises(InvalidInputError, match="weights are bytes"):
        store.checkpoints.save("policy:memory", "text")
    with pytest.raises(ConflictError, match="nothing to roll back"):
        store.checkpoints.rollback("policy:memory")
    with pytest.raises(NotFoundError, match="no version 1"):
        store.checkpoints.version("policy:memory", 1)
    with pytest.raises(InvalidInputError, match="version must be a whole number"):
        store.checkpoints.version("policy:memory", "1")
    assert store.checkpoints.list() == []
    elsewhere = store.checkpoints.save("policy:memory", uri="s3://models/v1.pt")
    with pytest.raises(InvalidInputError, match="s3://models/v1.pt"):
        store.checkpoints.read(elsewhere)


def test_activations_at_once_leave_exactly_one_version_active(store):
    versions = [store.checkpoints.save("policy:memory", f"w{i}".encode()) for i in range(6)]
    url = store.url

    def activate(checkpoint):
        with rolloutdb.connect(url, project=store.project) as other:
            for _ in range(5):
                try:
                    other.checkpoints.activate(checkpoint.id)
                except ConflictError:  # another activation won the race: try again, as the message says
                    continue

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(activate, versions))
    assert sum(c.active for c in store.checkpoints.list("policy:memory")) == 1
