"""Where the database is: the first configured source wins.

1. the ``url`` argument, 2. ``ROLLOUTDB_URL``, 3. ``DATABASE_URL``,
(any of them may be a server's ``http(s)://host:port``, reached through the remote client)
4. the ``POSTGRES_HOST/PORT/DB/USER/PASSWORD`` set, 5. ``sqlite:///./rolloutdb.db``.

PostgreSQL timeouts (seconds) come from ``ROLLOUTDB_CONNECT_TIMEOUT`` and ``ROLLOUTDB_STATEMENT_TIMEOUT``
(see ``store/engine.py`` for how they meet what the URL and the server say).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from .errors import InvalidInputError

# SQLAlchemy is imported where a URL is parsed, not here: the command line reads this module to show its help.
DEFAULT_URL = "sqlite:///./rolloutdb.db"
DEFAULT_PROJECT = "default"
JOURNAL_DIRECTORY = ".rolloutdb-journal"  # where recorders keep what the database has not taken yet
POSTGRES_VARS = ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD")
ARTIFACTS_VAR = "ROLLOUTDB_ARTIFACTS"  # where artifacts' content goes unless connect(artifacts=...) says
MAX_ARTIFACT_BYTES = 50 * 2 ** 20  # the largest artifact a store takes unless connect(max_artifact_bytes=...) says
TOKEN_VAR = "ROLLOUTDB_TOKEN"  # the API token a remote client sends when none is given
CONNECT_TIMEOUT_VAR = "ROLLOUTDB_CONNECT_TIMEOUT"
STATEMENT_TIMEOUT_VAR = "ROLLOUTDB_STATEMENT_TIMEOUT"
# `rolloutdb serve`: where it listens, and the largest request body it takes, unless told otherwise.
SERVER_HOST = "127.0.0.1"
SERVER_PORT = 8765
SERVER_MAX_BODY_BYTES = 16 * 2 ** 20
# Requests using the store at once: within PostgreSQL's connection pool (store/engine.py, 32), so none waits for a
# connection (and gives up after the pool's timeout) while it holds a thread. Writes taken at once, running
# and waiting for a thread; more are answered 503.
SERVER_THREADS = 15
SERVER_WRITES_IN_FLIGHT = 2 * SERVER_THREADS
SERVER_TOKEN_RECHECK_SECONDS = 15.0  # how often an open event stream checks its API token again (as its heartbeat)


def resolve_url(url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Return the database URL to use, normalised for SQLAlchemy (psycopg 3 for PostgreSQL)."""
    env = os.environ if environ is None else environ
    chosen = url or env.get("ROLLOUTDB_URL") or env.get("DATABASE_URL") or _postgres_from_env(env)
    return normalize_url(chosen or DEFAULT_URL)


def _postgres_from_env(env: Mapping[str, str]) -> str | None:
    if not any(env.get(name) for name in POSTGRES_VARS):
        return None
    port = env.get("POSTGRES_PORT") or "5432"
    if not port.isdigit():
        raise InvalidInputError(f"POSTGRES_PORT must be a port number, got {port!r}")
    from sqlalchemy.engine import URL

    return URL.create(
        "postgresql+psycopg",
        username=env.get("POSTGRES_USER") or "postgres",
        password=env.get("POSTGRES_PASSWORD") or None,
        host=env.get("POSTGRES_HOST") or "localhost",
        port=int(port),
        database=env.get("POSTGRES_DB") or "postgres",
    ).render_as_string(hide_password=False)


def connect_timeout(environ: Mapping[str, str] | None = None) -> int | None:
    """``ROLLOUTDB_CONNECT_TIMEOUT`` in whole seconds (rounded up; 0: the driver's own), None when unset."""
    seconds = _seconds(CONNECT_TIMEOUT_VAR, environ)
    return None if seconds is None else math.ceil(seconds)


def statement_timeout(environ: Mapping[str, str] | None = None) -> float | None:
    """``ROLLOUTDB_STATEMENT_TIMEOUT`` in seconds (0: no limit), None when unset."""
    return _seconds(STATEMENT_TIMEOUT_VAR, environ)


def _seconds(name: str, environ: Mapping[str, str] | None) -> float | None:
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInputError(f"{name} must be a number of seconds, 0 or more, got {value!r}")
    return seconds


def is_server_url(url: str) -> bool:
    """Whether ``url`` names a RolloutDB server (``rolloutdb serve``), reached through the remote client."""
    return url.startswith(("http://", "https://"))


def normalize_url(url: str) -> str:
    """Accept the usual spellings (``postgres://``, ``postgresql://``) and pick the psycopg 3 driver. A server's
    URL (http, https) is kept as it is, without a trailing slash."""
    if is_server_url(url):
        return url.rstrip("/")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(
            f"not a database URL: {url!r} (expected e.g. sqlite:///./rolloutdb.db or postgresql://user@host/db)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql") and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise InvalidInputError(f"unsupported database {backend!r} in {url!r}: RolloutDB runs on sqlite or "
                                "postgresql, or is reached through a server at http(s)://host:port")
    return parsed.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL with any password masked, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
