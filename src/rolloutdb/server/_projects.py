"""Which project a request works on: the server's own (``--project``), or with ``all_projects`` the one the
request names in its ``RolloutDB-Project`` header, each opened as a store of its own on first use.

Until API tokens choose the project (issue 15), naming another project is refused unless the server was started
with ``--all-projects``: whoever reaches it then reaches every project of the database."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator

from ..errors import NotFoundError
from ..store import Store, connect, project_name

PROJECT_HEADER = "RolloutDB-Project"
OPEN_PROJECTS = 4  # stores of other projects kept open (each holds database connections); the oldest unused close


class ProjectStores:
    """The stores a server answers with: its own project's, open for its whole life, and (``all_projects``)
    those of other projects, opened when a request names them and closed when they have been unused longest."""

    def __init__(self, url: str | None, project: str, *, all_projects: bool) -> None:
        self.default = connect(url, project=project)
        self.all_projects = all_projects
        self._others: OrderedDict[str, Store] = OrderedDict()
        self._in_use: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def store(self, requested: str | None) -> Iterator[Store]:
        """The store of the project ``requested`` (None: the server's own), held open while the block runs."""
        if requested is None or requested == self.default.project:
            yield self.default
            return
        if not self.all_projects:
            raise NotFoundError(
                f"this server serves project {self.default.project!r} only, not {requested!r}: connect with "
                f"project={self.default.project!r}, or start `rolloutdb serve --all-projects`")
        store = self._open(project_name(requested))
        try:
            yield store
        finally:
            self._release(requested)

    def _open(self, project: str) -> Store:
        with self._lock:
            store = self._others.get(project)
            if store is None:
                store = self._others[project] = connect(self.default.url, project=project)
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
        for store in closing:
            store.close()

    def close(self) -> None:
        with self._lock:
            stores, self._others = [*self._others.values(), self.default], OrderedDict()
        for store in stores:
            store.close()
