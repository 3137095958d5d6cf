"""Where the database is: the first configured source wins.

1. the ``url`` argument, 2. ``ROLLOUTDB_URL``, 3. ``DATABASE_URL``,
4. the ``POSTGRES_HOST/PORT/DB/USER/PASSWORD`` set, 5. ``sqlite:///./rolloutdb.db``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import InvalidInputError

DEFAULT_URL = "sqlite:///./rolloutdb.db"
POSTGRES_VARS = ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD")


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
    return URL.create(
        "postgresql+psycopg",
        username=env.get("POSTGRES_USER") or "postgres",
        password=env.get("POSTGRES_PASSWORD") or None,
        host=env.get("POSTGRES_HOST") or "localhost",
        port=int(port),
        database=env.get("POSTGRES_DB") or "postgres",
    ).render_as_string(hide_password=False)


def normalize_url(url: str) -> str:
    """Accept the usual spellings (``postgres://``, ``postgresql://``) and pick the psycopg 3 driver."""
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
        raise InvalidInputError(f"unsupported database {backend!r} in {url!r}: RolloutDB runs on sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL with any password masked, for printing."""
    return make_url(url).render_as_string(hide_password=True)
