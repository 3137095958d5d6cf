"""The remote client: ``rolloutdb.connect("http://host:8765", token=...)`` returns a ``RemoteStore``, the Store
API through a RolloutDB server (``rolloutdb serve``), with the same records and errors.

The token (or ``ROLLOUTDB_TOKEN``) is sent as ``Authorization: Bearer ...``; a server started with ``--auth``
answers a missing or bad one with AuthenticationError, and a call its role does not allow with
PermissionDeniedError. The project is the token's, or the server's own without one; ``project=`` names it
explicitly (and is refused if the token is another project's).

Requests go over pooled keep-alive connections. Those safe to repeat are retried with backoff when the
connection fails or the server answers 503 (honouring Retry-After): reads (GET, and ``rollouts.wait``), writes
that change nothing when repeated (``tasks.save``, ``validators.save``, heartbeats, ``check_health``,
``tokens.revoke``), and writes that carry ids made here — ``create`` and ``rollouts.enqueue_many`` without ids of the caller's (a row
the first try stored is read back rather than written twice) and ``spans.add_many`` of spans with sequence
ids (the store skips those it has). Other writes are sent once. A server still away when ``retry_for``
seconds have passed raises StoreUnavailableError."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from ..config import TOKEN_VAR, display_url
from ..records import utcnow
from ..store import Store, each_alone
from ._http import Transport
from ._store import REMOTE_AREAS, STORE_METHODS, Remote

T = TypeVar("T")

CONNECT_TIMEOUT = 5.0  # seconds to open a connection to the server
READ_TIMEOUT = 60.0  # seconds to wait for an answer (a wait's own time comes on top)
RETRY_FOR = 15.0  # seconds a request safe to repeat is tried again while the server is away


class RemoteStore:
    """A Store through a RolloutDB server: the areas and calls of the route table (``rolloutdb.server.ROUTES``),
    with the local Store's signatures. Use ``rolloutdb.connect("http://...")``."""

    backend = "http"

    def __init__(self, url: str, project: str | None = None, *, token: str | None = None,
                 timeout: float = READ_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT,
                 retry_for: float = RETRY_FOR, create: bool = True) -> None:
        """``project``: None for the token's (or, without authentication, the server's own); ``token``: None
        for ``ROLLOUTDB_TOKEN``'s, if it is set; ``create=False``: a project not in the server's database is
        NotFoundError, not created (as ``connect(..., create=False)`` on a database)."""
        self.url = url
        token = token if token is not None else os.environ.get(TOKEN_VAR) or None
        self._transport = Transport(url, project, token=token, timeout=timeout, connect_timeout=connect_timeout,
                                    retry_for=retry_for, create=create)
        try:  # the server is there, lets us in, and serves this project (creating it on first use)
            answer = json.loads(self._transport.request("GET", "/project", repeatable=True))
        except BaseException:
            self._transport.close()
            raise
        self.project_id: str = answer["id"]
        self.project: str = answer["name"]
        self.id_prefixes: dict[str, str] = answer["id_prefixes"]
        self._remote = Remote(self._transport, self.project, self.new_id)
        self._remote.max_artifact_bytes = answer["max_artifact_bytes"]
        for area, kind in REMOTE_AREAS.items():
            setattr(self, area, kind(self._remote))
        self._remote.areas = {area: getattr(self, area) for area in REMOTE_AREAS}

    def ping(self) -> None:
        """Ask the server whether its database answers: StoreUnavailableError when it does not."""
        self._transport.request("GET", self.url + "/readyz", repeatable=False)

    def maybe_check_health(self) -> None:
        """Nothing here: the server's store runs the health check when due, before the dequeues and in the waits
        it serves, as a local store does (``check_health`` runs one at once)."""

    def write_together(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """``Store.write_together``'s contract: here each call goes as its own requests (the server's
        transactions are its own), one after another."""
        return each_alone(calls)

    new_id = Store.new_id  # with the server's id_prefixes: ids made here have the shapes the server makes

    def now(self) -> datetime:
        """This machine's clock (UTC). The server's may differ a little: it stamps the rows it writes."""
        return utcnow()

    def close(self) -> None:
        """Close the connections to the server."""
        self._transport.close()

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteStore {display_url(self.url)} project={self.project!r}>"


def _add_store_methods() -> None:
    for name, method in STORE_METHODS.items():
        if name not in vars(RemoteStore):
            setattr(RemoteStore, name, method)


_add_store_methods()

__all__ = ["RemoteStore"]
