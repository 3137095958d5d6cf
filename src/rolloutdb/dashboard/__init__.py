"""The dashboard: pages in a browser over the REST API, served by `rolloutdb serve` at ``/``.

The pages are static files shipped in this package (``static/``: HTML, plain JavaScript modules, CSS, and the
chart library uPlot built and vendored with its license): nothing to build or install to run them. They read and
act through ``/api/v1`` only, as any client would, with the API token the person logs in with, and follow the
server's event stream for what changes. ``ui`` starts a server on this machine for them and opens a browser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
# The pages run only their own scripts and talk only to their own server: a name in the data that holds markup
# is shown as text by the pages (they never parse data as HTML), and could not run a script if it were parsed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class DashboardFiles(StaticFiles):
    """The dashboard's files, each answered with ``SECURITY_HEADERS``."""

    async def get_response(self, path: str, scope: Scope):
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_dashboard(app) -> None:
    """Serve the dashboard at ``/`` of ``app`` (after its routes: those answer first)."""
    app.mount("/", DashboardFiles(directory=STATIC_DIR, html=True), name="dashboard")


def ui(url: str | None = None, *, project: str | None = None, port: int = 0, open_browser: bool = True,
       on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the database at ``url`` (project ``project``) on 127.0.0.1:``port`` (0: a free port) and open the
    dashboard in the default browser once it answers (``open_browser``); until interrupted. ``on_ready(where)`` is
    told where the dashboard is and what it serves."""
    from ._ui import run_ui

    run_ui(url, project=project, port=port, open_browser=open_browser, on_ready=on_ready)


__all__ = ["STATIC_DIR", "SECURITY_HEADERS", "mount_dashboard", "ui"]
