"""Which project a request works on, and whether it may: each project is opened as a store of its own on first use.

With authentication (``rolloutdb serve --auth``) every request carries ``Authorization: Bearer <secret>``; the
token's project is the request's (a ``RolloutDB-Project`` header naming another is refused), and its role must
be at least the route's. Without it, the project is the server's own (``--project``), or with ``all_projects``
the one the request names in its ``RolloutDB-Project`` header: whoever reaches the server then reaches every
project of the database."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request

from ..errors import AuthenticationError, NotFoundError, PermissionDeniedError
from ..store import Store, connect, project_name
from ..store.together import WriteGroups
from ..store.tokens import role_allows
from ._errors import error_answer

PROJECT_HEADER = "RolloutDB-Project"
# The dashboard's token for what a browser fetches by itself, without headers (an image's content, the event
# stream): a cookie it sets, taken for reads only (GET), so that a page elsewhere cannot write with it; never in a
# URL, which the access log writes.
TOKEN_COOKIE = "rolloutdb_token"
READ_METHODS = frozenset({"GET", "HEAD"})
# "false": a project the request names that is not in the database is not found (404) rather than created (the
# remote client's connect(..., create=False)).
CREATE_HEADER = "RolloutDB-Create-Project"
OPEN_PROJECTS = 4  # stores of other projects kept open (each holds database connections); the oldest unused close


class ProjectStores:
    """The stores a server answers with: its own project's, open for its whole life, and (``all_projects``, or
    ``auth``) those of other projects, opened when a request names them (or its token's is one) and closed when
    they have been unused longest."""

    def __init__(self, url: str | None, project: str, *, all_projects: bool, auth: bool,
                 store_options: dict[str, Any]) -> None:
        self._store_options = store_options  # connect()'s, for every project's store
        self.default = connect(url, project=project, **store_options)
        self.all_projects = all_projects
        self.auth = auth
        self._others: OrderedDict[str, Store] = OrderedDict()
        self._in_use: dict[str, int] = {}
        self._lock = threading.Lock()
        self._writes: dict[Store, WriteGroups] = {}

    @contextlib.contextmanager
    def store(self, request: Request, role: str) -> Iterator[Store]:
        """The store of the project ``request`` works on, held open while the block runs; with authentication,
        once its token is found valid and of ``role`` at least. The token is read from the database on every
        request, in the request's own thread: revoking one takes effect at once."""
        requested = self._project(request, role)
        if requested is None or requested == self.default.project:
            yield self.default
            return
        store = self._open(project_name(requested), create=request.headers.get(CREATE_HEADER) != "false")
        try:
            yield store
        finally:
            self._release(requested)

    def writes(self, store: Store) -> WriteGroups:
        """The groups the concurrent writes on ``store`` run in: one runner per store, dropped when it closes."""
        with self._lock:
            groups = self._writes.get(store)
            if groups is None:
                groups = self._writes[store] = WriteGroups(store)
            return groups

    def check(self, request: Request, role: str) -> None:
        """AuthenticationError or PermissionDeniedError if ``request`` may no longer do what needs ``role`` (its
        token revoked or expired since): what an open event stream asks now and then."""
        self._project(request, role)

    def _project(self, request: Request, role: str) -> str | None:
        """The project ``request`` may work on (None: the server's own), with a role of ``role`` at least."""
        requested = request.headers.get(PROJECT_HEADER)
        if self.auth:
            grant = self.default.tokens.verify(request_secret(request))
            if requested is not None and requested != grant.project:
                raise PermissionDeniedError(f"this API token is for project {grant.project!r}, not {requested!r}")
            if not role_allows(grant.token.role, role):
                raise PermissionDeniedError(f"this API token's role is {grant.token.role}: this needs {role} or "
                                            "above")
            requested = grant.project
        elif requested is not None and requested != self.default.project and not self.all_projects:
            raise NotFoundError(
                f"this server serves project {self.default.project!r} only, not {requested!r}: connect with "
                f"project={self.default.project!r}, or start `rolloutdb serve --all-projects`")
        return requested

    def role(self, request: Request) -> str | None:
        """The role of the API token ``request`` carries (None without authentication: anyone may do anything)."""
        return self.default.tokens.verify(request_secret(request)).token.role if self.auth else None

    def _open(self, project: str, *, create: bool) -> Store:
        with self._lock:
            store = self._others.get(project)
            if store is None:
                store = self._others[project] = connect(self.default.url, project=project, create=create,
                                                        **self._store_options)
            self._others.move_to_end(project)
            self._in_use[project] = self._in_use.get(project, 0) + 1
            return store

    def _release(self, project: str) -> None:
        closing = []
        with self._lock:
            self._in_use[project] -= 1
            for name in list(self._others)[:-OPEN_PROJECTS]:
                if not self._in_use.get(name):
                    closing.append(self._others.pop(name))
                    self._in_use.pop(name, None)
                    self._writes.pop(closing[-1], None)
        for store in closing:
            store.close()

    def close(self) -> None:
        with self._lock:
            stores, self._others = [*self._others.values(), self.default], OrderedDict()
            self._writes.clear()
        for store in stores:
            store.close()


def bearer_secret(authorization: str | None) -> str:
    """The token an ``Authorization: Bearer <token>`` header carries; AuthenticationError without one."""
    scheme, _, secret = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError(
            "this server requires an API token: send `Authorization: Bearer <token>` (connect(url, token=...), "
            "ROLLOUTDB_TOKEN or --token); a project's admin makes one with `rolloutdb tokens create`")
    return secret.strip()


def request_secret(request: Request) -> str:
    """The token a request carries: its ``Authorization: Bearer`` header or, on a read without one, the
    dashboard's cookie (``TOKEN_COOKIE``); AuthenticationError without either."""
    header = request.headers.get("Authorization")
    if header is None and request.method in READ_METHODS and request.cookies.get(TOKEN_COOKIE):
        return request.cookies[TOKEN_COOKIE].strip()
    return bearer_secret(header)


class Authentication:
    """With authentication, a request below ``prefix`` without a token (``request_secret``) is answered 401 before its body is
    read. The token itself is checked with the request's store (``ProjectStores.store``), in the thread that
    makes its store call: one thread hop per request, not two."""

    def __init__(self, app, stores: ProjectStores, prefix: str) -> None:
        self.app = app
        self.stores = stores
        self.prefix = prefix

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.stores.auth and scope["path"].startswith(self.prefix):
            try:
                request_secret(Request(scope))
            except AuthenticationError as exc:
                return await error_answer(exc)(scope, receive, send)
        await self.app(scope, receive, send)
