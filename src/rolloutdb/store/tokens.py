"""API tokens: who may use a RolloutDB server (``rolloutdb serve --auth``), for which project, with which role.

A token's secret is ``rdb_<token id>_<43 random characters>`` (256 bits from ``secrets``). It is shown once, when
the token is made; the database keeps only its SHA-256. A secret names its token's id, so checking it is one
read by primary key and a constant-time comparison of hashes, never a search by the secret itself. Nothing is
cached: a revoked or expired token is refused by the next request."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from ..errors import AuthenticationError, InvalidInputError
from ..records import ApiToken, IssuedToken, TokenGrant
from ..schema import api_tokens, projects
from ..states import TokenRole
from .base import Area, build_record
from ._statements import Prepared

ROLES: tuple[str, ...] = tuple(TokenRole)  # each may do what the ones before it may
SECRET_PREFIX = "rdb_"
# last_used_at is written at most this often per token: a request reads its token, it does not write it.
LAST_USED_EVERY = timedelta(minutes=1)


def role_allows(role: str, needed: str) -> bool:
    """Whether a token of ``role`` may do what needs ``needed`` (reader < writer < admin)."""
    return ROLES.index(role) >= ROLES.index(needed)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Tokens(Area[ApiToken]):
    """``store.tokens``: the API tokens of the store's project: create, query, revoke; ``verify`` checks a
    secret against the tokens of every project (a server calls it before it knows the request's project)."""

    table = api_tokens
    record = ApiToken
    noun = "token"
    filterable = frozenset({"id", "name", "role", "created_at", "expires_at", "last_used_at", "revoked_at"})
    sortable = frozenset({"id", "name", "role", "created_at", "expires_at", "last_used_at", "revoked_at"})

    def create(self, role: TokenRole | str, *, name: str = "",
               expires: timedelta | datetime | None = None) -> IssuedToken:
        """A new token of this project with ``role`` (reader, writer or admin), valid until ``expires`` (a
        duration from now or a time; None: until revoked). The secret is in the result and nowhere else."""
        if role not in ROLES:
            raise InvalidInputError(f"role must be one of {', '.join(ROLES)}, got {role!r:.80}")
        now = self._store.now()
        if isinstance(expires, timedelta):
            if expires <= timedelta(0):
                raise InvalidInputError(f"expires must be a duration after now, got {expires}")
            expires = now + expires
        elif expires is not None and not isinstance(expires, datetime):
            raise InvalidInputError(f"expires is a duration (timedelta), a time (datetime) or None, got "
                                    f"{type(expires).__name__}")
        elif expires is not None and expires.tzinfo is not None and expires <= now:  # a naive one: the record says
            raise InvalidInputError(f"expires must be after now, got {expires.isoformat()}")
        record = self.new_record({"role": role, "name": name, "created_at": now, "expires_at": expires})
        secret = f"{SECRET_PREFIX}{record.id}_{secrets.token_urlsafe(32)}"
        record.token_hash = token_hash(secret)
        with self._store.writing() as connection:
            self.insert_record(connection, record)
        return IssuedToken(token=self.to_record(record.model_dump()), secret=secret)

    def revoke(self, id: str) -> ApiToken:
        """Revoke a token of this project: every request with it is refused from now on. Revoking a revoked
        token changes nothing."""
        with self._store.writing() as connection:
            row = self.fetch_row(connection, id, for_update=True)
            if row["revoked_at"] is not None:
                return self.to_record(row)
            now = self._store.now()
            self.update_by_key_statement.run(connection, {"revoked_at": now, "b_key": row["id"],
                                                 "b_project": self._store.project_id})
            return self.to_record({**row, "revoked_at": now})

    def verify(self, secret: str) -> TokenGrant:
        """The token ``secret`` is the secret of, in whichever project, with that project's name; or
        AuthenticationError when it is no token's, or its token is revoked or expired."""
        if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
            raise AuthenticationError(f"not a RolloutDB API token (they start with {SECRET_PREFIX!r}): make one "
                                      "with `rolloutdb tokens create`")
        token_id = secret[len(SECRET_PREFIX):].partition("_")[0]
        with self._store.reading() as connection:
            row = self._select_for_secret.first(connection, {"b_key": token_id}) if 0 < len(token_id) <= 128 else None
        # The hash is compared in constant time, so how long the comparison takes says nothing of the secret.
        if row is None or not hmac.compare_digest(row["token_hash"], token_hash(secret)):
            raise AuthenticationError("unknown API token: it was mistyped, or its token was deleted with its project")
        now = self._store.now()
        if row["revoked_at"] is not None:
            raise AuthenticationError(f"API token {token_id} was revoked at {row['revoked_at']:%Y-%m-%d %H:%M:%S} UTC")
        if row["expires_at"] is not None and row["expires_at"] <= now:
            raise AuthenticationError(f"API token {token_id} expired at {row['expires_at']:%Y-%m-%d %H:%M:%S} UTC")
        if row["last_used_at"] is None or now - row["last_used_at"] >= LAST_USED_EVERY:
            with self._store.writing() as connection:
                connection.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now))
            row = {**row, "last_used_at": now}
        project = row["project"]
        return TokenGrant(token=self.to_record({name: row[name] for name in api_tokens.c.keys()}), project=project)

    @functools.cached_property
    def _select_for_secret(self) -> Prepared:
        return Prepared(select(api_tokens, projects.c.name.label("project"))
                        .join(projects, projects.c.id == api_tokens.c.project_id)
                        .where(api_tokens.c.id == bindparam("b_key")))

    def to_row(self, record: ApiToken) -> dict[str, Any]:
        return {**record.model_dump(), "token_hash": record.token_hash}  # the one place the hash is written

    def to_record(self, row: Mapping[str, Any]) -> ApiToken:
        return build_record(ApiToken, {name: value for name, value in row.items() if name != "token_hash"},
                            self.noun)
