"""``serve``: run the REST server on uvicorn, in one process or several (each opens the store for itself)."""

from __future__ import annotations

import gc
import ipaddress
import json
import os
from collections.abc import Callable

from ..config import (DEFAULT_PROJECT, MAX_ARTIFACT_BYTES, SERVER_HOST, SERVER_MAX_BODY_BYTES, SERVER_PORT,
                      SERVER_THREADS, SERVER_TOKEN_RECHECK_SECONDS, SERVER_WRITES_IN_FLIGHT, display_url,
                      resolve_url)
from ..errors import InvalidInputError
from ..store import connect
from ._app import create_app

# How ``serve`` hands its settings to the app factory in uvicorn's worker processes.
SETTINGS_VARIABLE = "ROLLOUTDB_SERVE_SETTINGS"
# Container objects allocated (net) between two collections of the youngest generation; Python's default is 700.
GC_ALLOCATIONS = 20_000
# Stopping waits this long for requests to finish: open event streams never do by themselves.
GRACEFUL_SHUTDOWN_SECONDS = 3


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(url: str | None = None, *, project: str = DEFAULT_PROJECT, host: str = SERVER_HOST,
          port: int = SERVER_PORT, workers: int = 1, threads: int = SERVER_THREADS,
          max_body_bytes: int = SERVER_MAX_BODY_BYTES, max_writes_in_flight: int = SERVER_WRITES_IN_FLIGHT,
          auth: bool = False, allow_unauthenticated_remote: bool = False, all_projects: bool = False,
          agent_lightning: bool = False, token_recheck_seconds: float = SERVER_TOKEN_RECHECK_SECONDS,
          max_artifact_bytes: int = MAX_ARTIFACT_BYTES, access_log: bool = False,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the database at ``url`` (project ``project``) over HTTP until interrupted.

    ``auth``: every request needs an API token (``store.tokens``), and works on the token's project with what its
    role allows. Without it, anyone who reaches the port can read and change every row of the project (of every
    project, with ``all_projects``: a request names its own, see ``create_app``). So a host other than loopback is
    refused without ``auth`` unless ``allow_unauthenticated_remote``. The database is opened (and created or
    migrated) before listening, so a bad URL fails here; ``on_ready(where)`` is told where it listens.
    ``agent_lightning``, ``max_artifact_bytes``: see ``create_app``. ``access_log``: a line per request (off: at a
    worker's pace of requests, the lines took a tenth of the server's time; errors are logged either way)."""
    if auth and all_projects:
        raise InvalidInputError("--auth and --all-projects do not go together: with --auth each request works on "
                                "its API token's project, whichever it is")
    if not auth and not is_loopback(host) and not allow_unauthenticated_remote:
        raise InvalidInputError(
            f"refusing to listen on {host} without authentication: anyone who can reach {host}:{port} could read, "
            f"change and delete every row of project {project!r}. Start it with --auth (every request then needs an "
            "API token: `rolloutdb tokens create`), or listen on 127.0.0.1 (the default), or pass "
            "--allow-unauthenticated-remote if only trusted machines can reach this network")
    if not token_recheck_seconds > 0:
        raise InvalidInputError(f"token_recheck_seconds must be positive, got {token_recheck_seconds}")
    if min(workers, threads, max_body_bytes, max_writes_in_flight) < 1:
        raise InvalidInputError(f"workers, threads, max_body_bytes and max_writes_in_flight must be at least 1, got "
                                f"{workers}, {threads}, {max_body_bytes}, {max_writes_in_flight}")
    resolved = resolve_url(url)
    connect(resolved, project=project, max_artifact_bytes=max_artifact_bytes).close()  # the database and project exist and are up to date
    os.environ[SETTINGS_VARIABLE] = json.dumps({"url": resolved, "project": project, "threads": threads,
                                                "max_body_bytes": max_body_bytes,
                                                "max_writes_in_flight": max_writes_in_flight,
                                                "all_projects": all_projects, "auth": auth,
                                                "agent_lightning": agent_lightning,
                                                "token_recheck_seconds": token_recheck_seconds,
                                                "max_artifact_bytes": max_artifact_bytes})
    import uvicorn  # here: `rolloutdb --help` and the library never load it

    where = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    if on_ready is not None:
        serving = "API tokens required: each request works on its token's project" if auth else f"project {project!r}"
        on_ready(f"{where} (database {display_url(resolved)}, {serving}); API docs at {where}/docs")
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level="info", access_log=access_log, server_header=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)


def app_from_environment():
    """The app as ``serve`` described it in the environment: what uvicorn calls in each worker process."""
    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    app = create_app(settings.pop("url"), **settings)
    collect_for_serving()
    return app


def collect_for_serving() -> None:
    """Tune the cyclic garbage collector of a process that only serves. A request's objects (a batch of spans read
    from JSON, its records) die with it, by reference counting, but with the default thresholds the collector walks
    them several times while they live, and every few dozen batches the whole heap: about a tenth of the server's
    time. Collecting after ``GC_ALLOCATIONS`` allocations finds most of them gone already; what was loaded to start
    (modules, the app, its schemas) is set aside for good (``gc.freeze``), so that a full collection skips it."""
    gc.freeze()
    gc.set_threshold(GC_ALLOCATIONS, *gc.get_threshold()[1:])
